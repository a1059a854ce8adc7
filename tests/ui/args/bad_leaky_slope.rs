use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        fc1: Dense(100) -> LeakyRelu("0.2"),
        act: LeakyRelu(slope),
        fc2: Dense(10),
    }
}

fn main() {}
