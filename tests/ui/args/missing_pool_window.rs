use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        pool: MaxPool2d(stride = 2),
    }
}

fn main() {}
