use cnn::prelude::*;

cnn! {
    struct Net {
        input: [64],
        bn: BatchNorm1d(eps = "1e-5"),
        fc: Dense(10),
    }
}

fn main() {}
