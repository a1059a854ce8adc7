//! LeNet-5 with its trained weights baked into the binary at compile time: the macro checks
//! `models/lenet5.safetensors` against the declaration while compiling, and embeds it. No file
//! is read at run time but the test images.
//!
//! ```text
//! cargo run --release --example embedded [-- data/mnist]
//! ```
//!
//! Classifies the 10,000 MNIST test images one at a time, and prints the accuracy, the median
//! latency per image and the size of this binary.

use std::error::Error;
use std::time::Instant;

use cnn::data::Mnist;
use cnn::prelude::*;

cnn! {
    /// LeNet-5 for 28x28 grayscale digits, trained by `cargo run --release --example mnist`.
    #[weights = "models/lenet5.safetensors"]
    pub struct LeNet5 {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2) -> Relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, kernel = 5) -> Relu,
        pool2: MaxPool2d(2),
        flatten: Flatten,
        fc1: Dense(120) -> Relu,
        fc2: Dense(84) -> Relu,
        fc3: Dense(10),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "data/mnist".into());
    let test = Mnist::load(&dir)?.test;
    let net = LeNet5::pretrained();
    let mut image = [0.0f32; LeNet5::INPUT_LEN];
    let mut label = [0u32];
    let mut correct = 0;
    let mut latencies = Vec::with_capacity(test.len());
    for i in 0..test.len() {
        test.gather(&[i], &mut image, &mut label);
        image.iter_mut().for_each(|x| *x = (*x - Mnist::MEAN) / Mnist::STD);
        let start = Instant::now();
        let predicted = net.predict(&image);
        latencies.push(start.elapsed());
        correct += usize::from(predicted == label[0] as usize);
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let binary = std::fs::metadata(std::env::current_exe()?)?.len();
    println!(
        "accuracy {:.2}% ({correct} of {} test images)",
        100.0 * correct as f64 / test.len() as f64,
        test.len()
    );
    println!(
        "median latency {:.1} µs per image (batch 1, one thread)",
        median.as_secs_f64() * 1e6
    );
    println!(
        "binary {:.2} MB, of which {:.1} KB are the embedded weights ({} parameters)",
        binary as f64 / 1e6,
        (4 * LeNet5::PARAM_COUNT) as f64 / 1e3,
        LeNet5::PARAM_COUNT
    );
    Ok(())
}
