use cnn::prelude::*;

cnn! {
    struct Net {
        input: [8, 8, 8],
        conv: Conv2d(8, kernel = 3, groups = 0),
    }
}

fn main() {}
