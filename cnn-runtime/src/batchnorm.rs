//! Batch normalization (PyTorch's `BatchNorm1d`/`BatchNorm2d`), forward in eval and train mode,
//! and backward in train mode.
//!
//! A layer normalizes each of its `C` channels over the batch and the channel's plane of
//! `plane` elements (`H*W` for `BatchNorm2d`, 1 for `BatchNorm1d` on a flat `[N]` input, whose
//! `N` elements are `N` channels): `y = (x - mean) / sqrt(var + eps) * weight + bias`.
//!
//! - **Eval mode** ([`BatchNorm::forward_eval`]) uses the running statistics.
//! - **Train mode** ([`BatchNorm::forward_train`]) uses the batch's mean and biased variance,
//!   keeps them for [`BatchNorm::backward`], and updates the running statistics:
//!   `running_mean = (1 - m) running_mean + m mean`,
//!   `running_var = (1 - m) running_var + m var_unbiased` (the variance divided by `n - 1`).
//!
//! Slices: the parameters are `weight [C]` then `bias [C]` (none when not affine), the buffers
//! `running_mean [C]` then `running_var [C]`. Images are in either [`Layout`]; the per-channel
//! sums are accumulated in `f64`, the variance in two passes (mean, then squared deviations),
//! so the results stay within `f32` rounding of PyTorch's whatever the batch size.

use crate::layout::Layout;

/// The geometry and hyper-parameters of one batch normalization layer.
///
/// ```
/// use cnn_runtime::{batchnorm::BatchNorm, layout::Layout};
/// // BatchNorm1d(2): two channels of one element each.
/// const G: BatchNorm = BatchNorm::new(2, 1, 1e-5, 0.1, true);
/// assert_eq!((G.param_len(), G.buffer_len(), G.saved_len()), (4, 4, 4));
///
/// let x = [1.0, 10.0, 3.0, 30.0]; // [batch = 2, C = 2]
/// let params = [1.0, 1.0, 0.0, 0.0]; // weight 1, bias 0: PyTorch's initial values
/// let mut buffers = [0.0, 0.0, 1.0, 1.0]; // running mean 0, running variance 1
/// let (mut saved, mut y) = ([0.0; 4], [0.0; 4]);
/// G.forward_train(2, &x, Layout::SampleMajor, &params, &mut buffers, &mut saved, &mut y);
/// // Each channel becomes -1, 1 (up to eps).
/// assert!(y.iter().zip([-1.0, -1.0, 1.0, 1.0]).all(|(a, b)| (a - b).abs() < 1e-4));
/// // Running mean 0.1 * (2, 20); running variance 0.9 + 0.1 * (2, 200) (unbiased).
/// assert!((buffers[1] - 2.0).abs() < 1e-6 && (buffers[3] - 20.9).abs() < 1e-5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    /// Channels.
    pub c: usize,
    /// Elements of one channel of one sample: `H*W`, or 1 for `BatchNorm1d`.
    pub plane: usize,
    /// Added to the variance before its square root.
    pub eps: f32,
    /// The weight of the batch's statistics in the running ones.
    pub momentum: f32,
    /// Whether the layer has a weight and a bias.
    pub affine: bool,
}

impl BatchNorm {
    /// A layer of `c` channels of `plane` elements each.
    ///
    /// ```
    /// use cnn_runtime::batchnorm::BatchNorm;
    /// // PyTorch's BatchNorm2d(16) on 8x8 images.
    /// const G: BatchNorm = BatchNorm::new(16, 8 * 8, 1e-5, 0.1, true);
    /// assert_eq!(G.in_len(), 16 * 64);
    /// ```
    pub const fn new(c: usize, plane: usize, eps: f32, momentum: f32, affine: bool) -> Self {
        BatchNorm {
            c,
            plane,
            eps,
            momentum,
            affine,
        }
    }

    /// Elements of one sample, `C*plane` (the output has as many).
    ///
    /// ```
    /// use cnn_runtime::batchnorm::BatchNorm;
    /// assert_eq!(BatchNorm::new(3, 4, 1e-5, 0.1, true).in_len(), 12);
    /// ```
    pub const fn in_len(&self) -> usize {
        self.c * self.plane
    }

