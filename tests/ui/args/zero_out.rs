use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(0, kernel = 5),
        flatten: Flatten,
        fc: Dense(0),
    }
}

fn main() {}
