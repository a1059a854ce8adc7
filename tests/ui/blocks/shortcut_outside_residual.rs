use cnn::prelude::*;

cnn! {
    struct Net {
        input: [8, 16, 16],
        layer1: Sequential {
            conv: Conv2d(8, kernel = 3, padding = 1),
            skip: Shortcut {
                0: Conv2d(8, kernel = 1),
            },
        },
    }
}

fn main() {}
