use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 16, 16],
        stem: Sequential {
            conv: Conv2d(8, kernel = 3, padding = 1),
            pool: MaxPool2d(3, stride = 2, padding = 2),
        },
    }
}

fn main() {}
