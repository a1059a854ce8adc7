use cnn::prelude::*;

cnn! {
    /// `fc1` forgets the `Flatten`; code that uses `Net` must not add errors of its own.
    pub struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5) -> Relu,
        pool1: MaxPool2d(2),
        fc1: Dense(10),
    }
}

fn train<N: Network>(net: &mut N) -> usize {
    net.params_mut().len() + N::PARAMS.len() + N::INPUT_LEN
}

fn main() {
    let mut net = Net::new(0);
    let logits = net.forward(&[0.0; 784]);
    let class: usize = net.predict(&[0.0; Net::INPUT_LEN]);
    println!("{} {} {} {}", logits[0], class, Net::PARAM_COUNT, Net::summary());
    train(&mut net);
}
