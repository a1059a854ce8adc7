use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        fc: Dense(100_000_000_000_000_000_000),
    }
}

fn main() {}
