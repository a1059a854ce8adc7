//! The hyperparameters and settings of a training run, saved in its `config.json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::LrSchedule;

/// The optimizer and its parameters; see [`Sgd`](crate::optim::Sgd) and
/// [`Adam`](crate::optim::Adam) for the update rules.
///
/// ```
/// use cnn_runtime::train::OptimizerConfig;
/// let sgd = OptimizerConfig::sgd(0.01).with_momentum(0.9);
/// assert_eq!(sgd.lr(), 0.01);
/// let adam = OptimizerConfig::adam(1e-3);
/// assert_eq!(adam.name(), "adam");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// Stochastic gradient descent, as `torch.optim.SGD`.
    Sgd {
        /// Base learning rate (the schedule scales it).
        lr: f32,
        /// Momentum factor.
        momentum: f32,
        /// Dampening of the momentum.
        dampening: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam, as `torch.optim.Adam`.
    Adam {
        /// Base learning rate (the schedule scales it).
        lr: f32,
        /// Decay of the first moment estimate.
        beta1: f32,
        /// Decay of the second moment estimate.
        beta2: f32,
        /// Added to the denominator for stability.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
    },
}

impl OptimizerConfig {
    /// Plain SGD with learning rate `lr`: no momentum, dampening or weight decay.
    pub fn sgd(lr: f32) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// Adam with learning rate `lr` and PyTorch's defaults: betas (0.9, 0.999), eps 1e-8.
    pub fn adam(lr: f32) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// The same optimizer with momentum `momentum` (SGD; Adam has no momentum factor and is
    /// returned unchanged).
    pub fn with_momentum(self, momentum: f32) -> Self {
        match self {
            OptimizerConfig::Sgd {
                lr,
                dampening,
                weight_decay,
                nesterov,
                ..
            } => OptimizerConfig::Sgd {
                lr,
                momentum,
                dampening,
                weight_decay,
                nesterov,
            },
            adam => adam,
        }
    }

    /// The same optimizer with L2 penalty `weight_decay`.
    pub fn with_weight_decay(mut self, decay: f32) -> Self {
        match &mut self {
            OptimizerConfig::Sgd { weight_decay, .. } | OptimizerConfig::Adam { weight_decay, .. } => {
                *weight_decay = decay
            }
        }
        self
    }

    /// The base learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => lr,
        }
    }

    /// `"sgd"` or `"adam"`, as in `config.json`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Adam { .. } => "adam",
        }
    }
}

/// Whether the training samples are visited in a new random order each epoch.
///
/// The order of epoch `e` is a function of the seed and `e` alone, so a resumed run sees the
/// same batches as an uninterrupted one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shuffle {
    /// A fresh permutation every epoch (the default).
    #[default]
    EveryEpoch,
    /// The data set's order, every epoch.
    Never,
}

/// Input normalization, `(pixel / 255 - mean[c]) / std[c]` for channel `c`, as torchvision's
/// `Normalize`. One value for every channel, or one per channel.
///
/// In `config.json` a single value is a number (as before per-channel normalization
/// existed), several an array; both forms are read back.
///
/// ```
/// use cnn_runtime::train::Normalize;
/// let n = Normalize::per_channel(&[0.5, 0.25], &[0.5, 0.5]);
/// let mut sample = [1.0, 0.0, 0.25, 0.75]; // [2, 1, 2]
/// n.apply(&mut sample);
/// assert_eq!(sample, [1.0, -1.0, 0.0, 1.0]);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    /// Subtracted from every pixel (after scaling to 0..1): one value, or one per channel.
    #[serde(with = "one_or_many")]
    pub mean: Vec<f32>,
    /// Divides every pixel after the mean is subtracted: as many values as `mean`.
    #[serde(with = "one_or_many")]
    pub std: Vec<f32>,
}

impl Normalize {
    /// The same `mean` and `std` for every channel.
    pub fn new(mean: f32, std: f32) -> Normalize {
        Normalize {
            mean: vec![mean],
            std: vec![std],
        }
    }

