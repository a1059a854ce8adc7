use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        fc: Dense(10, bias = 1),
    }
}

fn main() {}
