//! Central-difference gradient checks of whole generated networks, covering every layer kind,
//! every activation (as a stage and after `->`), strides, padding, `(h, w)` forms, `bias = false`,
//! and the kinds of modern networks in training mode: BatchNorm (2d and 1d, with and without
//! affine), residual blocks (identity and projection shortcuts), grouped convolutions, padded
//! pools, global pooling and Dropout (its masks held fixed).

mod common;

use cnn::prelude::*;
use common::{check_gradients, seq};

cnn! {
    struct ConvMax {
        input: [2, 9, 8],
        conv: Conv2d(3, kernel = 3, padding = 1) -> Tanh,
        pool: MaxPool2d(2),
        flatten: Flatten,
        fc: Dense(4),
    }
}

cnn! {
    struct StridedAvg {
        input: [3, 11, 10],
        conv1: Conv2d(4, kernel = (3, 2), stride = (2, 1), padding = (1, 0), bias = false),
        act: Sigmoid,
        pool: AvgPool2d((2, 3), stride = 1),
        conv2: Conv2d(2, kernel = 2, stride = 2) -> LeakyRelu(0.2),
        flatten: Flatten,
        fc: Dense(3, bias = false),
    }
}

cnn! {
    struct Activations {
        input: [6],
        fc1: Dense(8) -> Relu,
        fc2: Dense(8) -> LeakyRelu,
        fc3: Dense(7),
        tanh: Tanh,
        sigmoid: Sigmoid -> Tanh,
        fc4: Dense(3),
    }
}

cnn! {
    struct ActivationFirst {
        input: [1, 6, 6],
        relu: LeakyRelu(0.1),
        pool: MaxPool2d(3, stride = 2),
        conv: Conv2d(2, kernel = 2),
        flatten: Flatten,
        fc: Dense(2),
    }
}

cnn! {
    struct BnResidual {
        input: [2, 7, 7],
        conv: Conv2d(4, kernel = 3, padding = 1),
        bn: BatchNorm2d,
        act: Tanh,
        identity: Residual {
            conv1: Conv2d(4, kernel = 3, padding = 1, bias = false),
            bn1: BatchNorm2d(affine = false),
        } -> Tanh,
        projection: Sequential {
            0: Residual {
                conv1: Conv2d(6, kernel = 3, stride = 2, padding = 1),
                bn1: BatchNorm2d(momentum = 0.3),
                down: Shortcut {
                    0: Conv2d(6, kernel = 1, stride = 2, bias = false),
                    1: BatchNorm2d(eps = 1e-3),
                },
            } -> Sigmoid,
        },
        gap: GlobalAvgPool2d,
        flatten: Flatten,
        fc: Dense(3),
    }
}

cnn! {
    struct GroupedPools {
        input: [4, 9, 9],
        dw: Conv2d(8, kernel = 3, padding = 1, groups = 4) -> Tanh,
        maxp: MaxPool2d(3, stride = 2, padding = 1),
        pw: Conv2d(6, kernel = (1, 2), groups = 2, bias = false),
        avgp: AvgPool2d(3, stride = 2, padding = 1),
        flatten: Flatten,
        fc: Dense(3),
    }
}

cnn! {
    struct BnDropout {
        input: [10],
        fc1: Dense(12),
        bn: BatchNorm1d,
        act: Tanh,
        drop: Dropout(0.4),
        fc2: Dense(4),
    }
}

fn check<N: Network>(seed: u64, batch: usize, new: impl Fn(u64) -> N) {
    let net = new(seed);
    let input: Vec<f32> = seq(batch * N::INPUT_LEN, seed as f32).iter().map(|x| 2.0 * x).collect();
    let labels: Vec<u32> = (0..batch).map(|b| (b * 7 + 3) as u32 % N::OUTPUT_LEN as u32).collect();
    check_gradients(&net, &input, &labels);
}

#[test]
fn conv_tanh_maxpool_dense() {
    check(1, 3, ConvMax::new);
}

#[test]
fn strided_padded_conv_avgpool_no_bias() {
    check(2, 2, StridedAvg::new);
}

#[test]
fn dense_with_every_activation() {
    check(3, 5, Activations::new);
}

#[test]
fn parameter_free_first_stages() {
    check(4, 2, ActivationFirst::new);
}

#[test]
fn gradient_is_the_mean_over_the_batch() {
    // The gradient of a batch is the mean of the per-sample gradients.
    let mut net = ConvMax::new(5);
    let input = seq(2 * ConvMax::INPUT_LEN, 0.5);
    let labels = [1, 3];
    let mut both = vec![0.0; ConvMax::PARAM_COUNT];
    let loss = net.loss_and_grad(&input, &labels, &mut both);
    let (mut g0, mut g1) = (vec![0.0; ConvMax::PARAM_COUNT], vec![0.0; ConvMax::PARAM_COUNT]);
    let l0 = net.loss_and_grad(&input[..ConvMax::INPUT_LEN], &labels[..1], &mut g0);
    let l1 = net.loss_and_grad(&input[ConvMax::INPUT_LEN..], &labels[1..], &mut g1);
    assert!((loss - (l0 + l1) / 2.0).abs() < 1e-6);
    for i in 0..both.len() {
        assert!((both[i] - (g0[i] + g1[i]) / 2.0).abs() < 1e-6, "param {i}");
    }
}

#[test]
fn batchnorm_and_residual_blocks_in_training() {
    check(6, 4, BnResidual::new);
}

#[test]
fn grouped_convolutions_and_padded_pools() {
    check(7, 3, GroupedPools::new);
}

#[test]
fn batchnorm1d_and_dropout_in_training() {
    check(8, 6, BnDropout::new);
}
