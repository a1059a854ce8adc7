use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        conv1: Conv2d(6, kernel = 5),
    }
}

fn main() {}
