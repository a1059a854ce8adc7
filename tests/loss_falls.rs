//! A training smoke test on real data: the loss falls on a few hundred MNIST images.

mod common;

use common::LeNet5;

use cnn::data::Mnist;
use cnn::optim::Sgd;
use cnn::prelude::*;

#[test]
fn loss_falls_on_a_few_hundred_mnist_images() -> Result<(), cnn::Error> {
    let mnist = Mnist::load(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))?;
    let n = 320;
    let indices: Vec<usize> = (0..n).collect();
    let mut images = vec![0.0; n * LeNet5::INPUT_LEN];
    let mut labels = vec![0; n];
    mnist.train.gather(&indices, &mut images, &mut labels);
    images.iter_mut().for_each(|x| *x = (*x - Mnist::MEAN) / Mnist::STD);

    let mut net = LeNet5::new(1);
    let mut opt = Sgd::new(0.05).momentum(0.9);
    let mut grad = vec![0.0; LeNet5::PARAM_COUNT];
    let initial = net.loss_and_grad(&images, &labels, &mut grad);
    for _ in 0..8 {
        for (x, y) in images.chunks(32 * LeNet5::INPUT_LEN).zip(labels.chunks(32)) {
            net.loss_and_grad(x, y, &mut grad);
            opt.step(net.params_mut(), &grad);
        }
    }
    let after = net.loss_and_grad(&images, &labels, &mut grad);
    // Untrained, the loss is near ln(10) = 2.30; eight epochs over 320 images fit them well.
    assert!((initial - 2.30).abs() < 0.2, "initial loss {initial}");
    assert!(after < 0.5 * initial, "loss went from {initial} to {after}");
    let correct = (0..n)
        .filter(|&i| net.predict(images[i * 784..][..784].try_into().unwrap()) == labels[i] as usize)
        .count();
    assert!(correct > n * 8 / 10, "{correct} of {n} training images right");
    Ok(())
}
