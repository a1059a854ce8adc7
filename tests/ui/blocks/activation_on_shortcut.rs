use cnn::prelude::*;

cnn! {
    struct Net {
        input: [8, 16, 16],
        block: Residual {
            conv: Conv2d(16, kernel = 3, stride = 2, padding = 1),
            down: Shortcut {
                0: Conv2d(16, kernel = 1, stride = 2),
            } -> Relu,
        },
    }
}

fn main() {}
