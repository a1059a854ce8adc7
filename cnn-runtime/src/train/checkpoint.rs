//! Checkpoints: a network's parameters, the optimizer's state and the run's progress, in
//! one safetensors file, written atomically.
//!
//! Parameters are stored under their `state_dict` names (`conv1.weight`, ...), the
//! optimizer's state as `optim.momentum` (SGD) or `optim.adam.m` and `optim.adam.v` (Adam),
//! each as long as the parameters, and the progress as string metadata (`epoch`,
//! `global_step`, `best_accuracy`, ...). Python reads it with `safetensors.torch.load_file`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, View};
use safetensors::SafeTensors;

use super::atomic::write_atomically;
use super::optimizer::{OptimizerState, ADAM_M, ADAM_V, MOMENTUM};
use super::TrainError;
use crate::Network;

/// Marks a file as a training checkpoint of this layout.
const FORMAT: &str = "cnn-train-checkpoint/1";

/// Where a run stood when a checkpoint was written.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointInfo {
    /// Epochs completed (0: the initial weights, before any step).
    pub epoch: usize,
    /// Training steps completed.
    pub global_step: u64,
    /// The best test accuracy so far, in 0..=1 (0 before any evaluation).
    pub best_accuracy: f64,
    /// The epoch of the best test accuracy (0 before any evaluation).
    pub best_epoch: usize,
    /// `"sgd"` or `"adam"`.
    pub optimizer: String,
}

/// A checkpoint read back: the network and where the run stood.
///
/// ```
/// # use cnn::prelude::*;
/// # cnn::cnn! { struct Tiny { input: [1, 28, 28], flatten: Flatten, fc: Dense(10) } }
/// # let mnist = cnn::data::Mnist::load("../data/mnist")?;
/// # let (train, test) = (cnn::train::Subset::new(&mnist.train, 0..128), cnn::train::Subset::new(&mnist.test, 0..64));
/// # let runs = tempfile::tempdir().unwrap();
/// use cnn::train::{Checkpoint, Progress, TrainConfig, Trainer};
///
/// let config = TrainConfig::new().runs_dir(runs.path()).run_name("a").progress(Progress::Silent);
/// let outcome = Trainer::new(config).fit(Tiny::new(1), &train, &test)?;
/// let last: Checkpoint<Tiny> = Checkpoint::load(outcome.run_dir.join("checkpoints/last.safetensors"))?;
/// assert_eq!(last.info.epoch, 1);
/// assert_eq!(last.net.params(), outcome.net.params());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Checkpoint<N> {
    /// The network, with the checkpoint's parameters.
    pub net: N,
    /// Where the run stood.
    pub info: CheckpointInfo,
    /// The optimizer's state, for resuming.
    pub(crate) optimizer: OptimizerState,
}

impl<N: Network> Checkpoint<N> {
    /// Reads a checkpoint written by a training run for network `N`.
    ///
    /// # Errors
    ///
    /// [`TrainError::Io`] if the file cannot be read; [`TrainError::BadRunFile`] if it is not a
    /// checkpoint, or a parameter is missing or has the wrong shape or dtype.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TrainError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
        let bad = |reason: String| TrainError::bad_file(path, reason);
        let file =
            SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a valid safetensors file ({e:?})")))?;
        let (_, header) =
            SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a valid safetensors file ({e:?})")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "not a training checkpoint (no metadata `format: {FORMAT}`)"
            )));
        }
        let number = |key: &str| -> Result<f64, TrainError> {
            meta.get(key)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| bad(format!("metadata `{key}` is missing or not a number")))
        };
        let info = CheckpointInfo {
            epoch: number("epoch")? as usize,
            global_step: number("global_step")? as u64,
            best_accuracy: number("best_accuracy")?,
            best_epoch: number("best_epoch")? as usize,
            optimizer: meta.get("optimizer").cloned().unwrap_or_default(),
        };
        let steps = number("optimizer_steps")? as u64;

        let read = |name: &str, shape: &[usize]| -> Result<Option<Vec<f32>>, TrainError> {
            let Ok(view) = file.tensor(name) else { return Ok(None) };
            if view.dtype() != Dtype::F32 || view.shape() != shape {
                return Err(bad(format!(
                    "tensor `{name}` is {:?} {:?}, the network needs F32 {shape:?}",
                    view.dtype(),
                    view.shape()
                )));
            }
            Ok(Some(
                view.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ))
        };
        let mut params = vec![0.0f32; N::PARAM_COUNT];
        for info in N::PARAMS {
            let values = read(info.name, info.shape)?.ok_or_else(|| {
                bad(format!(
                    "missing tensor `{}`: the checkpoint is of another network",
                    info.name
                ))
            })?;
            params[info.range()].copy_from_slice(&values);
        }
        let mut tensors = Vec::new();
        for name in [MOMENTUM, ADAM_M, ADAM_V] {
            if let Some(values) = read(name, &[N::PARAM_COUNT])? {
                tensors.push((name, values));
            }
        }
        let expected = N::PARAMS.len() + tensors.len();
        if file.len() != expected {
            let mut extra: Vec<String> = file
                .names()
                .into_iter()
                .filter(|n| {
                    !N::PARAMS.iter().any(|p| p.name == *n) && ![MOMENTUM, ADAM_M, ADAM_V].contains(&n.as_str())
                })
                .cloned()
                .collect();
            extra.sort();
            return Err(bad(format!(
                "unexpected tensors {extra:?}: the checkpoint is of another network"
            )));
        }
        Ok(Checkpoint {
            net: N::from_params(&params),
            info,
            optimizer: OptimizerState { tensors, steps },
        })
    }
}

/// Without the network, which need not be `Debug` (and would print every parameter).
impl<N> std::fmt::Debug for Checkpoint<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Writes a checkpoint of `net`, `optimizer` and `info` to `path`, atomically.
pub(crate) fn save<N: Network>(
    path: &Path,
    net: &N,
    optimizer: &OptimizerState,
    info: &CheckpointInfo,
) -> Result<(), TrainError> {
    let params = net.params();
    let mut tensors: Vec<(String, F32Tensor)> = N::PARAMS
        .iter()
        .map(|p| (p.name.to_owned(), F32Tensor::new(p.shape.to_vec(), &params[p.range()])))
        .collect();
    for (name, values) in &optimizer.tensors {
        tensors.push(((*name).to_owned(), F32Tensor::new(vec![values.len()], values)));
    }
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_owned()),
        ("epoch", info.epoch.to_string()),
        ("global_step", info.global_step.to_string()),
        ("best_accuracy", info.best_accuracy.to_string()),
        ("best_epoch", info.best_epoch.to_string()),
        ("optimizer", info.optimizer.clone()),
        ("optimizer_steps", optimizer.steps.to_string()),
        ("param_count", N::PARAM_COUNT.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let bytes = safetensors::serialize(tensors, &Some(meta))
        .map_err(|e| TrainError::bad_file(path, format!("could not serialize the checkpoint ({e:?})")))?;
    write_atomically(path, &bytes)
}

/// One tensor to serialize, its bytes already little-endian.
struct F32Tensor {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl F32Tensor {
    fn new(shape: Vec<usize>, values: &[f32]) -> Self {
        F32Tensor {
            shape,
            bytes: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

impl View for F32Tensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}
