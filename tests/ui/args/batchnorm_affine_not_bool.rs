use cnn::prelude::*;

cnn! {
    struct Net {
        input: [64],
        bn: BatchNorm1d(affine = 1),
        fc: Dense(10),
    }
}

fn main() {}
