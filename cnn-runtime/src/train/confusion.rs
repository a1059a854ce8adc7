//! The confusion matrix of a classifier on a test set.

use std::fmt::Write as _;

/// Counts of (true class, predicted class) pairs: row = the label, column = the prediction.
///
/// ```
/// use cnn_runtime::train::ConfusionMatrix;
/// let mut m = ConfusionMatrix::new(3);
/// m.add(0, 0);
/// m.add(1, 2);
/// m.add(2, 2);
/// assert_eq!(m.get(1, 2), 1);
/// assert!((m.accuracy() - 2.0 / 3.0).abs() < 1e-12);
/// assert!(m.to_table().contains("true\\pred"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Counts one sample of class `label` predicted as `predicted`.
    ///
    /// # Panics
    ///
    /// If either is not below the number of classes.
    pub fn add(&mut self, label: usize, predicted: usize) {
        assert!(
            label < self.classes && predicted < self.classes,
            "ConfusionMatrix::add: label {label} or prediction {predicted} is not below {} classes",
            self.classes
        );
        self.counts[label * self.classes + predicted] += 1;
    }

    /// The counts, row by row (true class), for sums over the ranks of a distributed run.
    pub(crate) fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Mutable [`ConfusionMatrix::counts`].
    pub(crate) fn counts_mut(&mut self) -> &mut [u64] {
        &mut self.counts
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How many samples of class `label` were predicted as `predicted`.
    ///
    /// # Panics
    ///
    /// If either is not below the number of classes.
    pub fn get(&self, label: usize, predicted: usize) -> u64 {
        assert!(
            label < self.classes && predicted < self.classes,
            "ConfusionMatrix::get: label {label} or prediction {predicted} is not below {} classes",
            self.classes
        );
        self.counts[label * self.classes + predicted]
    }

    /// Samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The fraction on the diagonal (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        let right: u64 = (0..self.classes).map(|c| self.get(c, c)).sum();
        right as f64 / self.total().max(1) as f64
    }

    /// The matrix as a text table, one row per true class, with per-class recall on the right.
    pub fn to_table(&self) -> String {
        let width = self
            .counts
            .iter()
            .max()
            .map_or(1, |m| m.to_string().len())
            .max(self.classes.to_string().len())
            .max(3);
        let mut out = format!("{:>9} ", "true\\pred");
        for c in 0..self.classes {
            let _ = write!(out, " {c:>width$}");
        }
        out.push_str("   recall\n");
        for label in 0..self.classes {
            let _ = write!(out, "{label:>9} ");
            for predicted in 0..self.classes {
                let _ = write!(out, " {:>width$}", self.get(label, predicted));
            }
            let row: u64 = (0..self.classes).map(|p| self.get(label, p)).sum();
            let recall = self.get(label, label) as f64 / row.max(1) as f64;
            let _ = writeln!(out, "  {:>6.2}%", 100.0 * recall);
        }
        out
    }
}
