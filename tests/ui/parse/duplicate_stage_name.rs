use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5),
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, kernel = 5),
        pool1: MaxPool2d(2),
        flatten: Flatten,
        fc: Dense(10),
    }
}

fn main() {}
