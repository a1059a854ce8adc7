//! Checkpoints: a network's state, the optimizer's state and the run's progress, in one
//! safetensors file, written atomically.
//!
//! The network's state is stored as [`save_safetensors`](crate::io::save_safetensors) stores
//! it, a PyTorch `state_dict`: parameters and buffers under their names (`conv1.weight`,
//! `bn1.running_mean`, ...), and each BatchNorm's `num_batches_tracked`. Beside it, the
//! optimizer's state as `optim.momentum` (SGD) or `optim.adam.m` and `optim.adam.v` (Adam),
//! each as long as the parameters, and as string metadata the progress (`epoch`,
//! `global_step`, `best_accuracy`, ...) and the network's [`TrainState`] (`train_seed`,
//! `train_steps`: the seed of Dropout's masks and the steps taken), which a resumed run needs to
//! draw the masks an uninterrupted one would have drawn. Python reads it with
//! `safetensors.torch.load_file`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::Dtype;
use safetensors::SafeTensors;

use super::atomic::write_atomically;
use super::optimizer::{OptimizerState, ADAM_M, ADAM_V, MOMENTUM};
use super::TrainError;
use crate::io::{check_state, state_dict, Tensor};
use crate::{Network, TrainState};

/// Marks a file as a training checkpoint of this layout. Version 2 added the buffers, the step
/// counters and the [`TrainState`].
const FORMAT: &str = "cnn-train-checkpoint/2";

