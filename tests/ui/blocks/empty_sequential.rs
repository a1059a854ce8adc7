use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 8, 8],
        conv: Conv2d(8, kernel = 3),
        layer1: Sequential {},
        flatten: Flatten,
        fc: Dense(10),
    }
}

fn main() {}
