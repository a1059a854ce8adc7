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

/// Output length along one axis of a pooling window (floor mode, as PyTorch's `MaxPool2d` and
/// `AvgPool2d`): `(input + 2 * padding - kernel) / stride + 1`, the same as [`conv_out`].
///
/// `None` for a zero kernel or stride, a window larger than the padded input, or arithmetic
/// that overflows `usize`. PyTorch also requires `padding <= kernel / 2` (every window then
/// holds an element of the input); this function does not check it, `Pool2d::new` does.
///
/// ```
/// use cnn_runtime::shape::pool_out;
/// assert_eq!(pool_out(28, 2, 2, 0), Some(14));
/// assert_eq!(pool_out(9, 2, 1, 0), Some(8));
/// assert_eq!(pool_out(1, 2, 2, 0), None);
/// // MaxPool2d(3, stride 2, padding 1), as after a ResNet stem.
/// assert_eq!(pool_out(7, 3, 2, 1), Some(4));
/// assert_eq!(pool_out(12, 3, 2, 1), Some(6));
/// ```
pub const fn pool_out(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    conv_out(input, kernel, stride, padding)
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
    fn pool_is_conv_arithmetic() {
        for h in 1..20usize {
            for k in 1..7 {
                for s in 1..4 {
                    for p in 0..=k / 2 {
                        assert_eq!(pool_out(h, k, s, p), conv_out(h, k, s, p), "h={h} k={k} s={s} p={p}");
                    }
                }
            }
        }
        // PyTorch's MaxPool2d(3, 2, 1) on 7, 9 and 12: 4, 5 and 6.
        assert_eq!([7, 9, 12].map(|h| pool_out(h, 3, 2, 1)), [Some(4), Some(5), Some(6)]);
    }

    #[test]
    fn zero_and_overflow_are_none() {
        assert_eq!(conv_out(5, 0, 1, 0), None);
        assert_eq!(conv_out(5, 1, 0, 0), None);
        assert_eq!(conv_out(usize::MAX, 1, 1, 1), None);
        assert_eq!(conv_out(1, 1, 1, usize::MAX), None);
        assert_eq!(pool_out(usize::MAX, usize::MAX, 1, 0), Some(1));
        assert_eq!(pool_out(usize::MAX, 1, 1, 1), None);
    }
}
