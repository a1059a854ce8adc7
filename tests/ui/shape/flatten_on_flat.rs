use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        flatten: Flatten,
        fc: Dense(10),
    }
}

fn main() {}
