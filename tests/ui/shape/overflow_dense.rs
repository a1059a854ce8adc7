use cnn::prelude::*;

cnn! {
    struct Net {
        input: [1000],
        fc1: Dense(18_446_744_073_709_551_615),
    }
}

fn main() {}
