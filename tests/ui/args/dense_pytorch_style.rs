use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        fc1: Dense(784, 100) -> Relu,
        fc2: Dense(10),
    }
}

fn main() {}
