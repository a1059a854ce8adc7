use cnn::prelude::*;

cnn! {
    struct Net {
        fc1: Dense(100),
        input: [784],
        fc2: Dense(10),
    }
}

fn main() {}
