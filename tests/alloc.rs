//! A steady-state training step and inference allocate nothing, with the default thread
//! setting too: proved with a counting global allocator (this test binary only).

mod common;

use common::LeNet5;

use cnn::optim::{Adam, Sgd};
use cnn::prelude::*;

#[path = "common/count_allocations.rs"]
mod count_allocations;

use count_allocations::allocations;

// One test: the thread count is process-wide, and other tests would allocate meanwhile.
#[test]
fn steady_state_training_and_inference_allocate_nothing() {
    let mut net = LeNet5::new(1);
    let x: Vec<f32> = (0..64 * 784).map(|i| (i % 255) as f32 / 255.0).collect();
    let labels: Vec<u32> = (0..64).map(|i| i % 10).collect();
    let mut grad = vec![0.0; LeNet5::PARAM_COUNT];
    let mut logits = vec![0.0; 64 * 10];
    let one: &[f32; 784] = x[..784].try_into().unwrap();
    // 0: the default setting, every core, as a user who never calls `set_threads` gets it.
    for threads in [0, 1, 2] {
        cnn::set_threads(threads);
        let mut sgd = Sgd::new(0.01).momentum(0.9);
        let mut adam = Adam::new(1e-3);
        // The first calls size the workspace and the optimizer state.
        for _ in 0..2 {
            net.loss_and_grad(&x, &labels, &mut grad);
            sgd.step(net.params_mut(), &grad);
            adam.step(net.params_mut(), &grad);
            net.forward_batch(&x, &mut logits);
            net.forward(one);
        }
        let n = allocations(|| {
            for _ in 0..3 {
                net.loss_and_grad(&x, &labels, &mut grad);
                sgd.step(net.params_mut(), &grad);
                adam.step(net.params_mut(), &grad);
            }
        });
        assert_eq!(n, 0, "{threads} threads: a training step allocated {n} times");
        let n = allocations(|| {
            net.forward_batch(&x, &mut logits);
            net.forward_batch(&x[..784 * 3], &mut logits[..30]);
            std::hint::black_box(net.forward(one));
            std::hint::black_box(net.predict(one));
        });
        assert_eq!(n, 0, "{threads} threads: inference allocated {n} times");
    }
    cnn::set_threads(0);
}
