use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 65536, 65536],
        conv1: Conv2d(100000, kernel = 1),
    }
}

fn main() {}
