use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = (5, 0)),
        pool1: MaxPool2d(0),
    }
}

fn main() {}
