use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
    }
}

fn main() {}
