//! Softmax and the mean softmax cross-entropy loss, computed stably (log-sum-exp).

/// Overwrites each row of `logits` (`classes` wide) with its softmax.
///
/// # Panics
///
/// If `logits.len()` is not a multiple of `classes`.
///
/// ```
/// let mut p = [1.0f32, 1.0, 1.0, 1.0];
/// cnn_runtime::loss::softmax_in_place(&mut p, 4);
/// assert!(p.iter().all(|&x| (x - 0.25).abs() < 1e-7));
/// ```
pub fn softmax_in_place(logits: &mut [f32], classes: usize) {
    assert!(
        classes > 0 && logits.len().is_multiple_of(classes),
        "softmax: {} logits do not split into rows of {classes}",
        logits.len()
    );
    for row in logits.chunks_exact_mut(classes) {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for z in row.iter_mut() {
            *z = crate::math::exp(*z - max);
            sum += *z;
        }
        row.iter_mut().for_each(|z| *z /= sum);
    }
}

/// Mean over the batch of softmax cross-entropy, `(1/B) sum_b [logsumexp(z_b) - z_b[y_b]]`,
/// as PyTorch's `cross_entropy`. Writes d loss / d logits, `(softmax(z_b) - onehot(y_b)) / B`,
/// into `dlogits`.
///
/// # Panics
///
/// If `logits.len() != labels.len() * classes`, `dlogits.len() != logits.len()`, or a label is
/// not below `classes`.
///
/// ```
/// use cnn_runtime::loss::softmax_cross_entropy;
/// let mut d = [0.0; 2];
/// let loss = softmax_cross_entropy(&[0.0, 0.0], &[1], 2, &mut d);
/// assert!((loss - 2f32.ln()).abs() < 1e-7);
/// assert_eq!(d, [0.5, -0.5]);
/// ```
pub fn softmax_cross_entropy(logits: &[f32], labels: &[u32], classes: usize, dlogits: &mut [f32]) -> f32 {
    softmax_cross_entropy_part(logits, labels, classes, dlogits, labels.len())
}

/// The share of one part of a batch in [`softmax_cross_entropy`]: for a part of a batch of
/// `total` samples, returns `(1/total) sum_b [logsumexp(z_b) - z_b[y_b]]` over the part and
/// writes `(softmax(z_b) - onehot(y_b)) / total`. Summing the parts gives the whole batch's
/// loss and gradient; this is how a batch is split across threads.
///
/// # Panics
///
/// As [`softmax_cross_entropy`], and if `total` is smaller than the part.
///
/// ```
/// use cnn_runtime::loss::{softmax_cross_entropy, softmax_cross_entropy_part};
/// let z = [0.5, -1.0, 2.0, 0.0];
/// let mut d = [0.0; 4];
/// let whole = softmax_cross_entropy(&z, &[0, 1], 2, &mut d);
/// let mut d0 = [0.0; 2];
/// let mut d1 = [0.0; 2];
/// let parts = softmax_cross_entropy_part(&z[..2], &[0], 2, &mut d0, 2)
///     + softmax_cross_entropy_part(&z[2..], &[1], 2, &mut d1, 2);
/// assert!((whole - parts).abs() < 1e-6);
/// assert_eq!(d[..2], d0);
/// ```
pub fn softmax_cross_entropy_part(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    dlogits: &mut [f32],
    total: usize,
) -> f32 {
    assert_eq!(
        logits.len(),
        labels.len() * classes,
        "loss: logits must hold labels*classes = {}*{classes} elements, got {}",
        labels.len(),
        logits.len()
    );
    assert_eq!(
        dlogits.len(),
        logits.len(),
        "loss: dlogits must hold {} elements, got {}",
        logits.len(),
        dlogits.len()
    );
    assert!(
        total >= labels.len() && total > 0,
        "loss: the batch of {total} cannot hold a part of {}",
        labels.len()
    );
    let mut sum = 0.0f64;
    for (b, (z, d)) in logits
        .chunks_exact(classes)
        .zip(dlogits.chunks_exact_mut(classes))
        .enumerate()
    {
        let label = labels[b] as usize;
        assert!(
            label < classes,
            "loss: label {label} of sample {b} is out of range 0..{classes}"
        );
        let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut exp_sum = 0.0f32;
        for (d, &z) in d.iter_mut().zip(z) {
            *d = crate::math::exp(z - max);
            exp_sum += *d;
        }
        sum += ((crate::math::ln(exp_sum) + max) - z[label]) as f64;
        let scale = 1.0 / (exp_sum * total as f32);
        d.iter_mut().for_each(|d| *d *= scale);
        d[label] -= 1.0 / total as f32;
    }
    (sum / total as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_grad_matches, seq};

    #[test]
    fn matches_definition_and_is_stable() {
        let z = [1000.0f32, 0.0, -1000.0, 2.0, 1.0, 0.5];
        let mut d = [0.0; 6];
        let loss = softmax_cross_entropy(&z, &[1, 0], 3, &mut d);
        let second = {
            let s: f64 = [2.0f64, 1.0, 0.5].iter().map(|v| v.exp()).sum();
            s.ln() - 2.0
        };
        let want = (1000.0 + second) / 2.0;
        assert!((loss as f64 - want).abs() < 1e-3, "{loss} vs {want}");
        assert!(d.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn gradient_matches_central_differences() {
        let z = seq(12, 0.5).iter().map(|v| v * 3.0).collect::<Vec<_>>();
        let labels = [2, 0, 3];
        let mut d = vec![0.0; 12];
        softmax_cross_entropy(&z, &labels, 4, &mut d);
        assert_grad_matches("dlogits", &z, &d, |z| {
            softmax_cross_entropy(z, &labels, 4, &mut [0.0; 12]) as f64
        });
    }

    #[test]
    #[should_panic(expected = "loss: label 4 of sample 1 is out of range 0..4")]
    fn label_out_of_range_panics() {
        softmax_cross_entropy(&[0.0; 8], &[0, 4], 4, &mut [0.0; 8]);
    }
}
