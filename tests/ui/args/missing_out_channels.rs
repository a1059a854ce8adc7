use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(kernel = 5),
    }
}

fn main() {}
