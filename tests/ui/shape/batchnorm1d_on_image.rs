use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 8, 8],
        layer1: Sequential {
            0: Residual {
                conv1: Conv2d(3, kernel = 3, padding = 1),
                bn1: BatchNorm1d,
            },
        },
        flatten: Flatten,
        fc: Dense(10),
    }
}

fn main() {}
