use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 8, 8],
        conv: Conv2d(8, kernel = 3),
        bn: BatchNorm2d(eps = -1e-5),
    }
}

fn main() {}
