use cnn::prelude::*;

cnn! {
    /// Every activation is kept for the backward pass: the third one no longer fits.
    struct Net {
        input: [1_000_000_000],
        a: Relu,
        b: Relu,
        c: Relu,
    }
}

fn main() {}
