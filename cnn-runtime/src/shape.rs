//! Output-size arithmetic of convolution and pooling, in one place.
//!
//! The `cnn!` macro checks declarations with these functions at compile time and the kernels
//! use them at run time, so the two can never disagree.

/// Output length along one axis of a convolution: `(input + 2 * padding - kernel) / stride + 1`,
/// floored, as PyTorch's `Conv2d` computes it.
///
/// `None` when the result does not exist: a zero kernel or stride, a kernel larger than the
/// padded input, or arithmetic that overflows `usize`.
///
/// ```
/// use cnn_runtime::shape::conv_out;
/// assert_eq!(conv_out(28, 5, 1, 2), Some(28));
/// assert_eq!(conv_out(17, 3, 2, 1), Some(9));
/// assert_eq!(conv_out(4, 5, 1, 0), None);
/// ```
pub const fn conv_out(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    if kernel == 0 || stride == 0 {
        return None;
    }
    let padded = match padding.checked_mul(2) {
        Some(p) => match input.checked_add(p) {
            Some(x) => x,
            None => return None,
        },
        None => return None,
    };
    if kernel > padded {
        return None;
    }
    Some((padded - kernel) / stride + 1)
}

/// Output length along one axis of a pooling window (no padding, floor mode):
/// `(input - kernel) / stride + 1`.
///
/// `None` for a zero kernel or stride, or a window larger than the input.
///
/// ```
/// use cnn_runtime::shape::pool_out;
/// assert_eq!(pool_out(28, 2, 2), Some(14));
/// assert_eq!(pool_out(9, 2, 1), Some(8));
/// assert_eq!(pool_out(1, 2, 2), None);
/// ```
pub const fn pool_out(input: usize, kernel: usize, stride: usize) -> Option<usize> {
    conv_out(input, kernel, stride, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_matches_pytorch_formula() {
        // (H + 2p - k) / s + 1 for a spread of sizes, against the formula in i64.
        for h in 1..20usize {
            for k in 1..7 {
                for s in 1..4 {
                    for p in 0..3 {
                        let padded = (h + 2 * p) as i64;
                        let want = (padded >= k as i64).then(|| ((padded - k as i64) / s as i64 + 1) as usize);
                        assert_eq!(conv_out(h, k, s, p), want, "h={h} k={k} s={s} p={p}");
                    }
                }
            }
        }
    }

    #[test]
    fn zero_and_overflow_are_none() {
        assert_eq!(conv_out(5, 0, 1, 0), None);
        assert_eq!(conv_out(5, 1, 0, 0), None);
        assert_eq!(conv_out(usize::MAX, 1, 1, 1), None);
        assert_eq!(conv_out(1, 1, 1, usize::MAX), None);
        assert_eq!(pool_out(usize::MAX, usize::MAX, 1), Some(1));
    }
}
