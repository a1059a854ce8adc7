//! The main job: train LeNet-5 on all 60,000 MNIST training images, evaluate on the 10,000 test
//! images after every epoch, and save the trained weights as safetensors.
//!
//! ```text
//! cargo run --release --example mnist [-- --epochs 3 --lr 0.01 --batch-size 64 --seed 1
//!                                        --data data/mnist --out models/lenet5.safetensors]
//! ```
//! Defaults are PyTorch's usual recipe: SGD, lr 0.01, momentum 0.9, batch 64, 3 epochs, inputs
//! normalized with MNIST's mean and standard deviation.

use cnn::data::{Dataset, Mnist};
use cnn::optim::Sgd;
use cnn::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

cnn! {
    /// LeNet-5 for 28x28 grayscale digits.
    #[derive(Clone)]
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

/// MNIST's pixel mean and standard deviation (of pixel / 255), as torchvision's examples use.
const MEAN: f32 = 0.1307;
const STD: f32 = 0.3081;

struct Options {
    epochs: usize,
    lr: f32,
    batch: usize,
    seed: u64,
    data: PathBuf,
    out: PathBuf,
}

fn options() -> Result<Options, Box<dyn Error>> {
    let mut o = Options { epochs: 3, lr: 0.01, batch: 64, seed: 1, data: "data/mnist".into(), out: "models/lenet5.safetensors".into() };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => o.epochs = value()?.parse()?,
            "--lr" => o.lr = value()?.parse()?,
            "--batch-size" => o.batch = value()?.parse()?,
            "--seed" => o.seed = value()?.parse()?,
            "--data" => o.data = value()?.into(),
            "--out" => o.out = value()?.into(),
            _ => return Err(format!("unknown flag {flag}; expected --epochs, --lr, --batch-size, --seed, --data or --out").into()),
        }
    }
    if o.batch == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    Ok(o)
}

/// Writes samples `indices` of `set`, normalized, into `images` and their labels into `labels`.
fn batch(set: &Dataset, indices: &[usize], images: &mut Vec<f32>, labels: &mut Vec<u32>) {
    images.resize(indices.len() * LeNet5::INPUT_LEN, 0.0);
    labels.resize(indices.len(), 0);
    set.gather(indices, images, labels);
    images.iter_mut().for_each(|x| *x = (*x - MEAN) / STD);
}

/// Test-set accuracy, in batches of 1,000.
fn accuracy(net: &LeNet5, test: &Dataset) -> f64 {
    let (mut images, mut labels, mut logits) = (Vec::new(), Vec::new(), Vec::new());
    let mut correct = 0;
    let indices: Vec<usize> = (0..test.len()).collect();
    for chunk in indices.chunks(1000) {
        batch(test, chunk, &mut images, &mut labels);
        logits.resize(chunk.len() * LeNet5::OUTPUT_LEN, 0.0);
        net.forward_batch(&images, &mut logits);
        for (z, &label) in logits.chunks_exact(LeNet5::OUTPUT_LEN).zip(&labels) {
            let guess = (0..z.len()).fold(0, |best, i| if z[i] > z[best] { i } else { best });
            correct += usize::from(guess == label as usize);
        }
    }
    correct as f64 / test.len() as f64
}

fn main() -> Result<(), Box<dyn Error>> {
    let o = options()?;
    let mnist = Mnist::load(&o.data)?;
    println!("{}", LeNet5::summary());
    println!(
        "training on {} images, testing on {}; SGD lr {} momentum 0.9, batch {}, {} epochs, {} cores",
        mnist.train.len(),
        mnist.test.len(),
        o.lr,
        o.batch,
        o.epochs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut net = LeNet5::new(o.seed);
    let mut opt = Sgd::new(o.lr).momentum(0.9);
    let mut rng = rand::rngs::StdRng::seed_from_u64(o.seed);
    let mut order: Vec<usize> = (0..mnist.train.len()).collect();
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let mut grad = vec![0.0; LeNet5::PARAM_COUNT];
    let start = Instant::now();
    let mut acc = 0.0;
    println!("{:>5}  {:>10}  {:>9}  {:>9}  {:>8}", "epoch", "train loss", "test acc", "images/s", "time (s)");
    for epoch in 1..=o.epochs {
        let epoch_start = Instant::now();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut batches = 0;
        for chunk in order.chunks(o.batch) {
            batch(&mnist.train, chunk, &mut images, &mut labels);
            let loss = net.loss_and_grad(&images, &labels, &mut grad);
            if !loss.is_finite() {
                return Err(format!("the loss diverged ({loss}) in epoch {epoch}, batch {batches}; lower --lr").into());
            }
            opt.step(net.params_mut(), &grad);
            loss_sum += loss as f64;
            batches += 1;
        }
        let train_time = epoch_start.elapsed().as_secs_f64();
        acc = accuracy(&net, &mnist.test);
        println!(
            "{epoch:>5}  {:>10.4}  {:>8.2}%  {:>9.0}  {:>8.1}",
            loss_sum / batches as f64,
            acc * 100.0,
            mnist.train.len() as f64 / train_time,
            epoch_start.elapsed().as_secs_f64()
        );
    }
    if let Some(dir) = o.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    cnn::io::save_safetensors(&net, &o.out)?;
    println!(
        "test accuracy {:.2}% after {} epochs in {:.1} s; weights saved to {}",
        acc * 100.0,
        o.epochs,
        start.elapsed().as_secs_f64(),
        o.out.display()
    );
    Ok(())
}
