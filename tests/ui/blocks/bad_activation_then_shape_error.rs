use cnn::prelude::*;

cnn! {
    // The activation is unknown, but would not change the shape: the shape after the block is
    // still known, so the missing `Flatten` before `fc` is reported too.
    struct Net {
        input: [8, 8, 8],
        layer1: Sequential {
            0: Residual {
                conv1: Conv2d(8, kernel = 3, padding = 1) -> Relu,
                conv2: Conv2d(8, kernel = 3, padding = 1),
            } -> Gelu,
        },
        fc: Dense(10),
    }
}

fn main() {}
