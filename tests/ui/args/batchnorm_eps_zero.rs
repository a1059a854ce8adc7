use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 8, 8],
        features: Sequential {
            0: Conv2d(8, kernel = 3),
            1: BatchNorm2d(eps = 0),
        },
    }
}

fn main() {}
