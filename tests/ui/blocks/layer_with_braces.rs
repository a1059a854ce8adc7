use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 8, 8],
        conv: Conv2d { out: 8, kernel: 3 },
    }
}

fn main() {}
