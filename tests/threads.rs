//! Splitting a batch across threads: the same thread count always gives bitwise the same result,
//! and different counts agree to float32 rounding, for plain networks and for networks with
//! BatchNorm (batch statistics of the whole batch) and Dropout (masks by sample, not thread).

mod common;

use common::LeNet5;

use cnn::prelude::*;

cnn! {
    /// BatchNorm, a residual block and Dropout: every kind whose training step differs.
    struct Modern {
        input: [1, 28, 28],
        conv: Conv2d(8, kernel = 3, padding = 1, bias = false),
        bn: BatchNorm2d,
        relu: Relu,
        block: Residual {
            conv1: Conv2d(8, kernel = 3, padding = 1, bias = false),
            bn1: BatchNorm2d,
        } -> Relu,
        pool: GlobalAvgPool2d,
        flatten: Flatten,
        drop: Dropout(0.3),
        fc: Dense(10),
    }
}

fn batch(n: usize) -> (Vec<f32>, Vec<u32>) {
    let x = (0..n * 784)
        .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0)
        .collect();
    let y = (0..n).map(|i| (i * 3 % 10) as u32).collect();
    (x, y)
}

/// A training step and inference from a copy of `net` (parameters, buffers, train state):
/// loss, gradient, logits and the buffers after the step.
fn step<N: Network>(net: &N, x: &[f32], y: &[u32]) -> (f32, Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut net2 = N::from_params(net.params());
    net2.buffers_mut().copy_from_slice(net.buffers());
    net2.set_train_state(net.train_state());
    let mut grad = vec![0.0; N::PARAM_COUNT];
    let loss = net2.loss_and_grad(x, y, &mut grad);
    let mut logits = vec![0.0; y.len() * N::OUTPUT_LEN];
    net2.forward_batch(x, &mut logits);
    (loss, grad, logits, net2.buffers().to_vec())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check<N: Network>(net: &N) {
    for n in [64, 37, 9] {
        let (x, y) = batch(n);
        let mut results = Vec::new();
        for threads in [1, 2, 3] {
            cnn::set_threads(threads);
            let first = step(net, &x, &y);
            let again = step(net, &x, &y);
            assert_eq!(
                first.0.to_bits(),
                again.0.to_bits(),
                "{threads} threads, batch {n}: loss differs between runs"
            );
            assert_eq!(
                bits(&first.1),
                bits(&again.1),
                "{threads} threads, batch {n}: gradient differs between runs"
            );
            assert_eq!(
                bits(&first.2),
                bits(&again.2),
                "{threads} threads, batch {n}: logits differ between runs"
            );
            assert_eq!(
                bits(&first.3),
                bits(&again.3),
                "{threads} threads, batch {n}: buffers differ between runs"
            );
            results.push(first);
        }
        let (loss1, grad1, logits1, buffers1) = &results[0];
        let scale = grad1.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        for (loss, grad, logits, buffers) in &results[1..] {
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
            for (b, b1) in buffers.iter().zip(buffers1) {
                assert!(
                    (b - b1).abs() <= 1e-5 * b1.abs().max(1.0),
                    "batch {n}: buffer {b} vs {b1}"
                );
            }
        }
    }
    cnn::set_threads(0);
}

// One test: the thread count is process-wide, so the cases must not run concurrently.
#[test]
fn thread_counts_are_deterministic_and_agree() {
    check(&LeNet5::new(3));
    let net = Modern::new(3);
    const { assert!(Modern::BUFFER_COUNT > 0) };
    check(&net);
}
