use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        0: Dense(100) -> Relu,
        fc2: Dense(10),
    }
}

fn main() {}
