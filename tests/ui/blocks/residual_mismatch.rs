use cnn::prelude::*;

cnn! {
    // The first block of a stage halves the size and doubles the channels: the identity
    // shortcut no longer fits, it needs a `Shortcut` (torchvision's `downsample`).
    struct Net {
        input: [8, 16, 16],
        layer2: Sequential {
            0: Residual {
                conv1: Conv2d(16, kernel = 3, stride = 2, padding = 1) -> Relu,
                conv2: Conv2d(16, kernel = 3, padding = 1),
            } -> Relu,
        },
    }
}

fn main() {}
