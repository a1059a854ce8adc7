use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(1, kernel = 3, padding = 18_446_744_073_709_551_615),
    }
}

fn main() {}
