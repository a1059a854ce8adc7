use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        fc1: Linear(100) -> ReLU,
        fc2: Dense(10),
    }
}

fn main() {}
