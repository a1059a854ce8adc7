use cnn::prelude::*;

cnn! {
    /// A syntax error in one stage; code that uses `Net` must not add errors of its own.
    pub struct Net {
        input: [784],
        fc1: Dense(100) => Relu,
        fc2: Dense(10),
    }
}

fn main() {
    let net = Net::new(0);
    let logits = net.forward(&[0.0; 784]);
    println!("{} {}", logits[0], Net::PARAM_COUNT);
}
