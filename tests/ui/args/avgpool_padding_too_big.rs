use cnn::prelude::*;

cnn! {
    struct Net {
        input: [3, 16, 16],
        pool: AvgPool2d((2, 4), padding = (1, 3)),
    }
}

fn main() {}
