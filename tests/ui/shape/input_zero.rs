use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 0, 28],
        conv1: Conv2d(6, kernel = 5),
    }
}

fn main() {}