    /// Elements of the parameters: `weight [C]` then `bias [C]` if affine, else none.
    ///
    /// ```
    /// use cnn_runtime::batchnorm::BatchNorm;
    /// assert_eq!(BatchNorm::new(3, 4, 1e-5, 0.1, true).param_len(), 6);
    /// assert_eq!(BatchNorm::new(3, 4, 1e-5, 0.1, false).param_len(), 0);
    /// ```
    pub const fn param_len(&self) -> usize {
        if self.affine {
            2 * self.c
        } else {
            0
        }
    }

    /// Elements of the buffers: `running_mean [C]` then `running_var [C]`.
    ///
    /// ```
    /// use cnn_runtime::batchnorm::BatchNorm;
    /// assert_eq!(BatchNorm::new(3, 4, 1e-5, 0.1, false).buffer_len(), 6);
    /// ```
    pub const fn buffer_len(&self) -> usize {
        2 * self.c
    }

    /// Elements that [`forward_train`](Self::forward_train) keeps for
    /// [`backward`](Self::backward): the batch mean `[C]` then `1 / sqrt(var + eps)` `[C]`.
    ///
    /// ```
    /// use cnn_runtime::batchnorm::BatchNorm;
    /// assert_eq!(BatchNorm::new(3, 4, 1e-5, 0.1, true).saved_len(), 6);
    /// ```
    pub const fn saved_len(&self) -> usize {
        2 * self.c
    }

    /// Eval mode: `y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`, for a
    /// batch `x` of `batch * C * plane` elements in `layout` (`y` in the same layout).
    ///
    /// # Panics
    ///
    /// If `x` or `y` does not hold `batch*C*plane` elements, `params` `param_len()` or
    /// `buffers` `buffer_len()`; the message gives the expected and the actual length.
    ///
    /// ```
    /// use cnn_runtime::{batchnorm::BatchNorm, layout::Layout};
    /// const G: BatchNorm = BatchNorm::new(1, 2, 0.0, 0.1, true);
    /// let params = [2.0, 1.0]; // weight 2, bias 1
    /// let buffers = [3.0, 4.0]; // running mean 3, running variance 4
    /// let mut y = [0.0; 2];
    /// G.forward_eval(1, &[3.0, 5.0], Layout::SampleMajor, &params, &buffers, &mut y);
    /// assert_eq!(y, [1.0, 3.0]); // (x - 3) / 2 * 2 + 1
    /// ```
    pub fn forward_eval(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        buffers: &[f32],
        y: &mut [f32],
    ) {
        self.check_data(batch, x.len(), "x");
        self.check_data(batch, y.len(), "y");
        self.check_params(params.len());
        self.check_buffers(buffers.len(), "buffers");
        let (running_mean, running_var) = buffers.split_at(self.c);
        for ch in 0..self.c {
            let mean = running_mean[ch];
            let invstd = 1.0 / crate::math::sqrt(running_var[ch] + self.eps);
            let (scale, shift) = self.scale_shift(params, ch, invstd);
            for at in self.planes(batch, layout, ch) {
                let (xp, yp) = (&x[at..][..self.plane], &mut y[at..][..self.plane]);
                yp.iter_mut()
                    .zip(xp)
                    .for_each(|(y, &x)| *y = (x - mean) * scale + shift);
            }
        }
    }

