use cnn::prelude::*;

cnn! {
    struct Net {
        input: [100000, 100000, 100000],
        conv1: Conv2d(100000, kernel = 1),
    }
}

fn main() {}
