use cnn::prelude::*;

cnn! {
    struct Net {
        input: [784],
        classifier: Sequential {
            0: Dense(100) -> Relu,
            1: Dropout(1.0),
            2: Dense(10),
        },
    }
}

fn main() {}