    /// Train mode: normalizes each channel with the mean and biased variance of its
    /// `batch * plane` elements, writes them to `saved` (the mean, then `1 / sqrt(var + eps)`),
    /// and updates the running statistics in `buffers` (the unbiased variance for
    /// `running_var`).
    ///
    /// # Panics
    ///
    /// On a length mismatch, as [`forward_eval`](Self::forward_eval), or if `saved` does not
    /// hold `saved_len()` elements; and if `batch * plane < 2`, as PyTorch ("Expected more than
    /// 1 value per channel when training").
    ///
    /// ```
    /// use cnn_runtime::{batchnorm::BatchNorm, layout::Layout};
    /// const G: BatchNorm = BatchNorm::new(1, 2, 0.0, 0.5, false);
    /// let mut buffers = [0.0, 1.0];
    /// let (mut saved, mut y) = ([0.0; 2], [0.0; 4]);
    /// G.forward_train(2, &[1.0, 3.0, 5.0, 7.0], Layout::SampleMajor, &[], &mut buffers, &mut saved, &mut y);
    /// assert_eq!(saved[0], 4.0); // mean
    /// assert_eq!(saved[1], 1.0 / 5.0f32.sqrt()); // biased variance 5
    /// assert_eq!(buffers[0], 2.0); // 0.5 * 0 + 0.5 * 4
    /// assert!((buffers[1] - (0.5 + 0.5 * 20.0 / 3.0)).abs() < 1e-6); // unbiased variance 20 / 3
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn forward_train(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        buffers: &mut [f32],
        saved: &mut [f32],
        y: &mut [f32],
    ) {
        self.check_data(batch, x.len(), "x");
        self.check_data(batch, y.len(), "y");
        self.check_params(params.len());
        self.check_buffers(buffers.len(), "buffers");
        self.check_buffers(saved.len(), "saved");
        let n = batch * self.plane;
        assert!(
            n >= 2,
            "BatchNorm: expected more than 1 value per channel when training, got batch*plane = {batch}*{} = {n}",
            self.plane
        );
        let m = self.momentum as f64;
        for ch in 0..self.c {
            let sum: f64 = self
                .planes(batch, layout, ch)
                .map(|at| sum_f64(&x[at..][..self.plane]))
                .sum();
            let mean = sum / n as f64;
            let squares: f64 = self
                .planes(batch, layout, ch)
                .map(|at| {
                    x[at..][..self.plane]
                        .iter()
                        .map(|&v| (v as f64 - mean) * (v as f64 - mean))
                        .sum::<f64>()
                })
                .sum();
            let var = squares / n as f64;
            let invstd = 1.0 / crate::math::sqrt((var + self.eps as f64) as f32);
            let (hi, lo) = split(mean);
            (saved[ch], saved[self.c + ch]) = (hi, invstd);
            let (scale, shift) = self.scale_shift(params, ch, invstd);
            for at in self.planes(batch, layout, ch) {
                let (xp, yp) = (&x[at..][..self.plane], &mut y[at..][..self.plane]);
                yp.iter_mut()
                    .zip(xp)
                    .for_each(|(y, &x)| *y = ((x - hi) - lo) * scale + shift);
            }
            let unbiased = squares / (n - 1) as f64;
            let (rm, rv) = (buffers[ch] as f64, buffers[self.c + ch] as f64);
            buffers[ch] = ((1.0 - m) * rm + m * mean) as f32;
            buffers[self.c + ch] = ((1.0 - m) * rv + m * unbiased) as f32;
        }
    }

