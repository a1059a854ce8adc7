use cnn::prelude::*;

cnn! {
    struct Net {
        input: [8, 8, 8],
        block: Residual {
            downsample: Shortcut {
                0: Conv2d(8, kernel = 1),
            },
        },
    }
}

fn main() {}
