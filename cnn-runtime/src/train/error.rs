//! What can stop a training run.

use std::path::PathBuf;

/// Everything that can stop [`Trainer::fit`](super::Trainer::fit) or
/// [`Trainer::resume`](super::Trainer::resume): files that cannot be read or written, a run
/// folder that does not fit, a configuration that cannot work, and a loss that diverged.
///
/// Every variant's message says what went wrong and where (the file, or the epoch and step).
///
/// ```
/// let err = cnn_runtime::train::Trainer::resume("no/such/run").unwrap_err();
/// assert!(err.to_string().contains("no/such/run"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A file of the run folder could not be created, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Reading a data set or weights failed.
    #[error(transparent)]
    Data(#[from] crate::Error),
    /// The configuration cannot work (a batch size of 0, images that do not match the
    /// network's input, ...).
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// The run folder already exists and training was not asked to resume it.
    #[error("{}: the run folder already exists; resume it, or choose another run name", path.display())]
    RunExists {
        /// The run folder.
        path: PathBuf,
    },
    /// A file of the run folder (config, checkpoint, metrics) is damaged or does not belong
    /// to this network.
    #[error("{}: {reason}", path.display())]
    BadRunFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The loss (or, after an epoch's last step, a parameter or a buffer) became NaN or infinite.
    ///
    /// Nothing of the diverged epoch is saved: the last checkpoint on disk is the last good
    /// one.
    #[error(
        "training diverged: {what} at epoch {epoch}, step {step} of {steps}; {}; try a lower learning rate",
        match checkpoint { Some(p) => format!("the last good checkpoint is kept in {}", p.display()), None => "no checkpoint was written".to_owned() }
    )]
    Diverged {
        /// What was not finite, e.g. `the loss is NaN`.
        what: String,
        /// The epoch, from 1.
        epoch: usize,
        /// The step within the epoch, from 1.
        step: usize,
        /// Steps per epoch.
        steps: usize,
        /// The last good checkpoint, if one was written.
        checkpoint: Option<PathBuf>,
    },
    /// Another rank of a distributed run failed, and stopped this one with it. That rank
    /// returned its error itself (the lowest failing rank, or rank 0 for a failure every rank
    /// met alike, such as a diverged loss): a program prints every error but this one, so the
    /// job reports each failure once.
    #[error("rank {rank} of the distributed run failed; its error is reported there")]
    OtherRank {
        /// The rank that reports the error.
        rank: usize,
    },
    /// Drawing a plot failed.
    #[error("{}: could not draw the plot: {reason}", path.display())]
    Plot {
        /// The image file.
        path: PathBuf,
        /// What the plotting library said.
        reason: String,
    },
}

impl TrainError {
    /// An [`TrainError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }

    /// A [`TrainError::BadRunFile`] for `path`.
    pub(crate) fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> TrainError {
        TrainError::BadRunFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
