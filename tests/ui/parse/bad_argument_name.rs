use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 8, 8],
        conv: Conv2d(4, kernel.size = 3),
    }
}

fn main() {}