    /// Train-mode backward pass: overwrites `dparams` (`param_len()` elements: d weight, then
    /// d bias) and, if given, `dx` with the gradients of the loss, given `dy` = d loss / d y.
    /// `x` is [`forward_train`](Self::forward_train)'s input and `saved` what it wrote.
    ///
    /// With `xhat = (x - mean) * invstd` and sums over a channel's `n = batch * plane`
    /// elements: `d bias = sum dy`, `d weight = sum dy * xhat`, and
    /// `dx = weight * invstd / n * (n * dy - sum dy - xhat * sum dy * xhat)` (weight 1 when
    /// not affine).
    ///
    /// # Panics
    ///
    /// If `x`, `dy` or `dx` does not hold `batch*C*plane` elements, `params` or `dparams`
    /// `param_len()`, or `saved` `saved_len()`.
    ///
    /// ```
    /// use cnn_runtime::{batchnorm::BatchNorm, layout::Layout};
    /// const G: BatchNorm = BatchNorm::new(1, 1, 0.0, 0.1, true);
    /// let (x, params) = ([1.0, 3.0], [1.0, 0.0]);
    /// let (mut buffers, mut saved, mut y) = ([0.0, 1.0], [0.0; 2], [0.0; 2]);
    /// G.forward_train(2, &x, Layout::SampleMajor, &params, &mut buffers, &mut saved, &mut y);
    /// assert_eq!(y, [-1.0, 1.0]);
    /// // The loss y[1]: dy = (0, 1). A shift of x changes nothing, so dx sums to zero.
    /// let (mut dparams, mut dx) = ([0.0; 2], [0.0; 2]);
    /// G.backward(2, &x, Layout::SampleMajor, &params, &saved, &[0.0, 1.0], &mut dparams, Some(&mut dx));
    /// assert_eq!(dparams, [1.0, 1.0]); // d weight = xhat[1], d bias = 1
    /// assert_eq!(dx[0] + dx[1], 0.0);
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        saved: &[f32],
        dy: &[f32],
        dparams: &mut [f32],
        mut dx: Option<&mut [f32]>,
    ) {
        self.check_data(batch, x.len(), "x");
        self.check_data(batch, dy.len(), "dy");
        if let Some(dx) = dx.as_deref() {
            self.check_data(batch, dx.len(), "dx");
        }
        self.check_params(params.len());
        assert_eq!(
            dparams.len(),
            self.param_len(),
            "BatchNorm: dparams must hold {} elements, got {}",
            self.param_len(),
            dparams.len()
        );
        self.check_buffers(saved.len(), "saved");
        let n = batch * self.plane;
        for ch in 0..self.c {
            // The mean again in f64, as the forward pass computed it (`saved` holds it rounded
            // to f32, which a channel far from zero with a small spread would feel), and
            // `sum dy * xhat = invstd * (sum dy * x - mean * sum dy)`, all in one pass.
            let invstd = saved[self.c + ch];
            let (mut sum_x, mut sum_dy, mut sum_dy_x) = (0.0f64, 0.0f64, 0.0f64);
            for at in self.planes(batch, layout, ch) {
                let (xp, gp) = (&x[at..][..self.plane], &dy[at..][..self.plane]);
                sum_x += sum_f64(xp);
                for (&x, &g) in xp.iter().zip(gp) {
                    sum_dy += g as f64;
                    sum_dy_x += g as f64 * x as f64;
                }
            }
            let mean = sum_x / n as f64;
            let sum_dy_xhat = invstd as f64 * (sum_dy_x - mean * sum_dy);
            let (hi, lo) = split(mean);
            if self.affine {
                (dparams[ch], dparams[self.c + ch]) = (sum_dy_xhat as f32, sum_dy as f32);
            }
            let Some(dx) = dx.as_deref_mut() else {
                continue;
            };
            let weight = if self.affine { params[ch] } else { 1.0 };
            let scale = weight * invstd;
            let (mean_dy, mean_dy_xhat) = ((sum_dy / n as f64) as f32, (sum_dy_xhat / n as f64) as f32);
            for at in self.planes(batch, layout, ch) {
                let (xp, gp) = (&x[at..][..self.plane], &dy[at..][..self.plane]);
                let dxp = &mut dx[at..][..self.plane];
                for ((d, &x), &g) in dxp.iter_mut().zip(xp).zip(gp) {
                    let xhat = ((x - hi) - lo) * invstd;
                    *d = scale * (g - mean_dy - xhat * mean_dy_xhat);
                }
            }
        }
    }

    /// The offsets of the planes of channel `ch`, one per sample.
    fn planes(&self, batch: usize, layout: Layout, ch: usize) -> impl Iterator<Item = usize> {
        let (c, plane) = (self.c, self.plane);
        (0..batch).map(move |b| layout.plane(ch, b, c, batch) * plane)
    }

    /// `(weight * invstd, bias)` of channel `ch`: `y = (x - mean) * scale + shift`.
    fn scale_shift(&self, params: &[f32], ch: usize, invstd: f32) -> (f32, f32) {
        if self.affine {
            (params[ch] * invstd, params[self.c + ch])
        } else {
            (invstd, 0.0)
        }
    }

    fn check_data(&self, batch: usize, len: usize, what: &str) {
        assert_eq!(
            len,
            batch * self.in_len(),
            "BatchNorm: {what} must hold batch*C*plane = {batch}*{}*{} elements, got {len}",
            self.c,
            self.plane
        );
    }

    fn check_params(&self, len: usize) {
        assert_eq!(
            len,
            self.param_len(),
            "BatchNorm: params must hold {} elements, got {len}",
            self.param_len()
        );
    }

    fn check_buffers(&self, len: usize, what: &str) {
        assert_eq!(
            len,
            2 * self.c,
            "BatchNorm: {what} must hold 2*C = {} elements, got {len}",
            2 * self.c
        );
    }
}

