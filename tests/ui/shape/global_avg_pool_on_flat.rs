use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 8, 8],
        conv: Conv2d(8, kernel = 3),
        flatten: Flatten,
        pool: GlobalAvgPool2d,
        fc: Dense(10),
    }
}

fn main() {}
