use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        fc: Dense,
    }
}

fn main() {}