/// `v` as the sum of two `f32`s, the first `v` rounded: `(x - hi) - lo` is `x - v` to within
/// `f32` rounding of the result, where `x - v as f32` could lose all of it when `x` is close to
/// `v`.
fn split(v: f64) -> (f32, f32) {
    let hi = v as f32;
    (hi, (v - hi as f64) as f32)
}

/// The sum of `x` in `f64`.
fn sum_f64(x: &[f32]) -> f64 {
    x.iter().map(|&v| v as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{to_channel_major, to_sample_major};
    use crate::testutil::{assert_grad_matches, seq};

    /// BatchNorm2d with weight and bias, BatchNorm1d, and BatchNorm2d without affine.
    const CASES: [(BatchNorm, usize); 4] = [
        (BatchNorm::new(3, 5, 1e-5, 0.1, true), 4),
        (BatchNorm::new(6, 1, 1e-5, 0.2, true), 5),
        (BatchNorm::new(2, 12, 1e-3, 0.1, false), 3),
        (BatchNorm::new(1, 1, 1e-5, 0.1, true), 3),
    ];

    /// Input with a different offset and spread per channel, sample-major.
    fn input(g: &BatchNorm, batch: usize, phase: f32) -> Vec<f32> {
        let x = seq(batch * g.in_len(), phase);
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = i / g.plane % g.c;
                v * (0.5 + ch as f32) + ch as f32 - 1.0
            })
            .collect()
    }

    fn params(g: &BatchNorm) -> Vec<f32> {
        seq(g.param_len(), 0.7).iter().map(|v| v + 0.5).collect()
    }

    fn buffers(g: &BatchNorm) -> Vec<f32> {
        let s = seq(g.c, 3.3);
        s.iter().map(|v| v * 0.5).chain(s.iter().map(|v| v * v + 0.5)).collect()
    }

    /// The statistics of channel `ch` in f64 (sample-major `x`): mean, biased and unbiased
    /// variance.
    fn stats(g: &BatchNorm, batch: usize, x: &[f32], ch: usize) -> (f64, f64, f64) {
        let vals: Vec<f64> = (0..batch)
            .flat_map(|b| x[(b * g.c + ch) * g.plane..][..g.plane].iter().map(|&v| v as f64))
            .collect();
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let sq = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
        (mean, sq / n, sq / (n - 1.0))
    }

    /// `y` against `(x - mean) / sqrt(var + eps) * weight + bias` in f64, sample-major.
    fn assert_normalized(g: &BatchNorm, batch: usize, x: &[f32], y: &[f32], p: &[f32], mean: &[f64], var: &[f64]) {
        for (i, (&x, &y)) in x.iter().zip(y).enumerate() {
            let ch = i / g.plane % g.c;
            let (w, b) = if g.affine {
                (p[ch] as f64, p[g.c + ch] as f64)
            } else {
                (1.0, 0.0)
            };
            let want = (x as f64 - mean[ch]) / (var[ch] + g.eps as f64).sqrt() * w + b;
            assert!(
                (y as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{g:?} [{i}]: {y} vs {want}"
            );
        }
        assert_eq!(x.len(), batch * g.in_len());
    }

    #[test]
    fn forward_eval_matches_definition() {
        for (g, batch) in CASES {
            let (x, p, buf) = (input(&g, batch, 0.1), params(&g), buffers(&g));
            let mut y = vec![f32::NAN; x.len()];
            g.forward_eval(batch, &x, Layout::SampleMajor, &p, &buf, &mut y);
            let mean: Vec<f64> = buf[..g.c].iter().map(|&v| v as f64).collect();
            let var: Vec<f64> = buf[g.c..].iter().map(|&v| v as f64).collect();
            assert_normalized(&g, batch, &x, &y, &p, &mean, &var);
        }
    }

    #[test]
    fn forward_train_matches_definition_and_updates_running_stats() {
        for (g, batch) in CASES {
            let (x, p, before) = (input(&g, batch, 0.2), params(&g), buffers(&g));
            let mut buf = before.clone();
            let mut saved = vec![f32::NAN; g.saved_len()];
            let mut y = vec![f32::NAN; x.len()];
            g.forward_train(batch, &x, Layout::SampleMajor, &p, &mut buf, &mut saved, &mut y);
            let stats: Vec<_> = (0..g.c).map(|ch| stats(&g, batch, &x, ch)).collect();
            let mean: Vec<f64> = stats.iter().map(|s| s.0).collect();
            let var: Vec<f64> = stats.iter().map(|s| s.1).collect();
            assert_normalized(&g, batch, &x, &y, &p, &mean, &var);
            let m = g.momentum as f64;
            for (ch, &(mean, var, unbiased)) in stats.iter().enumerate() {
                let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-6 * (1.0 + b.abs());
                assert!(close(saved[ch], mean), "{g:?}: saved mean");
                assert!(
                    close(saved[g.c + ch], 1.0 / (var + g.eps as f64).sqrt()),
                    "{g:?}: saved invstd"
                );
                let want_mean = (1.0 - m) * before[ch] as f64 + m * mean;
                let want_var = (1.0 - m) * before[g.c + ch] as f64 + m * unbiased;
                assert!(
                    close(buf[ch], want_mean),
                    "{g:?}: running mean {} vs {want_mean}",
                    buf[ch]
                );
                assert!(
                    close(buf[g.c + ch], want_var),
                    "{g:?}: running var {} vs {want_var}",
                    buf[g.c + ch]
                );
            }
        }
    }

    #[test]
    fn large_offsets_keep_f32_precision() {
        // A channel far from zero with a small spread: a one-pass variance in f32 would lose it.
        let g = BatchNorm::new(1, 4, 1e-5, 0.1, false);
        let x: Vec<f32> = seq(32, 0.3).iter().map(|v| 1000.0 + v * 0.01).collect();
        let (mut buf, mut saved, mut y) = (vec![0.0, 1.0], vec![0.0; 2], vec![0.0; 32]);
        g.forward_train(8, &x, Layout::SampleMajor, &[], &mut buf, &mut saved, &mut y);
        let (mean, var, _) = stats(&g, 8, &x, 0);
        assert_normalized(&g, 8, &x, &y, &[], &[mean], &[var]);

        // The backward pass against its formula in f64.
        let dy = seq(32, 1.4);
        let mut dx = vec![f32::NAN; 32];
        g.backward(8, &x, Layout::SampleMajor, &[], &saved, &dy, &mut [], Some(&mut dx));
        let invstd = 1.0 / (var + g.eps as f64).sqrt();
        let xhat: Vec<f64> = x.iter().map(|&v| (v as f64 - mean) * invstd).collect();
        let sum_dy: f64 = dy.iter().map(|&v| v as f64).sum();
        let sum_dy_xhat: f64 = dy.iter().zip(&xhat).map(|(&g, h)| g as f64 * h).sum();
        for i in 0..32 {
            let want = invstd / 32.0 * (32.0 * dy[i] as f64 - sum_dy - xhat[i] * sum_dy_xhat);
            assert!(
                (dx[i] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                "dx[{i}]: {} vs {want}",
                dx[i]
            );
        }
    }

    #[test]
    fn layouts_agree() {
        for (g, batch) in CASES {
            let (x, p, buf0) = (input(&g, batch, 0.4), params(&g), buffers(&g));
            let dy = seq(x.len(), 1.9);
            let mut x_cm = vec![0.0; x.len()];
            to_channel_major(g.c, batch, g.plane, &x, &mut x_cm);
            let mut dy_cm = vec![0.0; x.len()];
            to_channel_major(g.c, batch, g.plane, &dy, &mut dy_cm);

            let run = |layout: Layout, x: &[f32], dy: &[f32]| {
                let mut eval = vec![0.0; x.len()];
                g.forward_eval(batch, x, layout, &p, &buf0, &mut eval);
                let (mut buf, mut saved, mut y) = (buf0.clone(), vec![0.0; g.saved_len()], vec![0.0; x.len()]);
                g.forward_train(batch, x, layout, &p, &mut buf, &mut saved, &mut y);
                let (mut dp, mut dx) = (vec![0.0; g.param_len()], vec![0.0; x.len()]);
                g.backward(batch, x, layout, &p, &saved, dy, &mut dp, Some(&mut dx));
                (eval, y, buf, saved, dp, dx)
            };
            let sm = run(Layout::SampleMajor, &x, &dy);
            let cm = run(Layout::ChannelMajor, &x_cm, &dy_cm);
            let back = |v: &[f32]| {
                let mut out = vec![0.0; v.len()];
                to_sample_major(g.c, batch, g.plane, v, &mut out);
                out
            };
            assert_eq!(sm.0, back(&cm.0), "{g:?}: eval");
            assert_eq!(sm.1, back(&cm.1), "{g:?}: train");
            assert_eq!(sm.2, cm.2, "{g:?}: running stats");
            assert_eq!(sm.3, cm.3, "{g:?}: saved");
            assert_eq!(sm.4, cm.4, "{g:?}: dparams");
            assert_eq!(sm.5, back(&cm.5), "{g:?}: dx");
        }
    }

    #[test]
    fn backward_matches_central_differences() {
        for (g, batch) in CASES {
            let (x, p, buf) = (input(&g, batch, 0.5), params(&g), buffers(&g));
            let r = seq(x.len(), 2.3);
            let loss = |x: &[f32], p: &[f32]| {
                let (mut buf, mut saved, mut y) = (buf.clone(), vec![0.0; g.saved_len()], vec![0.0; x.len()]);
                g.forward_train(batch, x, Layout::SampleMajor, p, &mut buf, &mut saved, &mut y);
                y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
            };
            let (mut b, mut saved, mut y) = (buf.clone(), vec![0.0; g.saved_len()], vec![0.0; x.len()]);
            g.forward_train(batch, &x, Layout::SampleMajor, &p, &mut b, &mut saved, &mut y);
            let (mut dp, mut dx) = (vec![f32::NAN; g.param_len()], vec![f32::NAN; x.len()]);
            g.backward(batch, &x, Layout::SampleMajor, &p, &saved, &r, &mut dp, Some(&mut dx));
            assert_grad_matches(&format!("{g:?} dx"), &x, &dx, |x| loss(x, &p));
            assert_grad_matches(&format!("{g:?} dparams"), &p, &dp, |p| loss(&x, p));

            // Without dx, the same parameter gradient.
            let mut dp2 = vec![f32::NAN; g.param_len()];
            g.backward(batch, &x, Layout::SampleMajor, &p, &saved, &r, &mut dp2, None);
            assert_eq!(dp, dp2);
        }
    }

    #[test]
    fn not_affine_is_affine_with_unit_weight_and_zero_bias() {
        let (plain, batch) = (CASES[2].0, CASES[2].1);
        let affine = BatchNorm { affine: true, ..plain };
        let ones: Vec<f32> = (0..2 * plain.c).map(|i| if i < plain.c { 1.0 } else { 0.0 }).collect();
        let x = input(&plain, batch, 0.6);
        let dy = seq(x.len(), 0.8);
        let run = |g: &BatchNorm, p: &[f32]| {
            let (mut buf, mut saved, mut y) = (buffers(g), vec![0.0; g.saved_len()], vec![0.0; x.len()]);
            g.forward_train(batch, &x, Layout::SampleMajor, p, &mut buf, &mut saved, &mut y);
            let mut dp = vec![0.0; g.param_len()];
            let mut dx = vec![0.0; x.len()];
            g.backward(batch, &x, Layout::SampleMajor, p, &saved, &dy, &mut dp, Some(&mut dx));
            let mut eval = vec![0.0; x.len()];
            g.forward_eval(batch, &x, Layout::SampleMajor, p, &buffers(g), &mut eval);
            (y, buf, dx, eval)
        };
        assert_eq!(run(&plain, &[]), run(&affine, &ones));
    }

    #[test]
    #[should_panic(expected = "more than 1 value per channel")]
    fn training_on_one_value_per_channel_panics() {
        let g = BatchNorm::new(3, 1, 1e-5, 0.1, true);
        let p = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        let (mut buf, mut saved, mut y) = ([0.0; 6], [0.0; 6], [0.0; 3]);
        g.forward_train(
            1,
            &[1.0, 2.0, 3.0],
            Layout::SampleMajor,
            &p,
            &mut buf,
            &mut saved,
            &mut y,
        );
    }

    #[test]
    #[should_panic(expected = "params must hold 4 elements, got 3")]
    fn wrong_param_length_panics() {
        let g = BatchNorm::new(2, 1, 1e-5, 0.1, true);
        g.forward_eval(1, &[0.0; 2], Layout::SampleMajor, &[0.0; 3], &[0.0; 4], &mut [0.0; 2]);
    }
}
