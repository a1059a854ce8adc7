use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 8, 4],
        conv1: Conv2d(6, kernel = (3, 7), padding = 1),
    }
}

fn main() {}
