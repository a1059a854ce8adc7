//! Helpers shared by the integration tests.
#![allow(dead_code)]

use cnn::prelude::*;

cnn! {
    /// LeNet-5 of DESIGN.md, as most test binaries use it.
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

/// A deterministic, irregular sequence in about [-1, 1].
pub fn seq(n: usize, phase: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 + phase) * 1.618_034).sin() * 0.9 + 0.05 * ((i % 7) as f32 - 3.0) / 3.0)
        .collect()
}

/// Checks `loss_and_grad` against central differences of the loss, parameter by parameter.
///
/// Step 2e-4 on f32 parameters, small enough that no ReLU input or max-pool winner of these test
/// networks changes side; passes when `|analytic - numeric| <= 2e-2 * max(|numeric|, 0.05)`
/// (f32 rounding of a loss near 2 costs about 7e-4 of a derivative at this step).
///
/// Every evaluation starts from `net`'s buffers and train state, so Dropout draws the same
/// masks each time and BatchNorm (whose running statistics a training step updates, but does not
/// read) normalizes with the batch's statistics.
pub fn check_gradients<N: Network>(net: &N, input: &[f32], labels: &[u32]) {
    let state = net.train_state();
    let mut probe = N::from_params(net.params());
    probe.buffers_mut().copy_from_slice(net.buffers());
    probe.set_train_state(state);
    let mut grad = vec![f32::NAN; N::PARAM_COUNT];
    probe.loss_and_grad(input, labels, &mut grad);
    let mut scratch = vec![0.0; N::PARAM_COUNT];
    let h = 2e-4f32;
    for (i, &analytic) in grad.iter().enumerate() {
        let p = net.params()[i];
        probe.params_mut()[i] = p + h;
        probe.set_train_state(state);
        let up = probe.loss_and_grad(input, labels, &mut scratch) as f64;
        probe.params_mut()[i] = p - h;
        probe.set_train_state(state);
        let down = probe.loss_and_grad(input, labels, &mut scratch) as f64;
        probe.params_mut()[i] = p;
        let numeric = (up - down) / (2.0 * h as f64);
        let analytic = analytic as f64;
        let name = N::PARAMS
            .iter()
            .find(|q| q.range().contains(&i))
            .map_or("?", |q| q.name);
        assert!(
            (analytic - numeric).abs() <= 2e-2 * numeric.abs().max(0.05),
            "{name} (flat index {i}): analytic {analytic} vs central difference {numeric}"
        );
    }
}
