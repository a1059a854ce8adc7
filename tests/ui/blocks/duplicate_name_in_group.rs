use cnn::prelude::*;

cnn! {
    // `conv1` twice in one block; the same name in another group is fine (tests/ui/pass/).
    struct Net {
        input: [8, 8, 8],
        conv1: Conv2d(8, kernel = 3, padding = 1),
        layer1: Sequential {
            0: Residual {
                conv1: Conv2d(8, kernel = 3, padding = 1) -> Relu,
                conv1: Conv2d(8, kernel = 3, padding = 1),
            },
        },
    }
}

fn main() {}
