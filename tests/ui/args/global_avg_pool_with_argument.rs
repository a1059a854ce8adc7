use cnn::prelude::*;

cnn! {
    // PyTorch's AdaptiveAvgPool2d(1): here the output size is always 1x1, so it takes no argument.
    struct Net {
        input: [3, 8, 8],
        conv: Conv2d(8, kernel = 3),
        pool: GlobalAvgPool2d(1),
        flatten: Flatten,
        fc: Dense(10),
    }
}

fn main() {}
