//! Grouped convolutions (PyTorch's `Conv2d(..., groups = g)`, depthwise when `g` is the number
//! of input channels), forward and backward, as `g` convolutions side by side.
//!
//! In the channel-major layout (`[C, batch, H, W]`) a group's input channels, output channels,
//! weight rows (`[OC, C/g, KH, KW]`, the group's `OC/g` rows together) and gradients are each one
//! contiguous slice, so every group is an ordinary [`Conv2d`] over its slices. Only the bias
//! (`[OC]`, after the whole weight) is not next to the group's weight: one group's weight and
//! bias are copied together into scratch, where the convolution reads them.

use crate::conv::Conv2d;
use crate::layout::Layout;

/// Scratch [`grouped_forward`] and [`grouped_backward`] need for groups of geometry `g`: one
/// group's parameters and their gradient, then the group convolution's own scratch.
///
/// ```
/// use cnn_runtime::{conv::Conv2d, conv_groups::scratch_len};
/// let g = Conv2d::new([1, 5, 5], 2, [3, 3], [1, 1], [1, 1], true);
/// assert_eq!(scratch_len(&g), 2 * g.param_len() + g.scratch_len());
/// ```
pub const fn scratch_len(g: &Conv2d) -> usize {
    2 * g.param_len() + g.scratch_len()
}

/// One group's weight and bias, contiguous, from the layer's `params` into `p`.
fn gather_params(g: &Conv2d, groups: usize, i: usize, params: &[f32], p: &mut [f32]) {
    let wl = g.weight_len();
    p[..wl].copy_from_slice(&params[i * wl..][..wl]);
    if g.bias {
        p[wl..].copy_from_slice(&params[groups * wl + i * g.oc..][..g.oc]);
    }
}

fn check(g: &Conv2d, groups: usize, batch: usize, x: usize, params: usize, y: usize, scratch: usize) {
    let (xl, pl, yl) = (
        groups * g.in_len() * batch,
        groups * g.param_len(),
        groups * g.out_len() * batch,
    );
    assert!(
        x == xl && params == pl && y == yl,
        "grouped conv2d: x, params and y must hold {xl}, {pl} and {yl} elements, got {x}, {params} and {y}"
    );
    assert!(
        scratch >= scratch_len(g),
        "grouped conv2d: scratch must hold {} elements, got {scratch}",
        scratch_len(g)
    );
}

/// `y = conv(x)` for `groups` groups of geometry `g` (each `g.c` input and `g.oc` output
/// channels); with `relu`, `max(y, 0)` (only for [`Conv2d::direct`] geometries). `x` and `y`
/// are channel-major; `params` is the whole layer's weight `[groups * g.oc, g.c, KH, KW]`, then
/// its bias `[groups * g.oc]`.
///
/// # Panics
///
/// If a slice has the wrong length (the message gives expected and actual lengths), or `relu`
/// for a geometry that is not direct.
///
/// ```
/// use cnn_runtime::{conv::Conv2d, conv_groups::{grouped_forward, scratch_len}};
/// // Depthwise: two channels, each scaled by its own 1x1 weight, plus its bias.
/// const G: Conv2d = Conv2d::new([1, 1, 2], 1, [1, 1], [1, 1], [0, 0], true);
/// let x = [1.0, 2.0, 3.0, 4.0];          // [C=2, batch=1, 1, 2]
/// let params = [10.0, 100.0, 0.5, -0.5]; // weights 10 and 100, biases 0.5 and -0.5
/// let mut y = [0.0; 4];
/// let mut scratch = vec![0.0; scratch_len(&G)];
/// grouped_forward(&G, 2, 1, &x, &params, &mut y, false, &mut scratch);
/// assert_eq!(y, [10.5, 20.5, 299.5, 399.5]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn grouped_forward(
    g: &Conv2d,
    groups: usize,
    batch: usize,
    x: &[f32],
    params: &[f32],
    y: &mut [f32],
    relu: bool,
    scratch: &mut [f32],
) {
    check(g, groups, batch, x.len(), params.len(), y.len(), scratch.len());
    let (xs, ys) = (g.in_len() * batch, g.out_len() * batch);
    let (p, rest) = scratch.split_at_mut(g.param_len());
    let conv_scratch = &mut rest[g.param_len()..];
    for i in 0..groups {
        gather_params(g, groups, i, params, p);
        let (x, y) = (&x[i * xs..][..xs], &mut y[i * ys..][..ys]);
        if relu {
            g.forward_relu(batch, x, Layout::ChannelMajor, p, y, conv_scratch);
        } else {
            g.forward(batch, x, Layout::ChannelMajor, p, y, conv_scratch);
        }
    }
}

