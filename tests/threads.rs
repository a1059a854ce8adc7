//! Splitting a batch across threads: the same thread count always gives bitwise the same result,
//! and different counts agree to float32 rounding, for plain networks and for networks with
//! BatchNorm (batch statistics of the whole batch) and Dropout (masks by sample, not thread).
//! Splitting one sample (a batch too small to split, on a large network): the same bits as on
//! one thread.

mod common;

use common::LeNet5;

use cnn::prelude::*;

#[path = "../examples/common/resnet8.rs"]
mod resnet8;
use resnet8::ResNet8;

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
    split_samples_give_the_same_bits();
}

/// ResNet-8 (12.5 M multiply-adds a sample) at batches too small to split: with two threads its
/// large convolutions split each sample in halves, by output channels at 32x32 and 16x16 (their
/// stride-2 layers read phase images) and by rows of output pixels at 8x8, each half summing
/// exactly what one thread sums; `forward` and `predict` go the same way.
fn split_samples_give_the_same_bits() {
    let mut net = ResNet8::new(5);
    // Running statistics other than the initial ones, so that the folded BatchNorm matters
    // (means near 0: larger ones would leave little past the ReLUs).
    for info in ResNet8::BUFFERS {
        let mean = info.name.ends_with("running_mean");
        for (i, b) in net.buffers_mut()[info.range()].iter_mut().enumerate() {
            let step = (i % 5) as f32 * 0.1;
            *b = if mean { 0.1 - step / 2.0 } else { 0.6 + step };
        }
    }
    let spread = |logits: &[f32]| logits.iter().fold(0.0f32, |m, z| m.max((z - logits[0]).abs()));
    let x: Vec<f32> = (0..3 * ResNet8::INPUT_LEN)
        .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0)
        .collect();
    // Each time a copy, whose working memory starts empty: a part of a split that wrote
    // nothing would leave zeros, not the last call's numbers.
    let logits = |threads: usize, batch: usize| {
        cnn::set_threads(threads);
        let mut copy = ResNet8::new(0);
        copy.params_mut().copy_from_slice(net.params());
        copy.buffers_mut().copy_from_slice(net.buffers());
        let net = copy;
        let mut out = vec![0.0; batch * ResNet8::OUTPUT_LEN];
        net.forward_batch(&x[..batch * ResNet8::INPUT_LEN], &mut out);
        let one = net.forward(x[..ResNet8::INPUT_LEN].try_into().unwrap());
        (bits(&out), bits(&one))
    };
    for batch in [1, 3] {
        let one_thread = logits(1, batch);
        let first: Vec<f32> = one_thread.1.iter().map(|&b| f32::from_bits(b)).collect();
        assert!(spread(&first) > 1e-3, "logits {first:?}: the layers must matter");
        // A network's first calls split (until its calls' times say otherwise: `split`).
        for call in 0..2 {
            assert_eq!(
                one_thread,
                logits(2, batch),
                "ResNet-8, batch {batch}, call {call}: 1 and 2 threads differ"
            );
        }
    }
    cnn::set_threads(0);
}
