use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        fc1: Dense(100) -> Relu,
        drop: Dropout,
        fc2: Dense(10),
    }
}

fn main() {}