/// The gradients of [`grouped_forward`]: overwrites `dparams` (the layout of `params`) and, if
/// given, `dx`, from `dy` = d loss / d y. With `relu`, `y` is the forward output (its ReLU's
/// mask); otherwise `y` is not read.
///
/// # Panics
///
/// As [`grouped_forward`], and if `dy`, `dparams` or `dx` have the wrong length.
///
/// ```
/// use cnn_runtime::{conv::Conv2d, conv_groups::{grouped_backward, scratch_len}};
/// const G: Conv2d = Conv2d::new([1, 1, 2], 1, [1, 1], [1, 1], [0, 0], true);
/// let x = [1.0, 2.0, 3.0, 4.0];
/// let params = [10.0, 100.0, 0.5, -0.5];
/// let (mut dp, mut dx) = ([0.0; 4], [0.0; 4]);
/// let mut scratch = vec![0.0; scratch_len(&G)];
/// grouped_backward(&G, 2, 1, &x, &params, &[], false, &[1.0; 4], &mut dp, Some(&mut dx), &mut scratch);
/// assert_eq!(dp, [3.0, 7.0, 2.0, 2.0]); // sums of each channel's x, then of its dy
/// assert_eq!(dx, [10.0, 10.0, 100.0, 100.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn grouped_backward(
    g: &Conv2d,
    groups: usize,
    batch: usize,
    x: &[f32],
    params: &[f32],
    y: &[f32],
    relu: bool,
    dy: &[f32],
    dparams: &mut [f32],
    mut dx: Option<&mut [f32]>,
    scratch: &mut [f32],
) {
    check(g, groups, batch, x.len(), params.len(), dy.len(), scratch.len());
    assert_eq!(
        dparams.len(),
        params.len(),
        "grouped conv2d: dparams must hold {} elements, got {}",
        params.len(),
        dparams.len()
    );
    if let Some(dx) = &dx {
        assert_eq!(
            dx.len(),
            x.len(),
            "grouped conv2d: dx must hold {} elements, got {}",
            x.len(),
            dx.len()
        );
    }
    let (xs, ys, wl) = (g.in_len() * batch, g.out_len() * batch, g.weight_len());
    let (p, rest) = scratch.split_at_mut(g.param_len());
    let (dp, conv_scratch) = rest.split_at_mut(g.param_len());
    for i in 0..groups {
        gather_params(g, groups, i, params, p);
        let (x, dy) = (&x[i * xs..][..xs], &dy[i * ys..][..ys]);
        let dx = dx.as_deref_mut().map(|dx| &mut dx[i * xs..][..xs]);
        if relu {
            let y = &y[i * ys..][..ys];
            g.backward_relu(batch, x, Layout::ChannelMajor, p, y, dy, dp, dx, conv_scratch);
        } else {
            g.backward(batch, x, Layout::ChannelMajor, p, dy, dp, dx, conv_scratch);
        }
        dparams[i * wl..][..wl].copy_from_slice(&dp[..wl]);
        if g.bias {
            dparams[groups * wl + i * g.oc..][..g.oc].copy_from_slice(&dp[wl..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grouped convolution by its definition: output channel `o` reads the input channels of
    /// group `o / (OC / groups)` only. Sample-major `[batch, C, H, W]` in and out.
    fn naive(g: &Conv2d, groups: usize, batch: usize, x: &[f32], params: &[f32]) -> Vec<f32> {
        let (c, oc) = (g.c * groups, g.oc * groups);
        let mut y = vec![0.0; batch * oc * g.oh * g.ow];
        for b in 0..batch {
            for o in 0..oc {
                let grp = o / g.oc;
                for i in 0..g.oh {
                    for j in 0..g.ow {
                        let mut acc = if g.bias {
                            params[oc * g.weight_len() / g.oc + o]
                        } else {
                            0.0
                        };
                        for ci in 0..g.c {
                            for u in 0..g.kh {
                                for v in 0..g.kw {
                                    let (r, s) = (
                                        (i * g.sh + u) as isize - g.ph as isize,
                                        (j * g.sw + v) as isize - g.pw as isize,
                                    );
                                    if r < 0 || s < 0 || r >= g.h as isize || s >= g.w as isize {
                                        continue;
                                    }
                                    let xc = grp * g.c + ci;
                                    let xv = x[((b * c + xc) * g.h + r as usize) * g.w + s as usize];
                                    acc += params[((o * g.c + ci) * g.kh + u) * g.kw + v] * xv;
                                }
                            }
                        }
                        y[((b * oc + o) * g.oh + i) * g.ow + j] = acc;
                    }
                }
            }
        }
        y
    }

    /// `[batch, C, plane]` to `[C, batch, plane]`.
    fn to_cm(x: &[f32], batch: usize, c: usize, plane: usize) -> Vec<f32> {
        let mut y = vec![0.0; x.len()];
        crate::layout::to_channel_major(c, batch, plane, x, &mut y);
        y
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn forward_matches_the_definition() {
        for (groups, cg, ocg, k, s, p, bias) in [
            (4, 1, 2, 3, 1, 1, true),
            (2, 3, 2, 3, 2, 1, false),
            (3, 2, 1, 1, 1, 0, true),
            (5, 1, 1, 3, 1, 1, true),
        ] {
            let g = Conv2d::new([cg, 7, 6], ocg, [k, k], [s, s], [p, p], bias);
            let batch = 3;
            let x = values(batch * groups * g.in_len(), 1);
            let params = values(groups * g.param_len(), 2);
            let want = naive(&g, groups, batch, &x, &params);
            let mut y = vec![0.0; want.len()];
            let mut scratch = vec![0.0; scratch_len(&g)];
            grouped_forward(
                &g,
                groups,
                batch,
                &to_cm(&x, batch, groups * cg, 42),
                &params,
                &mut y,
                false,
                &mut scratch,
            );
            let want = to_cm(&want, batch, groups * ocg, g.oh * g.ow);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "groups {groups}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn backward_matches_central_differences() {
        let (groups, batch) = (3, 2);
        let g = Conv2d::new([2, 5, 5], 2, [3, 3], [1, 1], [1, 1], true);
        let x = values(batch * groups * g.in_len(), 3);
        let params = values(groups * g.param_len(), 4);
        let coef = values(batch * groups * g.out_len(), 5);
        let mut scratch = vec![0.0; scratch_len(&g)];
        let loss = |x: &[f32], p: &[f32], scratch: &mut [f32]| -> f64 {
            let mut y = vec![0.0; coef.len()];
            grouped_forward(&g, groups, batch, x, p, &mut y, false, scratch);
            y.iter().zip(&coef).map(|(a, b)| (a * b) as f64).sum()
        };
        let (mut dp, mut dx) = (vec![0.0; params.len()], vec![0.0; x.len()]);
        grouped_backward(
            &g,
            groups,
            batch,
            &x,
            &params,
            &[],
            false,
            &coef,
            &mut dp,
            Some(&mut dx),
            &mut scratch,
        );
        let h = 1e-2;
        for i in (0..params.len()).step_by(7) {
            let (mut a, mut b) = (params.clone(), params.clone());
            a[i] += h;
            b[i] -= h;
            let num = (loss(&x, &a, &mut scratch) - loss(&x, &b, &mut scratch)) / (2.0 * h as f64);
            assert!((num - dp[i] as f64).abs() < 1e-3, "dparams[{i}]: {num} vs {}", dp[i]);
        }
        for i in (0..x.len()).step_by(5) {
            let (mut a, mut b) = (x.clone(), x.clone());
            a[i] += h;
            b[i] -= h;
            let num = (loss(&a, &params, &mut scratch) - loss(&b, &params, &mut scratch)) / (2.0 * h as f64);
            assert!((num - dx[i] as f64).abs() < 1e-3, "dx[{i}]: {num} vs {}", dx[i]);
        }
    }
}
