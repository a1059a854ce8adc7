use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784.0],
        fc: Dense(10),
    }
}

fn main() {}
