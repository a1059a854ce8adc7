//! Comparing runs: one line per run folder, from its `config.json` and `metrics.jsonl`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::run_dir::ConfigFile;
use super::{read_metrics, TrainError};

/// The key facts of one run folder.
///
/// ```no_run
/// use cnn_runtime::train::RunSummary;
/// let mut runs = vec![RunSummary::load("runs/a")?, RunSummary::load("runs/b")?];
/// print!("{}", RunSummary::table(&mut runs));
/// # Ok::<(), cnn_runtime::train::TrainError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The run folder.
    pub dir: PathBuf,
    /// The run's name.
    pub name: String,
    /// `"sgd"` or `"adam"`.
    pub optimizer: String,
    /// Base learning rate.
    pub lr: f32,
    /// Batch size.
    pub batch_size: usize,
    /// The seed.
    pub seed: u64,
    /// Epochs asked for.
    pub epochs_planned: usize,
    /// Epochs completed.
    pub epochs_done: usize,
    /// The best test accuracy, in 0..=1, and its epoch (`None` before the first epoch).
    pub best: Option<(f64, usize)>,
    /// Seconds of training, all sessions.
    pub wall_time_s: f64,
}

impl RunSummary {
    /// Reads the summary of the run folder `dir`.
    ///
    /// # Errors
    ///
    /// [`TrainError::Io`] or [`TrainError::BadRunFile`] if `config.json` is missing or not a
    /// run configuration, or `metrics.jsonl` cannot be read.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, TrainError> {
        let dir = dir.as_ref();
        let config = ConfigFile::read(dir)?;
        let history = read_metrics(dir)?;
        let best = history.iter().fold(None, |best: Option<(f64, usize)>, m| match best {
            Some((acc, _)) if acc >= m.test_accuracy => best,
            _ => Some((m.test_accuracy, m.epoch)),
        });
        Ok(RunSummary {
            dir: dir.to_path_buf(),
            name: config.name,
            optimizer: config.training.optimizer.name().to_owned(),
            lr: config.training.optimizer.lr(),
            batch_size: config.training.batch_size,
            seed: config.training.seed,
            epochs_planned: config.training.epochs,
            epochs_done: history.last().map_or(0, |m| m.epoch),
            best,
            wall_time_s: history.last().map_or(0.0, |m| m.wall_time_s),
        })
    }

    /// Sorts `runs` by best test accuracy, best first (runs without an epoch last), and lays
    /// them out as a text table.
    ///
    /// ```
    /// use cnn_runtime::train::RunSummary;
    /// let run = |name: &str, acc| RunSummary { dir: name.into(), name: name.into(), optimizer: "sgd".into(),
    ///     lr: 0.01, batch_size: 64, seed: 1, epochs_planned: 3, epochs_done: 3, best: Some((acc, 3)), wall_time_s: 60.0 };
    /// let mut runs = vec![run("low", 0.9), run("high", 0.99)];
    /// let table = RunSummary::table(&mut runs);
    /// assert!(table.find("high").unwrap() < table.find("low").unwrap());
    /// ```
    pub fn table(runs: &mut [RunSummary]) -> String {
        runs.sort_by(|a, b| {
            let key = |r: &RunSummary| r.best.map_or(f64::NEG_INFINITY, |(acc, _)| acc);
            key(b).total_cmp(&key(a)).then_with(|| a.name.cmp(&b.name))
        });
        let width = runs.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
        let mut out = format!(
            "{:<width$}  {:>4}  {:>9}  {:>5}  {:>6}  {:>8}  {:>15}  {:>8}\n",
            "name", "opt", "lr", "batch", "seed", "epochs", "best test acc", "time"
        );
        for r in runs.iter() {
            let best = r.best.map_or("-".to_owned(), |(acc, epoch)| {
                format!("{:.2}% (ep {epoch})", 100.0 * acc)
            });
            let _ = writeln!(
                out,
                "{:<width$}  {:>4}  {:>9}  {:>5}  {:>6}  {:>8}  {:>15}  {:>8}",
                r.name,
                r.optimizer,
                r.lr,
                r.batch_size,
                r.seed,
                format!("{}/{}", r.epochs_done, r.epochs_planned),
                best,
                format_duration(r.wall_time_s)
            );
        }
        out
    }
}

/// `1h02m`, `3m05s` or `12.3s`.
fn format_duration(secs: f64) -> String {
    let whole = secs as u64;
    match whole {
        0..=59 => format!("{secs:.1}s"),
        60..=3599 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, whole / 60 % 60),
    }
}