    /// One `mean` and `std` per channel, e.g. [`Cifar10::MEAN`](crate::data::Cifar10::MEAN)
    /// and [`Cifar10::STD`](crate::data::Cifar10::STD), or those
    /// [`Dataset::channel_mean_std`](crate::data::Dataset::channel_mean_std) computes.
    pub fn per_channel(mean: &[f32], std: &[f32]) -> Normalize {
        Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        }
    }

    /// Normalizes one sample in place: its values split into `mean.len()` equal planes.
    ///
    /// # Panics
    ///
    /// If the sample's length is not a multiple of the number of channels.
    pub fn apply(&self, sample: &mut [f32]) {
        let channels = self.mean.len().max(1);
        assert_eq!(
            sample.len() % channels,
            0,
            "Normalize::apply: {} values do not split into {channels} channels",
            sample.len()
        );
        let plane = sample.len() / channels;
        if plane == 0 {
            return;
        }
        for ((values, &mean), &std) in sample.chunks_exact_mut(plane).zip(&self.mean).zip(&self.std) {
            values.iter_mut().for_each(|x| *x = (*x - mean) / std);
        }
    }

    /// What would fail later, with a message that says what to change.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.mean.is_empty() || self.mean.len() != self.std.len() {
            return Err(format!(
                "normalization needs as many standard deviations as means (at least one), got {} and {}",
                self.mean.len(),
                self.std.len()
            ));
        }
        if let Some((m, s)) = self
            .mean
            .iter()
            .zip(&self.std)
            .find(|(m, s)| !(s.is_finite() && **s != 0.0 && m.is_finite()))
        {
            return Err(format!(
                "normalization needs a finite mean and a non-zero std, got mean {m} std {s}"
            ));
        }
        Ok(())
    }
}

/// A `Vec<f32>` written as a number when it holds one value, read from a number or an array.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(values: &[f32], s: S) -> Result<S::Ok, S::Error> {
        match values {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(f32),
        Many(Vec<f32>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(x) => vec![x],
            OneOrMany::Many(v) => v,
        })
    }
}

/// How a run reports its progress on standard output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar when standard output is a terminal, else plain lines (the default). Plain
    /// lines in a distributed run of several processes, where `mpirun` gives each one a
    /// terminal whatever its own output is.
    #[default]
    Auto,
    /// One plain line per epoch, for logs.
    Plain,
    /// Nothing on standard output; the run folder's `log.txt` still gets every line.
    Silent,
}

