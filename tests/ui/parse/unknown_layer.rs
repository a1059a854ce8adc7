use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 8, 8],
        conv1: Conv3d(4, kernel = 3),
        flatten: Flatten,
        fc: Dense(10),
    }
}

fn main() {}
