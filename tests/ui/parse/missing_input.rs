use cnn::prelude::*;

cnn! {
    struct Net {
        fc1: Dense(100) -> Relu,
        fc2: Dense(10),
    }
}

fn main() {}
