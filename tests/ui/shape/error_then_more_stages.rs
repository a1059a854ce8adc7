use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5) -> Relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, kernel = 13),
        pool2: MaxPool2d(2),
        flatten: Flatten,
        fc1: Dense(120),
        fc2: Dense(10),
    }
}

fn main() {}
