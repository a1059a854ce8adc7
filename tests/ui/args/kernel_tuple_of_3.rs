use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 28, 28],
        conv1: Conv2d(6, kernel = (3, 3, 3)),
    }
}

fn main() {}
