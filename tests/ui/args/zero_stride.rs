use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, stride = 0),
        pool1: AvgPool2d(2, stride = (0, 1)),
    }
}

fn main() {}
