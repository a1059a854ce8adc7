use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 16, 16],
        conv1: Conv2d(6, kernel = 3, groups = 2),
    }
}

fn main() {}
