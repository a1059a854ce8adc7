//! Learning-rate schedules, stepped once per epoch as PyTorch's `StepLR` and
//! `CosineAnnealingLR` usually are.

use serde::{Deserialize, Serialize};

/// How the learning rate changes from epoch to epoch.
///
/// The rate of an epoch depends only on the base rate and the epoch number, so a resumed run
/// continues on the same curve.
///
/// ```
/// use cnn_runtime::train::LrSchedule;
/// assert_eq!(LrSchedule::Constant.lr(0.1, 7), 0.1);
/// let step = LrSchedule::Step { step_size: 2, gamma: 0.5 };
/// assert_eq!([step.lr(0.1, 0), step.lr(0.1, 1), step.lr(0.1, 2), step.lr(0.1, 4)], [0.1, 0.1, 0.05, 0.025]);
/// let cosine = LrSchedule::Cosine { t_max: 10, min_lr: 0.0 };
/// assert!((cosine.lr(0.1, 5) - 0.05).abs() < 1e-7);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LrSchedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// The base rate times `gamma` every `step_size` epochs, as `torch.optim.lr_scheduler.StepLR`:
    /// `base * gamma^(epoch / step_size)`.
    Step {
        /// Epochs between two decays (at least 1).
        step_size: usize,
        /// The factor of each decay.
        gamma: f32,
    },
    /// Half a cosine from the base rate down to `min_lr` over `t_max` epochs, then `min_lr`,
    /// as `torch.optim.lr_scheduler.CosineAnnealingLR`:
    /// `min_lr + (base - min_lr) * (1 + cos(pi * epoch / t_max)) / 2`.
    Cosine {
        /// Epochs from the base rate to `min_lr` (at least 1).
        t_max: usize,
        /// The final rate.
        min_lr: f32,
    },
    /// The same half cosine over `t_max` epochs, but updated at every step rather than every
    /// epoch: step `s` of `n` in epoch `e` gets
    /// `min_lr + (base - min_lr) * (1 + cos(pi * (e + s / n) / t_max)) / 2`. What short runs
    /// need (a one-epoch run decays from the base rate to `min_lr` within the epoch), as
    /// `CosineAnnealingLR` stepped per batch with `T_max = t_max * n`.
    #[serde(rename = "cosine_steps")]
    CosineSteps {
        /// Epochs from the base rate to `min_lr` (at least 1).
        t_max: usize,
        /// The final rate.
        min_lr: f32,
    },
}

impl LrSchedule {
    /// The learning rate of epoch `epoch` (counted from 0) for base rate `base`.
    ///
    /// Computed in `f64` and rounded once, so the values do not drift over epochs.
    ///
    /// ```
    /// use cnn_runtime::train::LrSchedule;
    /// let cosine = LrSchedule::Cosine { t_max: 4, min_lr: 0.01 };
    /// assert_eq!(cosine.lr(0.1, 0), 0.1);
    /// assert_eq!(cosine.lr(0.1, 4), 0.01);
    /// assert_eq!(cosine.lr(0.1, 9), 0.01);
    /// ```
    pub fn lr(&self, base: f32, epoch: usize) -> f32 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => {
                let decays = epoch / step_size.max(1);
                (base as f64 * (gamma as f64).powi(decays.min(i32::MAX as usize) as i32)) as f32
            }
            LrSchedule::Cosine { t_max, min_lr } | LrSchedule::CosineSteps { t_max, min_lr } => {
                let t_max = t_max.max(1);
                cosine(base, min_lr, epoch.min(t_max) as f64 / t_max as f64)
            }
        }
    }

    /// The learning rate of step `step` (from 0) of `steps` in epoch `epoch`: the epoch's rate
    /// ([`LrSchedule::lr`]), except for [`LrSchedule::CosineSteps`], which moves every step.
    ///
    /// ```
    /// use cnn_runtime::train::LrSchedule;
    /// let s = LrSchedule::CosineSteps { t_max: 1, min_lr: 0.0 };
    /// assert_eq!(s.lr_at(0.1, 0, 0, 100), 0.1);
    /// assert!((s.lr_at(0.1, 0, 50, 100) - 0.05).abs() < 1e-7);
    /// assert_eq!(LrSchedule::Constant.lr_at(0.1, 3, 7, 10), 0.1);
    /// ```
    pub fn lr_at(&self, base: f32, epoch: usize, step: usize, steps: usize) -> f32 {
        match *self {
            LrSchedule::CosineSteps { t_max, min_lr } => {
                let (t_max, steps) = (t_max.max(1), steps.max(1));
                let done = (epoch * steps + step.min(steps)).min(t_max * steps);
                cosine(base, min_lr, done as f64 / (t_max * steps) as f64)
            }
            _ => self.lr(base, epoch),
        }
    }

    /// `"constant"`, `"step"`, `"cosine"` or `"cosine_steps"`, as in `config.json`.
    pub fn name(&self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Step { .. } => "step",
            LrSchedule::Cosine { .. } => "cosine",
            LrSchedule::CosineSteps { .. } => "cosine_steps",
        }
    }

    /// A check of the parameters: a zero period is an error.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match *self {
            LrSchedule::Step { step_size: 0, .. } => Err("the step schedule needs step_size >= 1".into()),
            LrSchedule::Cosine { t_max: 0, .. } | LrSchedule::CosineSteps { t_max: 0, .. } => {
                Err("the cosine schedule needs t_max >= 1".into())
            }
            LrSchedule::Step { gamma, .. } if !(gamma.is_finite() && gamma > 0.0) => {
                Err(format!("the step schedule needs a positive gamma, got {gamma}"))
            }
            LrSchedule::Cosine { min_lr, .. } | LrSchedule::CosineSteps { min_lr, .. }
                if !(min_lr.is_finite() && min_lr >= 0.0) =>
            {
                Err(format!("the cosine schedule needs min_lr >= 0, got {min_lr}"))
            }
            _ => Ok(()),
        }
    }
}

