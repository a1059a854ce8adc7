use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        flatten: Flatten,
        classifier: Sequential {
            fc1: Dense(100),
            bn: BatchNorm2d,
            relu: Relu,
        },
        fc2: Dense(10),
    }
}

fn main() {}
