use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784]
        fc1: Dense(10),
    }
}

fn main() {}
