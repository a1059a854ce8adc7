//! The optimizer a run steps with, built from its [`OptimizerConfig`], with its state laid
//! out for checkpoints.

use crate::optim::{Adam, Sgd};

use super::OptimizerConfig;

/// SGD or Adam, as the configuration says.
pub(crate) enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

/// An optimizer's state as a checkpoint stores it: named tensors and a step count.
pub(crate) struct OptimizerState {
    /// `(name, values)`, each `PARAM_COUNT` long; empty before the first step.
    pub tensors: Vec<(&'static str, Vec<f32>)>,
    /// Adam's step count (0 for SGD).
    pub steps: u64,
}

/// Tensor names in a checkpoint.
pub(crate) const MOMENTUM: &str = "optim.momentum";
pub(crate) const ADAM_M: &str = "optim.adam.m";
pub(crate) const ADAM_V: &str = "optim.adam.v";

impl Optimizer {
    pub fn new(config: &OptimizerConfig) -> Self {
        match *config {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                dampening,
                weight_decay,
                nesterov,
            } => Optimizer::Sgd(
                Sgd::new(lr)
                    .momentum(momentum)
                    .dampening(dampening)
                    .weight_decay(weight_decay)
                    .nesterov(nesterov),
            ),
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => Optimizer::Adam(Adam::new(lr).betas(beta1, beta2).eps(eps).weight_decay(weight_decay)),
        }
    }

    pub fn set_lr(&mut self, lr: f32) {
        match self {
            Optimizer::Sgd(o) => o.set_lr(lr),
            Optimizer::Adam(o) => o.set_lr(lr),
        }
    }

    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        match self {
            Optimizer::Sgd(o) => o.step(params, grad),
            Optimizer::Adam(o) => o.step(params, grad),
        }
    }

    pub fn state(&self) -> OptimizerState {
        match self {
            Optimizer::Sgd(o) if o.state().is_empty() => OptimizerState {
                tensors: vec![],
                steps: 0,
            },
            Optimizer::Sgd(o) => OptimizerState {
                tensors: vec![(MOMENTUM, o.state().to_vec())],
                steps: 0,
            },
            Optimizer::Adam(o) if o.steps() == 0 => OptimizerState {
                tensors: vec![],
                steps: 0,
            },
            Optimizer::Adam(o) => {
                let (m, v) = o.state();
                OptimizerState {
                    tensors: vec![(ADAM_M, m.to_vec()), (ADAM_V, v.to_vec())],
                    steps: o.steps(),
                }
            }
        }
    }

    /// Restores a state read from a checkpoint; `Err` says which tensor is missing.
    pub fn restore(&mut self, mut state: OptimizerState) -> Result<(), String> {
        let mut take = |name: &str| {
            state
                .tensors
                .iter()
                .position(|(n, _)| *n == name)
                .map(|i| state.tensors.swap_remove(i).1)
        };
        match self {
            Optimizer::Sgd(o) => o.set_state(take(MOMENTUM).unwrap_or_default()),
            Optimizer::Adam(o) => {
                if state.steps == 0 {
                    return Ok(());
                }
                let (Some(m), Some(v)) = (take(ADAM_M), take(ADAM_V)) else {
                    return Err(format!(
                        "the checkpoint holds {} Adam steps but not the tensors `{ADAM_M}` and `{ADAM_V}`",
                        state.steps
                    ));
                };
                o.set_state(state.steps, m, v);
            }
        }
        Ok(())
    }
}
