use cnn::prelude::*;

cnn! {
    struct Net<const N: usize> {
        input: [N],
        fc: Dense(10),
    }
}

fn main() {}
