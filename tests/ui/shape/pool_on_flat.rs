use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5) -> Relu,
        flatten: Flatten,
        pool1: MaxPool2d(2),
        fc: Dense(10),
    }
}

fn main() {}
