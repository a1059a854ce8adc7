use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        flatten: Flatten(1),
        fc: Dense(10),
    }
}

fn main() {}
