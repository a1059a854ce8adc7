use cnn::prelude::*;

cnn! {
    struct Net {
        input: [100000000, 100000000, 100000000],
        flatten: Flatten,
    }
}

fn main() {}
