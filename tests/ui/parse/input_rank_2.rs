use cnn::prelude::*;

cnn! {
    struct Net {
        input: [28, 28],
        flatten: Flatten,
        fc: Dense(10),
    }
}

fn main() {}
