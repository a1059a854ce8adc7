//! Splitting a batch across threads: the same thread count always gives bitwise the same result,
//! and different counts agree to float32 rounding.

mod common;

use common::LeNet5;

use cnn::prelude::*;

fn batch(n: usize) -> (Vec<f32>, Vec<u32>) {
    let x = (0..n * 784)
        .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0)
        .collect();
    let y = (0..n).map(|i| (i * 3 % 10) as u32).collect();
    (x, y)
}

fn step(net: &LeNet5, x: &[f32], y: &[u32]) -> (f32, Vec<f32>, Vec<f32>) {
    let mut grad = vec![0.0; LeNet5::PARAM_COUNT];
    let loss = net.loss_and_grad(x, y, &mut grad);
    let mut logits = vec![0.0; y.len() * 10];
    net.forward_batch(x, &mut logits);
    (loss, grad, logits)
}

// One test: the thread count is process-wide, so the cases must not run concurrently.
#[test]
fn thread_counts_are_deterministic_and_agree() {
    let net = LeNet5::new(3);
    for n in [64, 37, 9] {
        let (x, y) = batch(n);
        let mut results = Vec::new();
        for threads in [1, 2, 3] {
            cnn::set_threads(threads);
            let first = step(&net, &x, &y);
            let again = step(&net, &x, &y);
            assert_eq!(
                first.0.to_bits(),
                again.0.to_bits(),
                "{threads} threads, batch {n}: loss differs between runs"
            );
            assert!(
                first.1.iter().zip(&again.1).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{threads} threads, batch {n}: gradient differs between runs"
            );
            assert!(
                first.2.iter().zip(&again.2).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{threads} threads, batch {n}: logits differ between runs"
            );
            results.push(first);
        }
        let (loss1, grad1, logits1) = &results[0];
        let scale = grad1.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        for (loss, grad, logits) in &results[1..] {
            assert!(
                (loss - loss1).abs() <= 1e-6 * loss1.abs().max(1.0),
                "batch {n}: loss {loss} vs {loss1}"
            );
            for (i, (g, g1)) in grad.iter().zip(grad1).enumerate() {
                assert!((g - g1).abs() <= 1e-5 * scale, "batch {n}: grad[{i}] {g} vs {g1}");
            }
            for (z, z1) in logits.iter().zip(logits1) {
                assert!(
                    (z - z1).abs() <= 1e-5 * z1.abs().max(1.0),
                    "batch {n}: logit {z} vs {z1}"
                );
            }
        }
    }
    cnn::set_threads(0);
}
