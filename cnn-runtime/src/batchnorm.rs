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
use crate::parts::chunk_range;
use crate::simd;
use core::ops::Range;

/// The geometry and hyper-parameters of one batch normalization layer.
///
/// ```
/// use cnn_runtime::{batchnorm::BatchNorm, layout::Layout};
/// // BatchNorm1d(2): two channels of one element each.
/// const G: BatchNorm = BatchNorm::new(2, 1, 1e-5, 0.1, true);
/// assert_eq!((G.param_len(), G.buffer_len(), G.saved_len()), (4, 4, 10));
///
/// let x = [1.0, 10.0, 3.0, 30.0]; // [batch = 2, C = 2]
/// let params = [1.0, 1.0, 0.0, 0.0]; // weight 1, bias 0: PyTorch's initial values
/// let mut buffers = [0.0, 0.0, 1.0, 1.0]; // running mean 0, running variance 1
/// let (mut saved, mut y) = ([0.0; 10], [0.0; 4]);
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
    /// Whether a ReLU follows, applied as the output is written ([`with_relu`](Self::with_relu)).
    pub relu: bool,
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
            relu: false,
        }
    }

    /// The layer followed by a ReLU, `relu(batchnorm(x))`, in one pass: every forward pass
    /// writes the ReLU's output, and the backward passes take `dy` = d loss / d that output,
    /// masking it where the normalized value was not positive (recomputed from `x`, as the
    /// forward pass computed it), so neither pass needs the ReLU's own pass over memory.
    ///
    /// ```
    /// use cnn_runtime::{batchnorm::BatchNorm, layout::Layout};
    /// const G: BatchNorm = BatchNorm::new(1, 2, 0.0, 0.1, false).with_relu();
    /// let mut y = [0.0; 2];
    /// G.forward_eval(1, &[-3.0, 5.0], Layout::SampleMajor, &[], &[1.0, 4.0], &mut y);
    /// assert_eq!(y, [0.0, 2.0]); // relu((x - 1) / 2)
    /// ```
    pub const fn with_relu(self) -> Self {
        BatchNorm { relu: true, ..self }
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
    /// [`backward`](Self::backward), `[C]` each: the batch mean as the sum of two `f32`s (the
    /// mean rounded, then the rest), `1 / sqrt(var + eps)`, and the backward pass's channel
    /// means of `dy` and of `dy * xhat`.
    ///
    /// ```
    /// use cnn_runtime::batchnorm::BatchNorm;
    /// assert_eq!(BatchNorm::new(3, 4, 1e-5, 0.1, true).saved_len(), 15);
    /// ```
    pub const fn saved_len(&self) -> usize {
        5 * self.c
    }

    /// Elements of one part's partial sums ([`partial_stats`](Self::partial_stats),
    /// [`partial_grad`](Self::partial_grad)): two `f64`s per channel, each as two `f32`s.
    ///
    /// ```
    /// use cnn_runtime::batchnorm::BatchNorm;
    /// assert_eq!(BatchNorm::new(3, 4, 1e-5, 0.1, true).partial_len(), 12);
    /// ```
    pub const fn partial_len(&self) -> usize {
        4 * self.c
    }

    /// Eval mode as one multiply-add per element: `(scale, shift)` of channel `ch` such that
    /// [`forward_eval`](Self::forward_eval) is `y = x * scale + shift` there (up to rounding).
    /// What folding the layer into the convolution before it takes.
    ///
    /// # Panics
    ///
    /// If `params` or `buffers` is not as long as the layer's, or `ch >= C`.
    ///
    /// ```
    /// use cnn_runtime::batchnorm::BatchNorm;
    /// const G: BatchNorm = BatchNorm::new(1, 2, 0.0, 0.1, true);
    /// // weight 2, bias 1; running mean 3, running variance 4: y = (x - 3) / 2 * 2 + 1.
    /// assert_eq!(G.eval_affine(&[2.0, 1.0], &[3.0, 4.0], 0), (1.0, -2.0));
    /// ```
    pub fn eval_affine(&self, params: &[f32], buffers: &[f32], ch: usize) -> (f32, f32) {
        self.check_params(params.len());
        self.check_buffers(buffers.len(), "buffers");
        assert!(ch < self.c, "BatchNorm: channel {ch} of {}", self.c);
        let invstd = 1.0 / crate::math::sqrt(buffers[self.c + ch] + self.eps);
        let (scale, shift) = self.scale_shift(params, ch, invstd);
        (scale, shift - buffers[ch] * scale)
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
                self.write(yp, xp, |x| (x - mean) * scale + shift);
            }
        }
    }

    /// Train mode: normalizes each channel with the mean and biased variance of its
    /// `batch * plane` elements, writes them to `saved` (see [`saved_len`](Self::saved_len)),
    /// and updates the running statistics in `buffers` (the unbiased variance for
    /// `running_var`).
    ///
    /// This is [`partial_stats`](Self::partial_stats), [`combine_stats`](Self::combine_stats)
    /// and [`normalize`](Self::normalize) on one part: a batch split across threads runs the
    /// three steps with the parts' statistics combined between them.
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
    /// let (mut saved, mut y) = ([0.0; 5], [0.0; 4]);
    /// G.forward_train(2, &[1.0, 3.0, 5.0, 7.0], Layout::SampleMajor, &[], &mut buffers, &mut saved, &mut y);
    /// assert_eq!(saved[0], 4.0); // mean
    /// assert_eq!(saved[2], 1.0 / 5.0f32.sqrt()); // biased variance 5
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
        self.check_data(batch, y.len(), "y");
        self.check_buffers(buffers.len(), "buffers");
        self.check_saved(saved.len());
        let n = batch * self.plane;
        for ch in 0..self.c {
            let (mean, m2) = self.channel_stats(batch, x, layout, ch);
            self.finish_stats(ch, n, mean, m2, buffers, saved);
        }
        self.normalize(batch, x, layout, params, saved, y);
    }

    /// One part of a batch (`batch` of its samples) in train mode, step 1 of 3: each channel's
    /// mean and sum of squared deviations over the part, into `partial`
    /// ([`partial_len`](Self::partial_len)), for [`combine_stats`](Self::combine_stats).
    ///
    /// # Panics
    ///
    /// If `x` does not hold `batch*C*plane` elements or `partial` `partial_len()`.
    ///
    /// ```
    /// use cnn_runtime::{batchnorm::BatchNorm, layout::Layout};
    /// // A batch of 4 split in two parts, combined, then normalized part by part.
    /// const G: BatchNorm = BatchNorm::new(1, 1, 0.0, 0.5, false);
    /// let x = [1.0, 3.0, 5.0, 7.0];
    /// let (mut p0, mut p1) = ([0.0; 4], [0.0; 4]);
    /// G.partial_stats(2, &x[..2], Layout::SampleMajor, &mut p0);
    /// G.partial_stats(2, &x[2..], Layout::SampleMajor, &mut p1);
    /// let (mut buffers, mut saved) = ([0.0, 1.0], [0.0; 5]);
    /// G.combine_stats([(2, &p0[..]), (2, &p1[..])], &mut buffers, &mut saved);
    /// let mut y = [0.0; 4];
    /// G.normalize(2, &x[..2], Layout::SampleMajor, &[], &saved, &mut y[..2]);
    /// G.normalize(2, &x[2..], Layout::SampleMajor, &[], &saved, &mut y[2..]);
    /// let mut whole = [0.0; 4];
    /// G.forward_train(4, &x, Layout::SampleMajor, &[], &mut [0.0, 1.0], &mut [0.0; 5], &mut whole);
    /// assert_eq!(y, whole);
    /// ```
    pub fn partial_stats(&self, batch: usize, x: &[f32], layout: Layout, partial: &mut [f32]) {
        self.check_partial(partial.len());
        for ch in 0..self.c {
            let (mean, m2) = self.channel_stats(batch, x, layout, ch);
            put(partial, ch, mean);
            put(partial, self.c + ch, m2);
        }
    }

    /// Step 2 of 3: the statistics of the whole batch from its parts' `(samples, partial)`, in
    /// order (Chan's combination of means and squared deviations, in `f64`), into `saved`; and
    /// the running statistics updated in `buffers`.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length, or the parts hold fewer than 2 values per channel.
    pub fn combine_stats<'a>(
        &self,
        parts: impl IntoIterator<Item = (usize, &'a [f32])> + Clone,
        buffers: &mut [f32],
        saved: &mut [f32],
    ) {
        self.check_buffers(buffers.len(), "buffers");
        self.check_saved(saved.len());
        for (_, partial) in parts.clone() {
            self.check_partial(partial.len());
        }
        for ch in 0..self.c {
            // Count, mean and squared deviations of the parts so far, combined in order.
            let (n, mean, m2) = parts
                .clone()
                .into_iter()
                .fold((0, 0.0, 0.0), |acc, (samples, partial)| {
                    combine(acc, (samples * self.plane, get(partial, ch), get(partial, self.c + ch)))
                });
            self.finish_stats(ch, n, mean, m2, buffers, saved);
        }
    }

    /// Step 3 of 3: `y` from `x` (one part of the batch) with the statistics in `saved`.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length.
    pub fn normalize(&self, batch: usize, x: &[f32], layout: Layout, params: &[f32], saved: &[f32], y: &mut [f32]) {
        self.check_data(batch, x.len(), "x");
        self.check_data(batch, y.len(), "y");
        self.check_params(params.len());
        self.check_saved(saved.len());
        for ch in 0..self.c {
            let (hi, lo, invstd) = (saved[ch], saved[self.c + ch], saved[2 * self.c + ch]);
            let (scale, shift) = self.scale_shift(params, ch, invstd);
            for at in self.planes(batch, layout, ch) {
                let (xp, yp) = (&x[at..][..self.plane], &mut y[at..][..self.plane]);
                self.write(yp, xp, |x| normalized(x, (hi, lo), (scale, shift)));
            }
        }
    }

    /// `y = f(x)` element by element, then the ReLU if the layer has one.
    #[inline(always)]
    fn write(&self, y: &mut [f32], x: &[f32], f: impl Fn(f32) -> f32) {
        if self.relu {
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = f(x).max(0.0));
        } else {
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = f(x));
        }
    }

    /// A channel's mean and sum of squared deviations over the part, in `f64`, two passes:
    /// over each plane while it is in cache, the planes' then combined (as the parts of a
    /// batch are), where planes are long enough; over the whole channel otherwise.
    fn channel_stats(&self, batch: usize, x: &[f32], layout: Layout, ch: usize) -> (f64, f64) {
        self.check_data(batch, x.len(), "x");
        if self.plane >= 64 {
            let (_, mean, m2) = self.planes(batch, layout, ch).fold((0, 0.0, 0.0), |acc, at| {
                let plane = &x[at..][..self.plane];
                let mean = simd::sum_f64(plane) / self.plane as f64;
                combine(acc, (self.plane, mean, simd::sum_sq_dev_f64(plane, mean)))
            });
            return (mean, m2);
        }
        let n = batch * self.plane;
        let sum: f64 = self
            .planes(batch, layout, ch)
            .map(|at| simd::sum_f64(&x[at..][..self.plane]))
            .sum();
        let mean = sum / n as f64;
        let m2: f64 = self
            .planes(batch, layout, ch)
            .map(|at| simd::sum_sq_dev_f64(&x[at..][..self.plane], mean))
            .sum();
        (mean, m2)
    }

    /// Channel `ch`'s statistics over `n` values into `saved` and the running statistics.
    fn finish_stats(&self, ch: usize, n: usize, mean: f64, m2: f64, buffers: &mut [f32], saved: &mut [f32]) {
        assert!(
            n >= 2,
            "BatchNorm: expected more than 1 value per channel when training, got batch*plane = {n}"
        );
        let var = m2 / n as f64;
        let invstd = 1.0 / crate::math::sqrt((var + self.eps as f64) as f32);
        (saved[ch], saved[self.c + ch]) = split(mean);
        saved[2 * self.c + ch] = invstd;
        let m = self.momentum as f64;
        let unbiased = m2 / (n - 1) as f64;
        let (rm, rv) = (buffers[ch] as f64, buffers[self.c + ch] as f64);
        buffers[ch] = ((1.0 - m) * rm + m * mean) as f32;
        buffers[self.c + ch] = ((1.0 - m) * rv + m * unbiased) as f32;
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
    /// This is [`partial_grad`](Self::partial_grad), [`combine_grad`](Self::combine_grad) and
    /// [`input_grad`](Self::input_grad) on one part.
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
    /// let (mut buffers, mut saved, mut y) = ([0.0, 1.0], [0.0; 5], [0.0; 2]);
    /// G.forward_train(2, &x, Layout::SampleMajor, &params, &mut buffers, &mut saved, &mut y);
    /// assert_eq!(y, [-1.0, 1.0]);
    /// // The loss y[1]: dy = (0, 1). A shift of x changes nothing, so dx sums to zero.
    /// let (mut dparams, mut dx) = ([0.0; 2], [0.0; 2]);
    /// G.backward(2, &x, Layout::SampleMajor, &params, &mut saved, &[0.0, 1.0], &mut dparams, Some(&mut dx));
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
        saved: &mut [f32],
        dy: &[f32],
        dparams: &mut [f32],
        dx: Option<&mut [f32]>,
    ) {
        self.check_saved(saved.len());
        let n = batch * self.plane;
        for ch in 0..self.c {
            let sums = self.channel_grad(batch, x, layout, params, saved, dy, ch);
            self.grad_params(ch, sums, saved, dparams);
            self.finish_grad(ch, n, sums.0, sums.1, saved);
        }
        if let Some(dx) = dx {
            self.input_grad(batch, x, layout, params, saved, dy, dx);
        }
    }

    /// One part of the batch, backward step 1 of 3: overwrites `dparams` with the part's share
    /// of d weight and d bias (the parts' shares add up to the batch's), and writes each
    /// channel's sums of `dy` and of `dy * (x - mean)` over the part into `partial`. `params`
    /// are the layer's (a layer [`with_relu`](Self::with_relu) recomputes its output from them).
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length.
    #[allow(clippy::too_many_arguments)]
    pub fn partial_grad(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        saved: &[f32],
        dy: &[f32],
        dparams: &mut [f32],
        partial: &mut [f32],
    ) {
        self.check_partial(partial.len());
        self.check_saved(saved.len());
        for ch in 0..self.c {
            let (sum_dy, sum_dy_xc) = self.channel_grad(batch, x, layout, params, saved, dy, ch);
            self.grad_params(ch, (sum_dy, sum_dy_xc), saved, dparams);
            put(partial, ch, sum_dy);
            put(partial, self.c + ch, sum_dy_xc);
        }
    }

    /// Backward step 2 of 3: the whole batch's sums from its parts' `(samples, partial)`, in
    /// order, into `saved` (for [`input_grad`](Self::input_grad)).
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length.
    pub fn combine_grad<'a>(&self, parts: impl IntoIterator<Item = (usize, &'a [f32])> + Clone, saved: &mut [f32]) {
        self.check_saved(saved.len());
        for (_, partial) in parts.clone() {
            self.check_partial(partial.len());
        }
        for ch in 0..self.c {
            let (mut n, mut sum_dy, mut sum_dy_xc) = (0, 0.0f64, 0.0f64);
            for (samples, partial) in parts.clone() {
                n += samples * self.plane;
                sum_dy += get(partial, ch);
                sum_dy_xc += get(partial, self.c + ch);
            }
            self.finish_grad(ch, n, sum_dy, sum_dy_xc, saved);
        }
    }

    /// [`combine_stats`](Self::combine_stats) over the parts of a batch of `batch` split in
    /// `slots.len()` parts ([`chunk_range`]), each part's working memory a slot that starts with
    /// its partial sums and holds its copy of the saved statistics at `saved`: the statistics
    /// go to every slot, the running statistics to `buffers`. What the generated code calls
    /// between the phases of a training step.
    ///
    /// # Panics
    ///
    /// If `slots` is empty or a slice has the wrong length.
    ///
    /// ```
    /// use cnn_runtime::{batchnorm::BatchNorm, layout::Layout};
    /// const G: BatchNorm = BatchNorm::new(1, 1, 0.0, 1.0, false);
    /// // Two parts of a batch of 4, each slot: partial sums (4), then saved statistics (5).
    /// let x = [1.0, 3.0, 5.0, 7.0];
    /// let mut slots = vec![vec![0.0; 9], vec![0.0; 9]];
    /// G.partial_stats(2, &x[..2], Layout::SampleMajor, &mut slots[0][..4]);
    /// G.partial_stats(2, &x[2..], Layout::SampleMajor, &mut slots[1][..4]);
    /// let mut buffers = [0.0, 1.0];
    /// G.combine_stats_in(4, &mut slots, 4..9, &mut buffers);
    /// assert_eq!((slots[0][4], slots[1][4]), (4.0, 4.0)); // the mean, in both
    /// assert_eq!(buffers[0], 4.0); // momentum 1: the batch's mean
    /// ```
    pub fn combine_stats_in<S: AsRef<[f32]> + AsMut<[f32]>>(
        &self,
        batch: usize,
        slots: &mut [S],
        saved: Range<usize>,
        buffers: &mut [f32],
    ) {
        let chunks = slots.len();
        let pl = self.partial_len();
        let (first, rest) = slots.split_first_mut().expect("BatchNorm: no parts");
        let (head, tail) = first.as_mut().split_at_mut(saved.start);
        let out = &mut tail[..saved.len()];
        let parts = core::iter::once((chunk_range(batch, chunks, 0).len(), &head[..pl])).chain(
            rest.iter()
                .enumerate()
                .map(|(i, s)| (chunk_range(batch, chunks, i + 1).len(), &s.as_ref()[..pl])),
        );
        self.combine_stats(parts, buffers, out);
        for s in rest {
            s.as_mut()[saved.clone()].copy_from_slice(out);
        }
    }

    /// [`combine_grad`](Self::combine_grad) over the parts' slots, as
    /// [`combine_stats_in`](Self::combine_stats_in): the sums go to every slot's `saved`.
    ///
    /// # Panics
    ///
    /// If `slots` is empty or a slice has the wrong length.
    pub fn combine_grad_in<S: AsRef<[f32]> + AsMut<[f32]>>(&self, batch: usize, slots: &mut [S], saved: Range<usize>) {
        let chunks = slots.len();
        let pl = self.partial_len();
        let (first, rest) = slots.split_first_mut().expect("BatchNorm: no parts");
        let (head, tail) = first.as_mut().split_at_mut(saved.start);
        let out = &mut tail[..saved.len()];
        let parts = core::iter::once((chunk_range(batch, chunks, 0).len(), &head[..pl])).chain(
            rest.iter()
                .enumerate()
                .map(|(i, s)| (chunk_range(batch, chunks, i + 1).len(), &s.as_ref()[..pl])),
        );
        self.combine_grad(parts, out);
        for s in rest {
            s.as_mut()[saved.clone()].copy_from_slice(out);
        }
    }

    /// Backward step 3 of 3: `dx` of one part, from `dy` and the sums in `saved`.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length.
    #[allow(clippy::too_many_arguments)]
    pub fn input_grad(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        saved: &[f32],
        dy: &[f32],
        dx: &mut [f32],
    ) {
        self.check_data(batch, x.len(), "x");
        self.check_data(batch, dy.len(), "dy");
        self.check_data(batch, dx.len(), "dx");
        self.check_params(params.len());
        self.check_saved(saved.len());
        let c = self.c;
        for ch in 0..c {
            let (hi, lo, invstd) = (saved[ch], saved[c + ch], saved[2 * c + ch]);
            let (mean_dy, mean_dy_xhat) = (saved[3 * c + ch], saved[4 * c + ch]);
            let (scale, shift) = self.scale_shift(params, ch, invstd);
            for at in self.planes(batch, layout, ch) {
                let (xp, gp) = (&x[at..][..self.plane], &dy[at..][..self.plane]);
                let dxp = &mut dx[at..][..self.plane];
                let grad = |x: f32, g: f32| {
                    let xhat = ((x - hi) - lo) * invstd;
                    scale * (g - mean_dy - xhat * mean_dy_xhat)
                };
                let rows = dxp.iter_mut().zip(xp).zip(gp);
                if self.relu {
                    // The output as the forward pass wrote it, to mask dy with.
                    let out = |x: f32| normalized(x, (hi, lo), (scale, shift));
                    rows.for_each(|((d, &x), &g)| *d = grad(x, if out(x) > 0.0 { g } else { 0.0 }));
                } else {
                    rows.for_each(|((d, &x), &g)| *d = grad(x, g));
                }
            }
        }
    }

    /// A channel's sums of `dy` and of `dy * (x - mean)` over the part, in `f64` (`dy` masked
    /// by the ReLU if the layer has one).
    #[allow(clippy::too_many_arguments)]
    fn channel_grad(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        saved: &[f32],
        dy: &[f32],
        ch: usize,
    ) -> (f64, f64) {
        self.check_data(batch, x.len(), "x");
        self.check_data(batch, dy.len(), "dy");
        self.check_params(params.len());
        let c = self.c;
        let mean = saved[ch] as f64 + saved[c + ch] as f64;
        let (hi, lo) = (saved[ch], saved[c + ch]);
        let (scale, shift) = self.scale_shift(params, ch, saved[2 * c + ch]);
        let (mut sum_dy, mut sum_dy_xc) = (0.0f64, 0.0f64);
        // With a ReLU, dy masked a block at a time, in cache.
        let mut masked = [0.0f32; 256];
        for at in self.planes(batch, layout, ch) {
            let (xp, gp) = (&x[at..][..self.plane], &dy[at..][..self.plane]);
            if !self.relu {
                let (s, sx) = simd::sums_dy_f64(xp, gp, mean);
                (sum_dy, sum_dy_xc) = (sum_dy + s, sum_dy_xc + sx);
                continue;
            }
            for (xs, gs) in xp.chunks(masked.len()).zip(gp.chunks(masked.len())) {
                let m = &mut masked[..xs.len()];
                for ((m, &x), &g) in m.iter_mut().zip(xs).zip(gs) {
                    *m = if normalized(x, (hi, lo), (scale, shift)) > 0.0 {
                        g
                    } else {
                        0.0
                    };
                }
                let (s, sx) = simd::sums_dy_f64(xs, m, mean);
                (sum_dy, sum_dy_xc) = (sum_dy + s, sum_dy_xc + sx);
            }
        }
        (sum_dy, sum_dy_xc)
    }

    /// Channel `ch`'s means of `dy` and `dy * xhat` over `n` values into `saved`.
    fn finish_grad(&self, ch: usize, n: usize, sum_dy: f64, sum_dy_xc: f64, saved: &mut [f32]) {
        let c = self.c;
        let invstd = saved[2 * c + ch] as f64;
        saved[3 * c + ch] = (sum_dy / n as f64) as f32;
        saved[4 * c + ch] = (invstd * sum_dy_xc / n as f64) as f32;
    }

    /// Channel `ch`'s d weight and d bias into `dparams`, from its sums of `dy` and of
    /// `dy * (x - mean)` ([`channel_grad`](Self::channel_grad), one pass over the data for
    /// both these and the input gradient's sums).
    fn grad_params(&self, ch: usize, (sum_dy, sum_dy_xc): (f64, f64), saved: &[f32], dparams: &mut [f32]) {
        assert_eq!(
            dparams.len(),
            self.param_len(),
            "BatchNorm: dparams must hold {} elements, got {}",
            self.param_len(),
            dparams.len()
        );
        if !self.affine {
            return;
        }
        let invstd = saved[2 * self.c + ch] as f64;
        (dparams[ch], dparams[self.c + ch]) = ((invstd * sum_dy_xc) as f32, sum_dy as f32);
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

    fn check_saved(&self, len: usize) {
        assert_eq!(
            len,
            self.saved_len(),
            "BatchNorm: saved must hold 5*C = {} elements, got {len}",
            self.saved_len()
        );
    }

    fn check_partial(&self, len: usize) {
        assert_eq!(
            len,
            self.partial_len(),
            "BatchNorm: partial must hold 4*C = {} elements, got {len}",
            self.partial_len()
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

/// Train mode's `y` before a ReLU: `x` less the batch mean (`hi + lo`, [`split`]), times
/// `scale`, plus `shift`. One definition for the forward pass and the ReLU's masks in the
/// backward passes, which must see the same bits.
#[inline(always)]
fn normalized(x: f32, (hi, lo): (f32, f32), (scale, shift): (f32, f32)) -> f32 {
    ((x - hi) - lo) * scale + shift
}

/// The count, mean and sum of squared deviations of two sets of values together, from each
/// one's (Chan et al.'s combination, in `f64`).
fn combine((n, mean, m2): (usize, f64, f64), (m, mean_b, m2_b): (usize, f64, f64)) -> (usize, f64, f64) {
    if m == 0 {
        return (n, mean, m2);
    }
    let total = (n + m) as f64;
    let delta = mean_b - mean;
    (
        n + m,
        mean + delta * m as f64 / total,
        m2 + m2_b + delta * delta * (n as f64) * (m as f64) / total,
    )
}

/// `v` as the sum of two `f32`s, the first `v` rounded: `(x - hi) - lo` is `x - v` to within
/// `f32` rounding of the result, where `x - v as f32` could lose all of it when `x` is close to
/// `v`.
fn split(v: f64) -> (f32, f32) {
    let hi = v as f32;
    (hi, (v - hi as f64) as f32)
}

/// Writes `v` as entry `i` of a slice of `f64`s held as pairs of `f32`s ([`split`]).
fn put(slice: &mut [f32], i: usize, v: f64) {
    (slice[2 * i], slice[2 * i + 1]) = split(v);
}

/// Entry `i` of a slice written by [`put`].
fn get(slice: &[f32], i: usize) -> f64 {
    slice[2 * i] as f64 + slice[2 * i + 1] as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{to_channel_major, to_sample_major};
    use crate::testutil::{assert_all_close, assert_grad_matches, seq};

    /// BatchNorm2d with weight and bias, BatchNorm1d, and BatchNorm2d without affine; planes
    /// short and long (statistics plane by plane from 64 on).
    const CASES: [(BatchNorm, usize); 5] = [
        (BatchNorm::new(3, 5, 1e-5, 0.1, true), 4),
        (BatchNorm::new(2, 70, 1e-5, 0.1, true), 3),
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
                    close(saved[2 * g.c + ch], 1.0 / (var + g.eps as f64).sqrt()),
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
        // Short planes (the channel in two passes) and long ones (plane by plane).
        for plane in [4, 80] {
            let g = BatchNorm::new(1, plane, 1e-5, 0.1, false);
            let n = 8 * plane;
            let x: Vec<f32> = seq(n, 0.3).iter().map(|v| 1000.0 + v * 0.01).collect();
            let (mut buf, mut saved, mut y) = (vec![0.0, 1.0], vec![0.0; 5], vec![0.0; n]);
            g.forward_train(8, &x, Layout::SampleMajor, &[], &mut buf, &mut saved, &mut y);
            let (mean, var, _) = stats(&g, 8, &x, 0);
            assert_normalized(&g, 8, &x, &y, &[], &[mean], &[var]);

            // The backward pass against its formula in f64.
            let dy = seq(n, 1.4);
            let mut dx = vec![f32::NAN; n];
            g.backward(8, &x, Layout::SampleMajor, &[], &mut saved, &dy, &mut [], Some(&mut dx));
            let invstd = 1.0 / (var + g.eps as f64).sqrt();
            let xhat: Vec<f64> = x.iter().map(|&v| (v as f64 - mean) * invstd).collect();
            let sum_dy: f64 = dy.iter().map(|&v| v as f64).sum();
            let sum_dy_xhat: f64 = dy.iter().zip(&xhat).map(|(&g, h)| g as f64 * h).sum();
            for i in 0..n {
                let want = invstd / n as f64 * (n as f64 * dy[i] as f64 - sum_dy - xhat[i] * sum_dy_xhat);
                assert!(
                    (dx[i] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "plane {plane}: dx[{i}]: {} vs {want}",
                    dx[i]
                );
            }
        }
    }

    #[test]
    fn with_relu_is_a_relu_after_the_layer() {
        // Planes longer than the masked block (256), in both layouts, whole and in parts.
        let cases = CASES.into_iter().chain([(BatchNorm::new(2, 300, 1e-5, 0.1, true), 3)]);
        for (g, batch) in cases {
            let gr = g.with_relu();
            let (x, p, buf0) = (input(&g, batch, 0.6), params(&g), buffers(&g));
            let dy = seq(x.len(), 2.3);
            for layout in [Layout::SampleMajor, Layout::ChannelMajor] {
                let run = |g: BatchNorm, dy: &[f32]| {
                    let mut eval = vec![f32::NAN; x.len()];
                    g.forward_eval(batch, &x, layout, &p, &buf0, &mut eval);
                    let (mut buf, mut saved, mut y) = (buf0.clone(), vec![0.0; g.saved_len()], vec![f32::NAN; x.len()]);
                    g.forward_train(batch, &x, layout, &p, &mut buf, &mut saved, &mut y);
                    let (mut dp, mut dx) = (vec![f32::NAN; g.param_len()], vec![f32::NAN; x.len()]);
                    g.backward(batch, &x, layout, &p, &mut saved, dy, &mut dp, Some(&mut dx));
                    (eval, y, dp, dx)
                };
                let plain = run(g, &dy);
                let relu = |v: &[f32]| v.iter().map(|v| v.max(0.0)).collect::<Vec<_>>();
                let fused = run(gr, &dy);
                assert_eq!(relu(&plain.0), fused.0, "{g:?}: eval");
                assert_eq!(relu(&plain.1), fused.1, "{g:?}: train");
                assert!(
                    fused.1.contains(&0.0) && fused.1.iter().any(|&v| v > 0.0),
                    "{g:?}: the ReLU cuts some"
                );
                // The backward pass of the ReLU's output gradient, masked by hand.
                let masked: Vec<f32> = dy
                    .iter()
                    .zip(&fused.1)
                    .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 })
                    .collect();
                let by_hand = run(g, &masked);
                let what = format!("{g:?} {layout:?}");
                assert_all_close(&format!("{what} dparams"), &by_hand.2, &[&fused.2], 1e-5);
                assert_all_close(&format!("{what} dx"), &by_hand.3, &[&fused.3], 1e-5);
            }
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
                g.backward(batch, x, layout, &p, &mut saved, dy, &mut dp, Some(&mut dx));
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
            g.backward(
                batch,
                &x,
                Layout::SampleMajor,
                &p,
                &mut saved,
                &r,
                &mut dp,
                Some(&mut dx),
            );
            assert_grad_matches(&format!("{g:?} dx"), &x, &dx, |x| loss(x, &p));
            assert_grad_matches(&format!("{g:?} dparams"), &p, &dp, |p| loss(&x, p));

            // Without dx, the same parameter gradient.
            let mut dp2 = vec![f32::NAN; g.param_len()];
            g.backward(batch, &x, Layout::SampleMajor, &p, &mut saved, &r, &mut dp2, None);
            assert_eq!(dp, dp2);
        }
    }

    #[test]
    fn not_affine_is_affine_with_unit_weight_and_zero_bias() {
        let (plain, batch) = CASES
            .into_iter()
            .find(|(g, _)| !g.affine)
            .expect("a case without affine");
        let affine = BatchNorm { affine: true, ..plain };
        let ones: Vec<f32> = (0..2 * plain.c).map(|i| if i < plain.c { 1.0 } else { 0.0 }).collect();
        let x = input(&plain, batch, 0.6);
        let dy = seq(x.len(), 0.8);
        let run = |g: &BatchNorm, p: &[f32]| {
            let (mut buf, mut saved, mut y) = (buffers(g), vec![0.0; g.saved_len()], vec![0.0; x.len()]);
            g.forward_train(batch, &x, Layout::SampleMajor, p, &mut buf, &mut saved, &mut y);
            let mut dp = vec![0.0; g.param_len()];
            let mut dx = vec![0.0; x.len()];
            g.backward(
                batch,
                &x,
                Layout::SampleMajor,
                p,
                &mut saved,
                &dy,
                &mut dp,
                Some(&mut dx),
            );
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
        let (mut buf, mut saved, mut y) = ([0.0; 6], [0.0; 15], [0.0; 3]);
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

    /// A batch split in parts (as across threads): statistics and sums combined between the
    /// steps give the whole batch's results, to f32 rounding.
    #[test]
    fn parts_combined_equal_the_whole() {
        let with_relu = CASES.map(|(g, batch)| (g.with_relu(), batch));
        for (g, batch) in CASES.into_iter().chain(with_relu) {
            let batch = batch + 3;
            let (x, p) = (input(&g, batch, 0.4), params(&g));
            let dy = seq(x.len(), 2.1);
            let n = g.in_len();
            let (mut buf, mut saved, mut y) = (buffers(&g), vec![0.0; g.saved_len()], vec![0.0; x.len()]);
            g.forward_train(batch, &x, Layout::SampleMajor, &p, &mut buf, &mut saved, &mut y);
            let (mut dp, mut dx) = (vec![0.0; g.param_len()], vec![0.0; x.len()]);
            g.backward(
                batch,
                &x,
                Layout::SampleMajor,
                &p,
                &mut saved,
                &dy,
                &mut dp,
                Some(&mut dx),
            );

            let cuts = [0, 1, batch / 2, batch];
            let rows: Vec<_> = cuts.windows(2).map(|w| w[0]..w[1]).collect();
            let mut partials = vec![vec![0.0; g.partial_len()]; rows.len()];
            for (r, part) in rows.iter().zip(&mut partials) {
                g.partial_stats(r.len(), &x[r.start * n..r.end * n], Layout::SampleMajor, part);
            }
            let (mut buf2, mut saved2, mut y2) = (buffers(&g), vec![0.0; g.saved_len()], vec![0.0; x.len()]);
            let parts = rows.iter().zip(&partials).map(|(r, part)| (r.len(), &part[..]));
            g.combine_stats(parts.clone(), &mut buf2, &mut saved2);
            let (mut dp2, mut dx2) = (vec![0.0; g.param_len()], vec![0.0; x.len()]);
            for (r, part) in rows.iter().zip(&mut partials) {
                let (xs, ys) = (&x[r.start * n..r.end * n], &mut y2[r.start * n..r.end * n]);
                g.normalize(r.len(), xs, Layout::SampleMajor, &p, &saved2, ys);
                let mut share = vec![0.0; g.param_len()];
                g.partial_grad(
                    r.len(),
                    xs,
                    Layout::SampleMajor,
                    &p,
                    &saved2,
                    &dy[r.start * n..r.end * n],
                    &mut share,
                    part,
                );
                dp2.iter_mut().zip(&share).for_each(|(a, b)| *a += b);
            }
            let parts = rows.iter().zip(&partials).map(|(r, part)| (r.len(), &part[..]));
            g.combine_grad(parts, &mut saved2);
            for r in &rows {
                let span = r.start * n..r.end * n;
                g.input_grad(
                    r.len(),
                    &x[span.clone()],
                    Layout::SampleMajor,
                    &p,
                    &saved2,
                    &dy[span.clone()],
                    &mut dx2[span],
                );
            }
            let near = |a: &[f32], b: &[f32], what: &str| {
                for (i, (u, v)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (u - v).abs() <= 1e-5 * v.abs().max(1.0),
                        "{g:?} {what}[{i}]: {u} vs {v}"
                    );
                }
            };
            near(&y2, &y, "y");
            near(&buf2, &buf, "buffers");
            near(&dp2, &dp, "dparams");
            near(&dx2, &dx, "dx");
        }
    }
}
