use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        fc: [10],
    }
}

fn main() {}
