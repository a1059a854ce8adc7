use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = -1),
    }
}

fn main() {}
