//! Per-epoch metrics, kept as `metrics.jsonl` (one JSON object per line) and `metrics.csv`
//! (the same columns, with a header).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::atomic::write_atomically;
use super::TrainError;

/// What one epoch measured. The field names are the JSON keys and the CSV columns, in this
/// order.
///
/// ```
/// use cnn_runtime::train::EpochMetrics;
/// let m = EpochMetrics { epoch: 1, train_loss: 0.25, test_loss: 0.125, test_accuracy: 0.96, lr: 0.01,
///                        images_per_sec: 5000.0, epoch_time_s: 12.0, wall_time_s: 12.5 };
/// assert!(m.to_csv_row().starts_with("1,0.25,0.125,0.96,0.01,"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Mean loss over the test set after the epoch.
    pub test_loss: f64,
    /// Fraction of the test set classified right after the epoch, in 0..=1.
    pub test_accuracy: f64,
    /// The learning rate of the epoch.
    pub lr: f32,
    /// Training images per second (the training steps only, not the evaluation).
    pub images_per_sec: f64,
    /// Seconds the epoch took, evaluation included.
    pub epoch_time_s: f64,
    /// Seconds of training in the run so far, over all its sessions (resumes).
    pub wall_time_s: f64,
}

impl EpochMetrics {
    /// The CSV header line (without a newline).
    pub const CSV_HEADER: &'static str =
        "epoch,train_loss,test_loss,test_accuracy,lr,images_per_sec,epoch_time_s,wall_time_s";

    /// This epoch as a CSV line (without a newline), columns as in [`Self::CSV_HEADER`].
    pub fn to_csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{:.1},{:.3},{:.3}",
            self.epoch,
            self.train_loss,
            self.test_loss,
            self.test_accuracy,
            self.lr,
            self.images_per_sec,
            self.epoch_time_s,
            self.wall_time_s
        )
    }
}

/// Writes the whole history to `metrics.jsonl` and `metrics.csv` in `dir`, each atomically
/// (rewriting a few hundred lines costs nothing, and a resume that drops epochs after the
/// last checkpoint needs no special case).
pub(crate) fn write(dir: &Path, history: &[EpochMetrics]) -> Result<(), TrainError> {
    let mut jsonl = String::new();
    let mut csv = format!("{}\n", EpochMetrics::CSV_HEADER);
    for m in history {
        // Serializing a struct of numbers cannot fail.
        jsonl.push_str(&serde_json::to_string(m).expect("metrics serialize"));
        jsonl.push('\n');
        let _ = writeln!(csv, "{}", m.to_csv_row());
    }
    write_atomically(&dir.join("metrics.jsonl"), jsonl.as_bytes())?;
    write_atomically(&dir.join("metrics.csv"), csv.as_bytes())
}

/// Reads the history from `metrics.jsonl` in the run folder `dir`; no file means no epoch.
///
/// ```
/// let history = cnn_runtime::train::read_metrics("no/such/run")?;
/// assert!(history.is_empty());
/// # Ok::<(), cnn_runtime::train::TrainError>(())
/// ```
///
/// # Errors
///
/// [`TrainError::Io`] if the file exists but cannot be read, [`TrainError::BadRunFile`] naming
/// the line if one is not a metrics object.
pub fn read_metrics(dir: impl AsRef<Path>) -> Result<Vec<EpochMetrics>, TrainError> {
    let path = dir.as_ref().join("metrics.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::Io { path, source: e }),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| TrainError::bad_file(&path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 0.5,
            test_loss: 0.25,
            test_accuracy: 0.9,
            lr: 0.01,
            images_per_sec: 100.0,
            epoch_time_s: 1.0,
            wall_time_s: epoch as f64,
        }
    }

    #[test]
    fn history_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let history = vec![row(1), row(2)];
        write(dir.path(), &history).unwrap();
        assert_eq!(read_metrics(dir.path()).unwrap(), history);
        let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], EpochMetrics::CSV_HEADER);
        assert_eq!(lines[2], "2,0.5,0.25,0.9,0.01,100.0,1.000,2.000");
    }

    #[test]
    fn bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metrics.jsonl"), "{}\n").unwrap();
        let err = read_metrics(dir.path()).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
