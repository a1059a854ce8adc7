//! A steady-state training step and inference allocate nothing, with the default thread
//! setting too: proved with a counting global allocator (this test binary only).

mod common;

use common::LeNet5;

use cnn::optim::{Adam, Sgd};
use cnn::prelude::*;

#[path = "common/count_allocations.rs"]
mod count_allocations;

use count_allocations::allocations;

#[path = "../examples/common/resnet8.rs"]
mod resnet8;
use resnet8::ResNet8;

cnn! {
    /// A residual block with BatchNorm, whose inference reads parameters prepared once.
    struct Block {
        input: [2, 8, 8],
        conv: Conv2d(4, kernel = 3, padding = 1, bias = false),
        bn: BatchNorm2d -> Relu,
        block: Residual {
            conv: Conv2d(4, kernel = 3, padding = 1, bias = false),
            bn: BatchNorm2d,
        } -> Relu,
        pool: GlobalAvgPool2d,
        flatten: Flatten,
        fc: Dense(3),
    }
}

/// Training steps with both optimizers, then inference, on `net` with the thread setting as it
/// is: neither allocates once the first calls sized everything.
fn steady_state<N: Network>(net: &mut N, forward_one: impl Fn(&N, &[f32]), threads: usize) {
    let n_in = N::INPUT_LEN;
    let x: Vec<f32> = (0..64 * n_in).map(|i| (i % 255) as f32 / 255.0).collect();
    let labels: Vec<u32> = (0..64).map(|i| i % N::OUTPUT_LEN as u32).collect();
    let mut grad = vec![0.0; N::PARAM_COUNT];
    let mut logits = vec![0.0; 64 * N::OUTPUT_LEN];
    let mut sgd = Sgd::new(0.01).momentum(0.9);
    let mut adam = Adam::new(1e-3);
    // The first calls size the workspace and the optimizer state.
    for _ in 0..2 {
        net.loss_and_grad(&x, &labels, &mut grad);
        sgd.step(net.params_mut(), &grad);
        adam.step(net.params_mut(), &grad);
        net.forward_batch(&x, &mut logits);
        forward_one(net, &x[..n_in]);
    }
    let n = allocations(|| {
        for _ in 0..3 {
            net.loss_and_grad(&x, &labels, &mut grad);
            sgd.step(net.params_mut(), &grad);
            adam.step(net.params_mut(), &grad);
        }
    });
    assert_eq!(
        n,
        0,
        "{} {threads} threads: a training step allocated {n} times",
        std::any::type_name::<N>()
    );
    let n = allocations(|| {
        net.forward_batch(&x, &mut logits);
        net.forward_batch(&x[..n_in * 3], &mut logits[..3 * N::OUTPUT_LEN]);
        forward_one(net, &x[..n_in]);
    });
    assert_eq!(
        n,
        0,
        "{} {threads} threads: inference allocated {n} times",
        std::any::type_name::<N>()
    );
    // Training changes what inference prepares: preparing it again reuses the memory.
    let n = allocations(|| {
        for _ in 0..2 {
            net.loss_and_grad(&x, &labels, &mut grad);
            sgd.step(net.params_mut(), &grad);
            net.forward_batch(&x, &mut logits);
            forward_one(net, &x[..n_in]);
        }
    });
    assert_eq!(
        n,
        0,
        "{} {threads} threads: training and inference in turn allocated {n} times",
        std::any::type_name::<N>()
    );
}

// One test: the thread count is process-wide, and other tests would allocate meanwhile.
#[test]
fn steady_state_training_and_inference_allocate_nothing() {
    let mut lenet = LeNet5::new(1);
    let mut block = Block::new(1);
    // 0: the default setting, every core, as a user who never calls `set_threads` gets it.
    for threads in [0, 1, 2] {
        cnn::set_threads(threads);
        steady_state(
            &mut lenet,
            |net, x| {
                let one: &[f32; 784] = x.try_into().unwrap();
                std::hint::black_box(net.forward(one));
                std::hint::black_box(net.predict(one));
            },
            threads,
        );
        // With BatchNorm a step is several phases, whose parts meet in rayon's pool between
        // them: a step that sent each phase to the pool from outside would allocate (its queue
        // for such jobs takes a block of slots every 63).
        steady_state(
            &mut block,
            |net, x| {
                std::hint::black_box(net.forward(x.try_into().unwrap()));
            },
            threads,
        );
    }
    // A sample large enough that, with two threads, each large convolution splits it across
    // them (and the helper thread that takes the halves was started by the first calls).
    let mut resnet = ResNet8::new(1);
    for threads in [0, 2] {
        cnn::set_threads(threads);
        steady_state(
            &mut resnet,
            |net, x| {
                std::hint::black_box(net.forward(x.try_into().unwrap()));
            },
            threads,
        );
    }
    cnn::set_threads(0);
}
