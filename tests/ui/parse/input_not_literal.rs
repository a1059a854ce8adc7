use cnn::prelude::*;

const SIDE: usize = 28;

cnn! {
    struct Net {
        input: [1, SIDE, 2 * 14],
        conv: Conv2d(4, kernel = 3),
    }
}

fn main() {}
