use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        FC1: Dense(10),
    }
}

fn main() {}
