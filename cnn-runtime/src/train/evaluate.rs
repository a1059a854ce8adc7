//! Evaluation on a test set: mean loss, accuracy and the confusion matrix.

use std::ops::Range;

use super::distributed::Group;
use super::{ConfusionMatrix, Normalize, Samples};
use crate::Network;

/// Samples per forward pass during evaluation.
const EVAL_BATCH: usize = 500;

/// What [`evaluate`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean softmax cross-entropy over the set.
    pub loss: f64,
    /// Fraction classified right, in 0..=1.
    pub accuracy: f64,
    /// Counts of (label, prediction) pairs.
    pub confusion: ConfusionMatrix,
}

/// Evaluates `net` on every sample of `set`, normalizing inputs as `normalize` says.
///
/// ```
/// # use cnn::prelude::*;
/// # cnn::cnn! { struct Tiny { input: [1, 28, 28], flatten: Flatten, fc: Dense(10) } }
/// use cnn::train::{evaluate, Subset};
/// let mnist = cnn::data::Mnist::load("../data/mnist")?;
/// let eval = evaluate(&Tiny::new(0), &Subset::new(&mnist.test, 0..100), None);
/// assert_eq!(eval.confusion.total(), 100);
/// assert!((eval.loss - 2.3).abs() < 0.5); // untrained: about ln 10
/// # Ok::<(), cnn::Error>(())
/// ```
///
/// # Panics
///
/// If the samples' `input_len` is not the network's `INPUT_LEN`, or a label is not below
/// `OUTPUT_LEN`.
pub fn evaluate<N: Network, S: Samples + ?Sized>(net: &N, set: &S, normalize: Option<&Normalize>) -> Evaluation {
    let (loss_sum, confusion) = evaluate_range(net, set, 0..set.len(), normalize);
    Evaluation {
        loss: loss_sum / set.len().max(1) as f64,
        accuracy: confusion.accuracy(),
        confusion,
    }
}

/// [`evaluate`] in a distributed run: each rank evaluates its share of `set`, and one
/// allreduce sums the losses and the confusion matrices, so every rank gets the evaluation of
/// the whole set (that of one process, up to the order of the loss sum).
pub(crate) fn evaluate_shared<N: Network, S: Samples + ?Sized>(
    group: &Group,
    net: &N,
    set: &S,
    normalize: Option<&Normalize>,
) -> Evaluation {
    if group.size() == 1 {
        return evaluate(net, set, normalize);
    }
    let (loss_sum, mut confusion) = evaluate_range(net, set, group.share().of(set.len()), normalize);
    // [loss sum, counts...]: exact in f64 for any test set below 2^53 samples.
    let mut sums: Vec<f64> = std::iter::once(loss_sum)
        .chain(confusion.counts().iter().map(|&c| c as f64))
        .collect();
    group.allreduce_sum_f64(&mut sums);
    for (count, &sum) in confusion.counts_mut().iter_mut().zip(&sums[1..]) {
        *count = sum as u64;
    }
    Evaluation {
        loss: sums[0] / set.len().max(1) as f64,
        accuracy: confusion.accuracy(),
        confusion,
    }
}

/// The summed loss and the confusion matrix of `net` on samples `range` of `set`.
fn evaluate_range<N: Network, S: Samples + ?Sized>(
    net: &N,
    set: &S,
    range: Range<usize>,
    normalize: Option<&Normalize>,
) -> (f64, ConfusionMatrix) {
    assert_eq!(
        set.input_len(),
        N::INPUT_LEN,
        "evaluate: the samples hold {} inputs each, the network takes {}",
        set.input_len(),
        N::INPUT_LEN
    );
    let classes = N::OUTPUT_LEN;
    let mut confusion = ConfusionMatrix::new(classes);
    let (mut inputs, mut labels, mut logits) = (Vec::new(), Vec::new(), Vec::new());
    let mut loss_sum = 0.0f64;
    let indices: Vec<usize> = range.collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        load_batch(set, chunk, normalize, &mut inputs, &mut labels);
        logits.resize(chunk.len() * classes, 0.0);
        net.forward_batch(&inputs, &mut logits);
        for (z, &label) in logits.chunks_exact(classes).zip(&labels) {
            let label = label as usize;
            assert!(
                label < classes,
                "evaluate: label {label} is not below the network's {classes} outputs"
            );
            // Stable log-sum-exp, in f64: the loss of one sample.
            let max = z.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
            let sum: f64 = z.iter().map(|&x| (x as f64 - max).exp()).sum();
            loss_sum += max + sum.ln() - z[label] as f64;
            let predicted = (0..classes).fold(0, |best, i| if z[i] > z[best] { i } else { best });
            confusion.add(label, predicted);
        }
    }
    (loss_sum, confusion)
}

/// Gathers samples `indices` of `set` into `inputs` and `labels` (resized), normalized.
pub(crate) fn load_batch<S: Samples + ?Sized>(
    set: &S,
    indices: &[usize],
    normalize: Option<&Normalize>,
    inputs: &mut Vec<f32>,
    labels: &mut Vec<u32>,
) {
    inputs.resize(indices.len() * set.input_len(), 0.0);
    labels.resize(indices.len(), 0);
    set.gather(indices, inputs, labels);
    if let Some(normalize) = normalize {
        for sample in inputs.chunks_exact_mut(set.input_len().max(1)) {
            normalize.apply(sample);
        }
    }
}