/// Everything a training run needs to know: hyperparameters, where to write the run folder,
/// and what to record about the model and the data.
///
/// Built with chained setters from [`TrainConfig::new`]'s defaults: 1 epoch, batch 64, SGD lr
/// 0.01 without momentum, constant rate, seed 0, shuffled every epoch, every core, no
/// normalization, no augmentation, one process (not distributed), run folders under `runs/`,
/// named by the start time.
///
/// The hyperparameters are saved as the `training` object of `config.json`; the run folder's
/// place and name, the data folder and the summary are recorded elsewhere in that file.
///
/// ```
/// use cnn_runtime::train::{LrSchedule, OptimizerConfig, TrainConfig};
/// let config = TrainConfig::new()
///     .epochs(3)
///     .batch_size(64)
///     .optimizer(OptimizerConfig::sgd(0.01).with_momentum(0.9))
///     .schedule(LrSchedule::Step { step_size: 2, gamma: 0.1 })
///     .seed(1)
///     .normalize(0.1307, 0.3081)
///     .runs_dir("runs")
///     .run_name("lenet5-sgd");
/// assert_eq!(config.epochs, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Epochs to train (in all, counting those before a resume).
    pub epochs: usize,
    /// Samples per training step; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// The optimizer and its base learning rate.
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes per epoch.
    pub schedule: LrSchedule,
    /// Seeds the shuffling (the network's initialization is the caller's).
    pub seed: u64,
    /// Whether to shuffle the training set each epoch.
    pub shuffle: Shuffle,
    /// Threads per training step; 0 means every core. Runs with one thread are bitwise
    /// reproducible, also across a resume. The trainer applies it with
    /// [`parallel::set_threads`](crate::parallel::set_threads), which is process-wide.
    pub threads: usize,
    /// Input normalization, if any (training and test samples alike).
    pub normalize: Option<Normalize>,
    /// Random transforms of the training samples, drawn per sample and epoch from `seed`
    /// (test samples are never augmented). Needs samples with a
    /// [`shape`](super::Samples::shape).
    #[serde(default)]
    pub augment: crate::data::Augment,
    /// Data-parallel training over MPI: every process `mpirun` started trains on its
    /// contiguous share of each batch of `batch_size` samples (the batch size of the whole
    /// job, so the learning rate means what it means for one process), the gradients are
    /// summed with one allreduce per step, and every rank takes the same step; rank 0 alone
    /// writes the run folder. Needs the `distributed` feature and an [`Mpi`](super::Mpi) held
    /// while the trainer runs; see [`Trainer::fit`](super::Trainer::fit).
    #[serde(default)]
    pub distributed: bool,
    /// The folder that holds run folders.
    #[serde(skip)]
    pub runs_dir: PathBuf,
    /// The run folder's name; `None` names it by the start time, `2024-05-01T12-00-00`.
    #[serde(skip)]
    pub run_name: Option<String>,
    /// The folder the data set was read from, recorded with its files' checksums.
    #[serde(skip)]
    pub data_dir: Option<PathBuf>,
    /// The model's summary table (`Model::summary()`), recorded in `config.json`.
    #[serde(skip)]
    pub summary: Option<String>,
    /// How progress is shown; not saved.
    #[serde(skip)]
    pub progress: Progress,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            batch_size: 64,
            optimizer: OptimizerConfig::sgd(0.01),
            schedule: LrSchedule::Constant,
            seed: 0,
            shuffle: Shuffle::EveryEpoch,
            threads: 0,
            normalize: None,
            augment: crate::data::Augment::none(),
            distributed: false,
            runs_dir: PathBuf::from("runs"),
            run_name: None,
            data_dir: None,
            summary: None,
            progress: Progress::Auto,
        }
    }
}

impl TrainConfig {
    /// The defaults listed above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`TrainConfig::epochs`].
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Sets [`TrainConfig::batch_size`].
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets [`TrainConfig::optimizer`].
    pub fn optimizer(mut self, optimizer: OptimizerConfig) -> Self {
        self.optimizer = optimizer;
        self
    }

    /// Sets [`TrainConfig::schedule`].
    pub fn schedule(mut self, schedule: LrSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Sets [`TrainConfig::seed`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`TrainConfig::shuffle`].
    pub fn shuffle(mut self, shuffle: Shuffle) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Sets [`TrainConfig::threads`].
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Normalizes inputs as `(pixel / 255 - mean) / std`, every channel alike.
    pub fn normalize(mut self, mean: f32, std: f32) -> Self {
        self.normalize = Some(Normalize::new(mean, std));
        self
    }

    /// Normalizes channel `c` of the inputs as `(pixel / 255 - mean[c]) / std[c]`.
    ///
    /// ```
    /// use cnn_runtime::data::Cifar10;
    /// use cnn_runtime::train::TrainConfig;
    /// let config = TrainConfig::new().normalize_channels(&Cifar10::MEAN, &Cifar10::STD);
    /// assert_eq!(config.normalize.unwrap().mean.len(), 3);
    /// ```
    pub fn normalize_channels(mut self, mean: &[f32], std: &[f32]) -> Self {
        self.normalize = Some(Normalize::per_channel(mean, std));
        self
    }

    /// Sets [`TrainConfig::augment`].
    ///
    /// ```
    /// use cnn_runtime::data::Augment;
    /// use cnn_runtime::train::TrainConfig;
    /// let config = TrainConfig::new().augment(Augment::none().with_crop(4).with_flip());
    /// assert!(config.augment.flip);
    /// ```
    pub fn augment(mut self, augment: crate::data::Augment) -> Self {
        self.augment = augment;
        self
    }

    /// Sets [`TrainConfig::distributed`]: train over every process of the MPI job.
    ///
    /// Without the `distributed` feature, or without MPI started ([`Mpi::init`](super::Mpi::init)),
    /// [`Trainer::fit`](super::Trainer::fit) refuses such a configuration with an error that
    /// says what is missing; started alone (no `mpirun`), a distributed run is one rank of one
    /// and trains as a plain run does.
    ///
    /// ```
    /// # use cnn::prelude::*;
    /// # cnn::cnn! { struct Tiny { input: [1, 28, 28], flatten: Flatten, fc: Dense(10) } }
    /// # let runs = tempfile::tempdir().unwrap();
    /// use cnn::train::{Mpi, Progress, Subset, TrainConfig, Trainer};
    ///
    /// let mnist = cnn::data::Mnist::load("../data/mnist")?;
    /// let (train, test) = (Subset::new(&mnist.train, 0..256), Subset::new(&mnist.test, 0..128));
    /// let config = TrainConfig::new().distributed(true).runs_dir(runs.path()).progress(Progress::Silent);
    /// match Mpi::init() {
    ///     // With the feature: MPI runs (here one rank of one, as no mpirun started this).
    ///     Ok(mpi) => {
    ///         let outcome = Trainer::new(config).fit(Tiny::new(1), &train, &test)?;
    ///         assert_eq!(outcome.history.len(), 1);
    ///         drop(mpi); // MPI_Finalize
    ///     }
    ///     // Without: the run is refused with what to do.
    ///     Err(e) => {
    ///         assert!(e.to_string().contains("--features distributed"));
    ///         assert!(Trainer::new(config).fit(Tiny::new(1), &train, &test).is_err());
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn distributed(mut self, distributed: bool) -> Self {
        self.distributed = distributed;
        self
    }

    /// Sets [`TrainConfig::runs_dir`].
    pub fn runs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runs_dir = dir.into();
        self
    }