/// `min_lr + (base - min_lr) * (1 + cos(pi * progress)) / 2`, in `f64`, rounded once.
fn cosine(base: f32, min_lr: f32, progress: f64) -> f32 {
    let (base, min_lr) = (base as f64, min_lr as f64);
    (min_lr + (base - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_is_the_base_rate_at_every_epoch() {
        for epoch in [0, 1, 5, 1000] {
            assert_eq!(LrSchedule::Constant.lr(0.01, epoch), 0.01);
        }
    }

    #[test]
    fn step_decays_every_step_size_epochs() {
        // torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1), lr 1.0:
        // epochs 0-2 -> 1.0, 3-5 -> 0.1, 6-8 -> 0.01.
        let s = LrSchedule::Step {
            step_size: 3,
            gamma: 0.1,
        };
        let got: Vec<f32> = (0..9).map(|e| s.lr(1.0, e)).collect();
        let want = [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-7, "{got:?}");
        }
    }

    #[test]
    fn cosine_follows_half_a_cosine_then_stays_at_min() {
        // CosineAnnealingLR(opt, T_max=4, eta_min=0), lr 1.0: 1, (1+cos(pi/4))/2, 0.5,
        // (1+cos(3pi/4))/2, 0.
        let s = LrSchedule::Cosine { t_max: 4, min_lr: 0.0 };
        let want = [1.0, 0.853_553_4, 0.5, 0.146_446_6, 0.0, 0.0];
        for (epoch, w) in want.iter().enumerate() {
            assert!(
                (s.lr(1.0, epoch) - w).abs() < 1e-6,
                "epoch {epoch}: {} vs {w}",
                s.lr(1.0, epoch)
            );
        }
        let s = LrSchedule::Cosine { t_max: 2, min_lr: 0.1 };
        assert!((s.lr(0.5, 1) - 0.3).abs() < 1e-7);
        assert_eq!(s.lr(0.5, 2), 0.1);
    }

    #[test]
    fn cosine_steps_moves_within_the_epoch_and_ends_at_min() {
        let s = LrSchedule::CosineSteps { t_max: 2, min_lr: 0.0 };
        // Half-way through the first of two epochs: a quarter of the way.
        assert!((s.lr_at(1.0, 0, 5, 10) - 0.853_553_4).abs() < 1e-6);
        assert!((s.lr_at(1.0, 1, 0, 10) - 0.5).abs() < 1e-7);
        assert_eq!(s.lr_at(1.0, 2, 0, 10), 0.0);
        assert_eq!(s.lr_at(1.0, 7, 3, 10), 0.0);
        // Strictly decreasing over the run.
        let all: Vec<f32> = (0..20).map(|i| s.lr_at(1.0, i / 10, i % 10, 10)).collect();
        assert!(all.windows(2).all(|w| w[1] < w[0]), "{all:?}");
        // The per-epoch rate is the epoch's first step's.
        assert_eq!(s.lr(1.0, 1), s.lr_at(1.0, 1, 0, 10));
    }

    #[test]
    fn zero_periods_are_rejected() {
        assert!(LrSchedule::Step {
            step_size: 0,
            gamma: 0.5
        }
        .validate()
        .is_err());
        assert!(LrSchedule::Cosine { t_max: 0, min_lr: 0.0 }.validate().is_err());
        assert!(LrSchedule::Constant.validate().is_ok());
    }

    #[test]
    fn schedules_round_trip_through_json() {
        for s in [
            LrSchedule::Constant,
            LrSchedule::Step {
                step_size: 2,
                gamma: 0.5,
            },
            LrSchedule::Cosine { t_max: 3, min_lr: 1e-4 },
            LrSchedule::CosineSteps { t_max: 2, min_lr: 0.0 },
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<LrSchedule>(&json).unwrap(), s, "{json}");
            assert!(json.contains(&format!(r#""kind":"{}""#, s.name())), "{json}");
        }
        assert_eq!(
            serde_json::to_string(&LrSchedule::Step {
                step_size: 2,
                gamma: 0.5
            })
            .unwrap(),
            r#"{"kind":"step","step_size":2,"gamma":0.5}"#
        );
    }
}
