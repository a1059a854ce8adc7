use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 8, 8],
        layer1: Sequential {
            0: Residual {},
        },
        flatten: Flatten,
        fc: Dense(10),
    }
}

fn main() {}
