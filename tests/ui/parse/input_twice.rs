use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        input: [28, 28],
        fc: Dense(10),
    }
}

fn main() {}