/// Version 1, still read: a network without buffers, and no [`TrainState`] (the network keeps
/// the one [`Network::from_params`] gives).
const FORMAT_1: &str = "cnn-train-checkpoint/1";

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
/// assert_eq!(last.net.train_state(), outcome.net.train_state());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Checkpoint<N> {
    /// The network, with the checkpoint's parameters, buffers and [`TrainState`].
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
    /// - [`TrainError::Io`] if the file cannot be read;
    /// - [`TrainError::BadRunFile`] if it is not a checkpoint, its metadata is missing or
    ///   damaged, or an optimizer tensor has the wrong shape or dtype;
    /// - [`TrainError::Data`] if the network's tensors do not pass the checks of
    ///   [`load_safetensors`](crate::io::load_safetensors): a parameter or buffer missing or
    ///   of the wrong shape or dtype, a tensor of another network, a non-finite value.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TrainError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
        let bad = |reason: String| TrainError::bad_file(path, reason);
        let file =
            SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a valid safetensors file ({e:?})")))?;
        let (_, header) =
            SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a valid safetensors file ({e:?})")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let format = meta.get("format").map(String::as_str);
        if format != Some(FORMAT) && format != Some(FORMAT_1) {
            return Err(bad(format!(
                "not a training checkpoint (no metadata `format: {FORMAT}`)"
            )));
        }
        let number = |key: &str| -> Result<f64, TrainError> {
            meta.get(key)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| bad(format!("metadata `{key}` is missing or not a number")))
        };
        // Seeds and step counts are exact 64-bit integers, which an f64 would round.
        let integer = |key: &str| -> Result<u64, TrainError> {
            meta.get(key)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| bad(format!("metadata `{key}` is missing or not an unsigned integer")))
        };
        let info = CheckpointInfo {
            epoch: number("epoch")? as usize,
            global_step: number("global_step")? as u64,
            best_accuracy: number("best_accuracy")?,
            best_epoch: number("best_epoch")? as usize,
            optimizer: meta.get("optimizer").cloned().unwrap_or_default(),
        };
        let steps = number("optimizer_steps")? as u64;
        let train_state = match format {
            Some(FORMAT) => Some(TrainState {
                seed: integer("train_seed")?,
                steps: integer("train_steps")?,
            }),
            _ => None,
        };

        let mut net: N = check_state::<N>(path, &file, &[MOMENTUM, ADAM_M, ADAM_V])?.to_network();
        if let Some(state) = train_state {
            net.set_train_state(state);
        }
        let mut tensors = Vec::new();
        for name in [MOMENTUM, ADAM_M, ADAM_V] {
            let Ok(view) = file.tensor(name) else { continue };
            if view.dtype() != Dtype::F32 || view.shape() != [N::PARAM_COUNT] {
                return Err(bad(format!(
                    "tensor `{name}` is {:?} {:?}, the optimizer needs F32 [{}]",
                    view.dtype(),
                    view.shape(),
                    N::PARAM_COUNT
                )));
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.push((name, values));
        }
        Ok(Checkpoint {
            net,
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

/// Writes a checkpoint of `net` (its `state_dict` and [`TrainState`]), `optimizer` and `info` to
/// `path`, atomically.
pub(crate) fn save<N: Network>(
    path: &Path,
    net: &N,
    optimizer: &OptimizerState,
    info: &CheckpointInfo,
) -> Result<(), TrainError> {
    let mut tensors = state_dict(net);
    for (name, values) in &optimizer.tensors {
        tensors.push(((*name).to_owned(), Tensor::f32s(&[values.len()], values)));
    }
    let state = net.train_state();
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_owned()),
        ("epoch", info.epoch.to_string()),
        ("global_step", info.global_step.to_string()),
        ("best_accuracy", info.best_accuracy.to_string()),
        ("best_epoch", info.best_epoch.to_string()),
        ("optimizer", info.optimizer.clone()),
        ("optimizer_steps", optimizer.steps.to_string()),
        ("param_count", N::PARAM_COUNT.to_string()),
        ("buffer_count", N::BUFFER_COUNT.to_string()),
        ("train_seed", state.seed.to_string()),
        ("train_steps", state.steps.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let bytes = safetensors::serialize(tensors, &Some(meta))
        .map_err(|e| TrainError::bad_file(path, format!("could not serialize the checkpoint ({e:?})")))?;
    write_atomically(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::toy::Toy;
    use safetensors::tensor::TensorView;

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|x| x.to_bits()).collect()
    }

    fn info() -> CheckpointInfo {
        CheckpointInfo {
            epoch: 3,
            global_step: 18,
            best_accuracy: 0.75,
            best_epoch: 2,
            optimizer: "adam".to_owned(),
        }
    }

    /// A trained-looking network: a step taken, a seed that an `f64` would round.
    fn net() -> Toy {
        let mut net = Toy::new(1);
        net.buffers_mut().copy_from_slice(&[0.5, -1.0, 2.0, 0.25, 3.0, 1.5]);
        net.set_train_state(TrainState {
            seed: u64::MAX - 1,
            steps: (1 << 53) + 1,
        });
        net
    }

    fn adam_state() -> OptimizerState {
        let m: Vec<f32> = (0..Toy::PARAM_COUNT).map(|i| i as f32 / 8.0).collect();
        let v: Vec<f32> = (0..Toy::PARAM_COUNT).map(|i| i as f32 / 16.0).collect();
        OptimizerState {
            tensors: vec![(ADAM_M, m), (ADAM_V, v)],
            steps: 18,
        }
    }

    /// Rewrites the checkpoint at `path` without the tensors `drop`, with `edit` applied to its
    /// metadata.
    fn rewrite(path: &Path, drop: &[&str], edit: impl FnOnce(&mut HashMap<String, String>)) {
        let bytes = std::fs::read(path).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut meta = header.metadata().clone().unwrap();
        edit(&mut meta);
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let tensors: Vec<(String, TensorView<'_>)> = file
            .tensors()
            .into_iter()
            .filter(|(name, _)| !drop.contains(&name.as_str()))
            .collect();
        safetensors::serialize_to_file(tensors, &Some(meta), path).unwrap();
    }

    #[test]
    fn round_trip_keeps_buffers_train_state_and_optimizer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.safetensors");
        let net = net();
        save(&path, &net, &adam_state(), &info()).unwrap();

        let back = Checkpoint::<Toy>::load(&path).unwrap();
        assert_eq!(bits(back.net.params()), bits(net.params()));
        assert_eq!(bits(back.net.buffers()), bits(net.buffers()));
        assert_eq!(back.net.train_state(), net.train_state());
        assert_eq!(back.info, info());
        assert_eq!(back.optimizer.steps, 18);
        assert_eq!(back.optimizer.tensors, adam_state().tensors);

        // The network's part is a PyTorch `state_dict`: `num_batches_tracked` is there too.
        let bytes = std::fs::read(&path).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = file.names();
        names.sort();
        assert_eq!(
            names,
            [
                "bn.num_batches_tracked",
                "bn.running_mean",
                "bn.running_var",
                "fc.bias",
                "fc.weight",
                "optim.adam.m",
                "optim.adam.v"
            ]
        );
        let counter = file.tensor("bn.num_batches_tracked").unwrap();
        assert_eq!(counter.dtype(), Dtype::I64);
        assert_eq!(counter.data(), ((1i64 << 53) + 1).to_le_bytes());
    }

    #[test]
    fn version_1_checkpoints_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.safetensors");
        let net = net();
        save(&path, &net, &adam_state(), &info()).unwrap();
        rewrite(&path, &["bn.num_batches_tracked"], |meta| {
            meta.insert("format".to_owned(), FORMAT_1.to_owned());
            meta.remove("train_seed");
            meta.remove("train_steps");
        });
        let back = Checkpoint::<Toy>::load(&path).unwrap();
        assert_eq!(bits(back.net.params()), bits(net.params()));
        // No state in the file: the network keeps `from_params`' one.
        assert_eq!(back.net.train_state(), TrainState::default());
    }

    #[test]
    fn missing_train_state_or_buffer_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.safetensors");
        save(&path, &net(), &adam_state(), &info()).unwrap();
        rewrite(&path, &[], |meta| {
            meta.remove("train_seed");
        });
        let err = Checkpoint::<Toy>::load(&path).unwrap_err();
        assert!(
            matches!(&err, TrainError::BadRunFile { reason, .. } if reason.contains("`train_seed`")),
            "{err:?}"
        );

        save(&path, &net(), &adam_state(), &info()).unwrap();
        rewrite(&path, &["bn.running_var"], |_| {});
        let err = Checkpoint::<Toy>::load(&path).unwrap_err();
        assert!(
            matches!(&err, TrainError::Data(crate::Error::MissingTensor { tensor, .. }) if tensor == "bn.running_var"),
            "{err:?}"
        );
        assert!(err.to_string().contains("last.safetensors"), "{err}");
    }

    #[test]
    fn foreign_tensor_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.safetensors");
        save(&path, &net(), &adam_state(), &info()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let extra = [0u8; 4];
        let mut tensors = file.tensors();
        tensors.push((
            "fc2.bias".to_owned(),
            TensorView::new(Dtype::F32, vec![1], &extra).unwrap(),
        ));
        safetensors::serialize_to_file(tensors, header.metadata(), &path).unwrap();
        let err = Checkpoint::<Toy>::load(&path).unwrap_err();
        assert!(
            matches!(&err, TrainError::Data(crate::Error::UnexpectedTensor { tensor, .. }) if tensor == "fc2.bias"),
            "{err:?}"
        );
    }
}
