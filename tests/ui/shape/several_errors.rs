use cnn::prelude::*;

cnn! {
    /// Four independent mistakes, all reported in one build.
    pub struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernal = 5) -> Relu,
        pool1: MaxPool2d(2),
        conv2: Conv3d(16, kernel = 5),
        pool1: AvgPool2d(2),
        fc1: Dense(0) -> Relu,
        fc2: Dense(10, bias = yes),
    }
}

fn main() {}
