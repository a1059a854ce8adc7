use cnn::prelude::*;

cnn! {
    // The shortcut forgets the stride of the main path.
    struct Net {
        input: [8, 16, 16],
        layer2: Sequential {
            0: Residual {
                conv1: Conv2d(16, kernel = 3, stride = 2, padding = 1) -> Relu,
                conv2: Conv2d(16, kernel = 3, padding = 1),
                downsample: Shortcut {
                    0: Conv2d(16, kernel = 1),
                },
            } -> Relu,
        },
    }
}

fn main() {}
