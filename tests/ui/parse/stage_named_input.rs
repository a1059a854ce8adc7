use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        input: Dense(10),
    }
}

fn main() {}
