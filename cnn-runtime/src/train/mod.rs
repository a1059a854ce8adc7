//! Training runs you can track: a trainer for any [`Network`](crate::Network), with a progress
//! bar, a run folder per run, checkpoints, resume, and a clean stop on divergence.
//!
//! ```
//! use cnn::prelude::*;
//! use cnn::train::{OptimizerConfig, Progress, Subset, TrainConfig, Trainer};
//!
//! cnn! {
//!     struct Small {
//!         input: [1, 28, 28],
//!         conv: Conv2d(4, kernel = 5, stride = 2) -> Relu,   // [4, 12, 12]
//!         pool: MaxPool2d(2),                                // [4, 6, 6]
//!         flatten: Flatten,
//!         fc: Dense(10),
//!     }
//! }
//! # let runs = tempfile::tempdir().unwrap();
//! # let runs = runs.path();
//!
//! let mnist = cnn::data::Mnist::load("../data/mnist")?;
//! let train = Subset::new(&mnist.train, 0..512);
//! let test = Subset::new(&mnist.test, 0..256);
//! let config = TrainConfig::new()
//!     .epochs(2)
//!     .batch_size(32)
//!     .optimizer(OptimizerConfig::sgd(0.05).with_momentum(0.9))
//!     .normalize(0.1307, 0.3081)
//!     .seed(7)
//!     .summary(Small::summary())
//!     .runs_dir(runs)
//!     .run_name("small")
//!     .progress(Progress::Silent);
//! let outcome = Trainer::new(config).fit(Small::new(7), &train, &test)?;
//! assert!(outcome.history[1].test_accuracy > 0.5);
//! assert!(runs.join("small/checkpoints/best.safetensors").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Batches
//!
//! Each training batch is gathered (pixels scaled to 0..1), augmented sample by sample and
//! normalized ([`TrainConfig::normalize`], one value or one per channel) on a thread of its
//! own while the network trains on the previous batch, so the steps do not wait for data;
//! nothing of it is stored between epochs. Test samples are normalized, never augmented.
//!
//! # The run folder
//!
//! Each run writes `RUNS_DIR/NAME/` (the name given, or the start time):
//!
//! | file | content |
//! |---|---|
//! | `config.json` | the hyperparameters (`training`), seed, model summary and parameter count, data folder with SHA-256 of its IDX and CIFAR files, crate version, git commit, threads and processes (`world_size`) |
//! | `metrics.jsonl`, `metrics.csv` | per epoch: `epoch, train_loss, test_loss, test_accuracy, lr, images_per_sec, epoch_time_s, wall_time_s` |
//! | `checkpoints/last.safetensors` | after the last completed epoch: the network's `state_dict` (parameters, buffers, `num_batches_tracked`), its [`TrainState`](crate::TrainState) (Dropout's seed, steps taken), the optimizer's state and the progress |
//! | `checkpoints/best.safetensors` | the same, at the best test accuracy |
//! | `curves.svg`, `curves.png` | train and test loss, and test accuracy, per epoch |
//! | `confusion.svg`, `confusion.png` | the final network's confusion matrix on the test set |
//! | `log.txt` | every line the run printed, the confusion matrix as a table |
//!
//! Every file is replaced atomically (written to a temporary file, then renamed), so a crash
//! never leaves half a checkpoint.
//!
//! # Reproducibility
//!
//! The shuffle order of an epoch depends only on the seed and the epoch number, each sample's
//! augmentation ([`TrainConfig::augment`]) only on the seed, the epoch and the sample's index,
//! the learning rate only on the epoch (and the step, for
//! [`LrSchedule::CosineSteps`]), Dropout's masks only on the network's [`TrainState`](crate::TrainState)
//! (its seed and the steps taken), and the checkpoint holds the parameters, the buffers
//! (BatchNorm's running statistics), the `TrainState` and the optimizer's state: with one
//! thread ([`TrainConfig::threads`]), a run stopped after any epoch and resumed with
//! [`Trainer::resume`] ends with bitwise the same weights and buffers as one that ran through.
//!
//! # Beyond one machine
//!
//! With the `distributed` feature, [`TrainConfig::distributed`] trains data-parallel over the
//! processes of an MPI job ([`Mpi`]): each takes its share of every batch, one allreduce per
//! step sums the gradients, and rank 0 alone writes the run folder. [`Trainer::fit`] says what
//! is synchronized and what is not.

mod atomic;
mod batches;
mod checkpoint;
mod compare;
mod config;
mod confusion;
mod distributed;
mod error;
mod evaluate;
mod metrics;
mod optimizer;
mod plot;
mod progress;
mod run_dir;
mod samples;
mod schedule;
mod shuffle;
mod step;
#[cfg(test)]
mod toy;
mod trainer;

pub use checkpoint::{Checkpoint, CheckpointInfo};
pub use compare::RunSummary;
pub use config::{Normalize, OptimizerConfig, Progress, Shuffle, TrainConfig};
pub use confusion::ConfusionMatrix;
pub use distributed::{exit_code, Mpi};
pub use error::TrainError;
pub use evaluate::{evaluate, Evaluation};
pub use metrics::{read_metrics, EpochMetrics};
pub use samples::{Samples, Subset};
pub use schedule::LrSchedule;
pub use shuffle::epoch_order;
pub use trainer::{TrainOutcome, Trainer};