    /// Sets [`TrainConfig::run_name`].
    pub fn run_name(mut self, name: impl Into<String>) -> Self {
        self.run_name = Some(name.into());
        self
    }

    /// Sets [`TrainConfig::data_dir`].
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Sets [`TrainConfig::summary`].
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// Sets [`TrainConfig::progress`].
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Checks what would fail later, with a message that says what to change.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("the batch size must be at least 1".into());
        }
        if !(self.optimizer.lr().is_finite() && self.optimizer.lr() > 0.0) {
            return Err(format!(
                "the learning rate must be a positive number, got {}",
                self.optimizer.lr()
            ));
        }
        if let Some(n) = &self.normalize {
            n.validate()?;
        }
        if let Some(name) = &self.run_name {
            if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
                return Err(format!("the run name `{name}` must be a plain folder name"));
            }
        }
        self.schedule.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_reads_old_and_new_config_files() {
        // Written before per-channel normalization: numbers.
        let old: Normalize = serde_json::from_str(r#"{"mean": 0.1307, "std": 0.3081}"#).unwrap();
        assert_eq!(old, Normalize::new(0.1307, 0.3081));
        assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"mean":0.1307,"std":0.3081}"#);
        let rgb = Normalize::per_channel(&[0.5, 0.4, 0.3], &[0.2, 0.2, 0.25]);
        let json = serde_json::to_string(&rgb).unwrap();
        assert_eq!(json, r#"{"mean":[0.5,0.4,0.3],"std":[0.2,0.2,0.25]}"#);
        assert_eq!(serde_json::from_str::<Normalize>(&json).unwrap(), rgb);
        // A config without `augment` (older runs) reads as no augmentation.
        let mut value = serde_json::to_value(TrainConfig::new()).unwrap();
        value.as_object_mut().unwrap().remove("augment");
        let config: TrainConfig = serde_json::from_value(value).unwrap();
        assert!(config.augment.is_none());
    }

    #[test]
    fn normalization_is_checked() {
        let bad = |n: Normalize| {
            TrainConfig::new()
                .normalize_channels(&n.mean, &n.std)
                .validate()
                .unwrap_err()
        };
        assert!(bad(Normalize::per_channel(&[0.5, 0.5], &[0.2])).contains("as many"));
        assert!(bad(Normalize::per_channel(&[], &[])).contains("at least one"));
        assert!(bad(Normalize::per_channel(&[0.5, 0.5], &[0.2, 0.0])).contains("non-zero std"));
        assert!(TrainConfig::new().normalize(0.1, 0.3).validate().is_ok());
    }
}
