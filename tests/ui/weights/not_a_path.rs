// The attribute takes a string literal.
use cnn::prelude::*;

cnn! {
    #[weights(file = "model.safetensors")]
    struct Net {
        input: [4],
        fc: Dense(3),
    }
}

fn main() {
    let _ = Net::pretrained();
}
