use cnn::prelude::*;

cnn! {
    // Keras' momentum 0.99 is PyTorch's 0.01; 1.5 is neither.
    struct Net {
        input: [3, 8, 8],
        stem: Sequential {
            conv: Conv2d(8, kernel = 3),
            bn: BatchNorm2d(momentum = 1.5),
        },
    }
}

fn main() {}
