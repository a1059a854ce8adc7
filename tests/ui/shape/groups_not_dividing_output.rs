use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 16, 16],
        conv1: Conv2d(8, kernel = 3, padding = 1),
        block: Sequential {
            dw: Conv2d(12, kernel = 3, padding = 1, groups = 8),
        },
    }
}

fn main() {}
