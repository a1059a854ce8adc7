//! A network and a data set written by hand for the tests of training runs, so that they do not
//! depend on the macro: `bn: BatchNorm1d(affine = false)`, `drop: Dropout(0.5)`, `fc: Dense(2)`
//! on 3 inputs. Like a generated network, a training step normalizes with the batch's
//! statistics and updates the running ones, draws Dropout's masks from its [`TrainState`], and
//! counts the step; inference uses the running statistics. So a run's result depends on the
//! buffers and on the state, as a generated network's does.

use crate::train::Samples;
use crate::{Network, ParamInfo, TrainState};

const FEATURES: usize = 3;
const CLASSES: usize = 2;
const EPS: f32 = 1e-5;
const MOMENTUM: f32 = 0.1;
const DROP: f32 = 0.5;

pub(crate) struct Toy {
    params: Vec<f32>,
    buffers: Vec<f32>,
    state: TrainState,
}

impl Toy {
    /// A network with small parameters drawn from `seed`, which also seeds Dropout.
    pub(crate) fn new(seed: u64) -> Self {
        let params: Vec<f32> = (0..Self::PARAM_COUNT as u64)
            .map(|i| (mix(seed ^ mix(i)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect();
        let mut net = Self::from_params(&params);
        net.state.seed = seed;
        net
    }

    /// The keep-or-drop decision of element `i` of this step's batch: a pure function of the
    /// seed, the step and the position, as a generated network's masks are.
    fn keep(&self, i: usize) -> bool {
        let bits = mix(self.state.seed ^ mix(self.state.steps ^ mix(i as u64)));
        (bits >> 11) as f64 / (1u64 << 53) as f64 >= f64::from(DROP)
    }
}

/// SplitMix64's output function: a well-mixed 64-bit hash.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Network for Toy {
    const INPUT_SHAPE: &'static [usize] = &[FEATURES];
    const INPUT_LEN: usize = FEATURES;
    const OUTPUT_LEN: usize = CLASSES;
    const PARAM_COUNT: usize = CLASSES * FEATURES + CLASSES;
    const PARAMS: &'static [ParamInfo] = &[
        ParamInfo {
            name: "fc.weight",
            shape: &[CLASSES, FEATURES],
            offset: 0,
        },
        ParamInfo {
            name: "fc.bias",
            shape: &[CLASSES],
            offset: CLASSES * FEATURES,
        },
    ];
    const BUFFER_COUNT: usize = 2 * FEATURES;
    const BUFFERS: &'static [ParamInfo] = &[
        ParamInfo {
            name: "bn.running_mean",
            shape: &[FEATURES],
            offset: 0,
        },
        ParamInfo {
            name: "bn.running_var",
            shape: &[FEATURES],
            offset: FEATURES,
        },
    ];

    fn from_params(params: &[f32]) -> Self {
        assert_eq!(params.len(), Self::PARAM_COUNT);
        Toy {
            params: params.to_vec(),
            buffers: [[0.0; FEATURES], [1.0; FEATURES]].concat(),
            state: TrainState::default(),
        }
    }

    fn params(&self) -> &[f32] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    fn buffers(&self) -> &[f32] {
        &self.buffers
    }

    fn buffers_mut(&mut self) -> &mut [f32] {
        &mut self.buffers
    }

    fn train_state(&self) -> TrainState {
        self.state
    }

    fn set_train_state(&mut self, state: TrainState) {
        self.state = state;
    }

    fn forward_batch(&self, input: &[f32], output: &mut [f32]) {
        let (mean, var) = self.buffers.split_at(FEATURES);
        for (x, z) in input.chunks_exact(FEATURES).zip(output.chunks_exact_mut(CLASSES)) {
            let h: Vec<f32> = (0..FEATURES)
                .map(|k| (x[k] - mean[k]) / (var[k] + EPS).sqrt())
                .collect();
            dense(&self.params, &h, z);
        }
    }

    fn loss_and_grad(&mut self, input: &[f32], labels: &[u32], grad: &mut [f32]) -> f32 {
        let n = labels.len();
        assert!(n >= 2 && input.len() == n * FEATURES && grad.len() == Self::PARAM_COUNT);
        // Batch statistics per feature: the biased variance normalizes, the unbiased one
        // updates the running variance.
        let mut mean = [0.0f32; FEATURES];
        let mut var = [0.0f32; FEATURES];
        for x in input.chunks_exact(FEATURES) {
            (0..FEATURES).for_each(|k| mean[k] += x[k] / n as f32);
        }
        for x in input.chunks_exact(FEATURES) {
            (0..FEATURES).for_each(|k| var[k] += (x[k] - mean[k]).powi(2) / n as f32);
        }
        grad.fill(0.0);
        let mut loss = 0.0;
        for (b, (x, &label)) in input.chunks_exact(FEATURES).zip(labels).enumerate() {
            let h: Vec<f32> = (0..FEATURES)
                .map(|k| {
                    let kept = self.keep(b * FEATURES + k);
                    let x = (x[k] - mean[k]) / (var[k] + EPS).sqrt();
                    if kept {
                        x / (1.0 - DROP)
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut z = [0.0; CLASSES];
            dense(&self.params, &h, &mut z);
            let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f32 = z.iter().map(|v| (v - max).exp()).sum();
            loss += (max + sum.ln() - z[label as usize]) / n as f32;
            for o in 0..CLASSES {
                let dz = ((z[o] - max).exp() / sum - f32::from(o == label as usize)) / n as f32;
                (0..FEATURES).for_each(|k| grad[o * FEATURES + k] += dz * h[k]);
                grad[CLASSES * FEATURES + o] += dz;
            }
        }
        let (running_mean, running_var) = self.buffers.split_at_mut(FEATURES);
        for k in 0..FEATURES {
            running_mean[k] = (1.0 - MOMENTUM) * running_mean[k] + MOMENTUM * mean[k];
            let unbiased = var[k] * n as f32 / (n - 1) as f32;
            running_var[k] = (1.0 - MOMENTUM) * running_var[k] + MOMENTUM * unbiased;
        }
        self.state.steps += 1;
        loss
    }
}

/// `z = W h + b` with `fc`'s parameters.
fn dense(params: &[f32], h: &[f32], z: &mut [f32]) {
    let (weight, bias) = params.split_at(CLASSES * FEATURES);
    for (o, z) in z.iter_mut().enumerate() {
        *z = bias[o] + (0..FEATURES).map(|k| weight[o * FEATURES + k] * h[k]).sum::<f32>();
    }
}

/// `len` samples of 3 features, the label saying whether the first two add up to more than 0.
pub(crate) struct ToyData {
    pub(crate) len: usize,
    /// Shifts the samples, so that two sets differ.
    pub(crate) offset: usize,
}

impl Samples for ToyData {
    fn len(&self) -> usize {
        self.len
    }

    fn input_len(&self) -> usize {
        FEATURES
    }

    fn gather(&self, indices: &[usize], inputs: &mut [f32], labels: &mut [u32]) {
        for (k, &i) in indices.iter().enumerate() {
            let t = (i + self.offset) as f32;
            let x = [t.sin() * 2.0 + 1.0, (1.3 * t).cos() * 3.0, (i % 5) as f32 - 2.0];
            inputs[k * FEATURES..(k + 1) * FEATURES].copy_from_slice(&x);
            labels[k] = u32::from(x[0] + x[1] > 1.0);
        }
    }
}
