//! 2-D convolution (PyTorch's `Conv2d`: cross-correlation, zero padding), forward and backward.
//!
//! Layouts, per sample: input `[C, H, W]`, output `[OC, OH, OW]`, weight `[OC, C, KH, KW]`,
//! bias `[OC]`. The parameters of one layer are contiguous: weight, then bias.
//!
//! Each sample is unfolded into columns (im2col, `cols: [C*KH*KW, OH*OW]`, small enough to stay
//! in cache) and multiplied by the weight matrix `[OC, C*KH*KW]` with a register-blocked kernel
//! that writes straight into the channel-major output, `[OC, batch, OH, OW]`
//! ([`Layout::ChannelMajor`]): the layout every image after the first convolution keeps, so no
//! transposes are needed between layers. The backward pass unfolds each sample again rather than
//! keep a batch of columns in memory.

use crate::layout::Layout;
use crate::shape::conv_out;
use crate::simd::{small_gemm, small_gemm_nt, Mat};

/// The geometry of one convolution layer, all sizes known when the network is declared.
///
/// ```
/// use cnn_runtime::{conv::Conv2d, layout::Layout};
/// // LeNet-5's conv1: 1 -> 6 channels, 5x5 kernel, padding 2, on 28x28.
/// const G: Conv2d = Conv2d::new([1, 28, 28], 6, [5, 5], [1, 1], [2, 2], true);
/// assert_eq!((G.oh, G.ow), (28, 28));
/// assert_eq!(G.param_len(), 6 * 25 + 6);
///
/// let x = vec![1.0; G.in_len()];
/// let mut p = vec![0.0; G.param_len()];
/// p[..25].fill(1.0); // first output channel sums its window
/// let mut y = vec![0.0; G.out_len()];
/// let mut scratch = vec![0.0; G.cols_len()];
/// G.forward(1, &x, Layout::SampleMajor, &p, &mut y, &mut scratch);
/// assert_eq!(y[14 * 28 + 14], 25.0); // a window fully inside the image
/// assert_eq!(y[0], 9.0);             // the corner sees 3x3 of the image
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub oc: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Zero padding, top and bottom.
    pub ph: usize,
    /// Zero padding, left and right.
    pub pw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Conv2d {
    /// The geometry for input `[c, h, w]`, `oc` output channels, kernel `[kh, kw]`, stride
    /// `[sh, sw]` and padding `[ph, pw]`.
    ///
    /// # Panics
    ///
    /// If the kernel does not fit the padded input or a size is zero (the `cnn!` macro rejects
    /// such declarations at compile time).
    pub const fn new(
        input: [usize; 3],
        oc: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        bias: bool,
    ) -> Self {
        let [c, h, w] = input;
        let (Some(oh), Some(ow)) = (
            conv_out(h, kernel[0], stride[0], padding[0]),
            conv_out(w, kernel[1], stride[1], padding[1]),
        ) else {
            panic!("Conv2d: the kernel does not fit the padded input");
        };
        Conv2d {
            c,
            h,
            w,
            oc,
            kh: kernel[0],
            kw: kernel[1],
            sh: stride[0],
            sw: stride[1],
            ph: padding[0],
            pw: padding[1],
            oh,
            ow,
            bias,
        }
    }

    /// Elements of one input sample, `C*H*W`.
    pub const fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one output sample, `OC*OH*OW`.
    pub const fn out_len(&self) -> usize {
        self.oc * self.oh * self.ow
    }

    /// Rows of the unfolded input and columns of the weight matrix, `C*KH*KW`.
    pub const fn patch_len(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Elements of the weight, `OC*C*KH*KW`.
    pub const fn weight_len(&self) -> usize {
        self.oc * self.patch_len()
    }

    /// Elements of weight and bias together.
    pub const fn param_len(&self) -> usize {
        self.weight_len() + if self.bias { self.oc } else { 0 }
    }

    /// Multiply-adds of one sample's forward pass (bias not counted).
    pub const fn macs(&self) -> usize {
        self.out_len() * self.patch_len()
    }

    /// Elements of one unfolded sample, `C*KH*KW*OH*OW`: the scratch
    /// [`forward`](Self::forward) needs.
    pub const fn cols_len(&self) -> usize {
        self.patch_len() * self.oh * self.ow
    }

    /// Scratch [`backward`](Self::backward) needs: two unfolded samples, one sample's output
    /// gradient and a weight gradient.
    pub const fn scratch_len(&self) -> usize {
        2 * self.cols_len() + self.out_len() + self.weight_len()
    }

    /// The output columns `j` whose input column `j*sw + v - pw` lies inside the image, for
    /// kernel column `v`: `lo..hi` (empty when none does).
    #[inline]
    fn valid_cols(&self, v: usize) -> (usize, usize) {
        // j*sw + v >= pw  <=>  j >= ceil((pw - v) / sw)
        let lo = self.pw.saturating_sub(v).div_ceil(self.sw);
        // j*sw + v - pw <= w - 1  <=>  j <= (w - 1 + pw - v) / sw
        let hi = match (self.w + self.pw).checked_sub(v + 1) {
            Some(top) => (top / self.sw + 1).min(self.ow),
            None => 0,
        };
        (lo.min(hi), hi)
    }

    /// Walks the unfolding of one sample: for each channel `ch` and kernel tap `(u, v)`, each
    /// output row `i`, calls `f(ch, at, src)`, where `at` is where the `OW` columns of that row
    /// start in `cols: [C*KH*KW, OH*OW]` and `src`, when the input row `i*sh + u - ph` lies in
    /// the image, is `(r, lo, hi, first)`: input row `r`, the output columns `lo..hi` that fall
    /// inside the image, and the input column of output column `lo`. The one definition of the
    /// layout that [`im2col`](Self::im2col) and its adjoint share.
    #[inline(always)]
    fn walk(&self, mut f: impl FnMut(usize, usize, Option<(usize, usize, usize, usize)>)) {
        let ohw = self.oh * self.ow;
        for ch in 0..self.c {
            for u in 0..self.kh {
                for v in 0..self.kw {
                    let row = ((ch * self.kh + u) * self.kw + v) * ohw;
                    let (lo, hi) = self.valid_cols(v);
                    for i in 0..self.oh {
                        // Input row i*sh + u - ph; outside the image it is padding.
                        let r = (i * self.sh + u).wrapping_sub(self.ph);
                        let src = (r < self.h).then(|| (r, lo, hi, lo * self.sw + v - self.pw));
                        f(ch, row + i * self.ow, src);
                    }
                }
            }
        }
    }

    fn check_unfold(&self, what: &str, x: usize, batch: usize, b: usize, cols: usize) {
        assert_eq!(
            x,
            batch * self.in_len(),
            "conv2d: {what} must hold batch*C*H*W = {batch}*{} elements, got {x}",
            self.in_len()
        );
        assert!(b < batch, "conv2d: sample {b} of a batch of {batch}");
        assert_eq!(
            cols,
            self.cols_len(),
            "conv2d: cols must hold C*KH*KW*OH*OW = {} elements, got {cols}",
            self.cols_len()
        );
    }

    /// Unfolds sample `b` of a batch `x` (in `layout`) into `cols: [C*KH*KW, OH*OW]`; padding
    /// reads as zero.
    ///
    /// # Panics
    ///
    /// If `x` does not hold the batch, `b >= batch`, or `cols` is not `cols_len()` long.
    pub fn im2col(&self, x: &[f32], layout: Layout, batch: usize, b: usize, cols: &mut [f32]) {
        self.check_unfold("input", x.len(), batch, b, cols.len());
        let (hw, w, sw) = (self.h * self.w, self.w, self.sw);
        self.walk(|ch, at, src| {
            let out = &mut cols[at..][..self.ow];
            let Some((r, lo, hi, first)) = src else {
                out.fill(0.0);
                return;
            };
            out[..lo].fill(0.0);
            out[hi..].fill(0.0);
            let src = &x[layout.plane(ch, b, self.c, batch) * hw + r * w..][..w];
            if sw == 1 {
                out[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
            } else {
                out[lo..hi]
                    .iter_mut()
                    .zip(src[first..].iter().step_by(sw))
                    .for_each(|(o, &x)| *o = x);
            }
        });
    }

    /// Folds `cols: [C*KH*KW, OH*OW]` back onto sample `b` of `dx` (in `layout`), adding: the
    /// adjoint of [`im2col`](Self::im2col). Entries that fell on padding are dropped.
    ///
    /// # Panics
    ///
    /// As [`im2col`](Self::im2col).
    pub fn col2im_add(&self, cols: &[f32], layout: Layout, batch: usize, b: usize, dx: &mut [f32]) {
        self.check_unfold("dx", dx.len(), batch, b, cols.len());
        let (hw, w, sw) = (self.h * self.w, self.w, self.sw);
        self.walk(|ch, at, src| {
            let Some((r, lo, hi, first)) = src else { return };
            let src = &cols[at + lo..at + hi];
            let dst = &mut dx[layout.plane(ch, b, self.c, batch) * hw + r * w..][..w];
            if sw == 1 {
                dst[first..first + (hi - lo)]
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, g)| *d += g);
            } else {
                dst[first..].iter_mut().step_by(sw).zip(src).for_each(|(d, g)| *d += g);
            }
        });
    }

    /// `y = conv(x, weight) + bias` for a batch.
    ///
    /// `x`: the batch, `[batch, C, H, W]` or `[C, batch, H, W]` as `layout` says; `params`:
    /// weight then bias; `y`: the output, channel-major `[OC, batch, OH, OW]`; `scratch`: at
    /// least `cols_len()` elements.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length; the message gives the expected and the actual one.
    pub fn forward(&self, batch: usize, x: &[f32], layout: Layout, params: &[f32], y: &mut [f32], scratch: &mut [f32]) {
        assert_eq!(
            params.len(),
            self.param_len(),
            "conv2d: params must hold {} elements, got {}",
            self.param_len(),
            params.len()
        );
        assert_eq!(
            y.len(),
            batch * self.out_len(),
            "conv2d: output must hold batch*OC*OH*OW = {batch}*{} elements, got {}",
            self.out_len(),
            y.len()
        );
        assert!(
            scratch.len() >= self.cols_len(),
            "conv2d: scratch must hold at least {} elements, got {}",
            self.cols_len(),
            scratch.len()
        );
        let (k, ohw) = (self.patch_len(), self.oh * self.ow);
        let (weight, bias) = params.split_at(self.weight_len());
        if self.bias {
            for (row, &b) in y.chunks_exact_mut(batch * ohw).zip(bias) {
                row.fill(b);
            }
        }
        let cols = &mut scratch[..self.cols_len()];
        for b in 0..batch {
            self.im2col(x, layout, batch, b, cols);
            // y[:, b] [OC, OH*OW] (+)= weight [OC, K] x cols [K, OH*OW]; rows batch*OH*OW apart.
            small_gemm(
                self.oc,
                k,
                ohw,
                Mat::rows(weight, k),
                Mat::rows(cols, ohw),
                &mut y[b * ohw..],
                batch * ohw,
                self.bias,
            );
        }
    }

    /// Gradients of a batch: overwrites `dparams` (weight then bias, as `params`) with
    /// d loss / d params and, when `dx` is given, overwrites it with d loss / d x (in `layout`,
    /// the layout of `x`).
    ///
    /// `dy` is d loss / d y, channel-major `[OC, batch, OH, OW]`; `scratch` at least
    /// [`scratch_len`](Self::scratch_len) elements.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length; the message gives the expected and the actual one.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        dy: &[f32],
        dparams: &mut [f32],
        mut dx: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) {
        let (k, ohw) = (self.patch_len(), self.oh * self.ow);
        assert_eq!(
            params.len(),
            self.param_len(),
            "conv2d: params must hold {} elements, got {}",
            self.param_len(),
            params.len()
        );
        assert_eq!(
            dy.len(),
            batch * self.out_len(),
            "conv2d: dy must hold batch*OC*OH*OW = {batch}*{} elements, got {}",
            self.out_len(),
            dy.len()
        );
        assert_eq!(
            dparams.len(),
            self.param_len(),
            "conv2d: dparams must hold {} elements, got {}",
            self.param_len(),
            dparams.len()
        );
        assert!(
            scratch.len() >= self.scratch_len(),
            "conv2d: scratch must hold at least {} elements, got {}",
            self.scratch_len(),
            scratch.len()
        );
        let weight = &params[..self.weight_len()];
        let (dweight, dbias) = dparams.split_at_mut(self.weight_len());
        dweight.fill(0.0);
        for (db, row) in dbias.iter_mut().zip(dy.chunks_exact(batch * ohw)) {
            *db = row.iter().sum::<f32>();
        }
        if let Some(dx) = dx.as_deref_mut() {
            assert_eq!(
                dx.len(),
                x.len(),
                "conv2d: dx must hold {} elements, got {}",
                x.len(),
                dx.len()
            );
            dx.fill(0.0);
        }
        let (cols, rest) = scratch.split_at_mut(self.cols_len());
        let (dcols, rest) = rest.split_at_mut(self.cols_len());
        let (dyt, rest) = rest.split_at_mut(self.out_len());
        let dwt = &mut rest[..self.weight_len()];
        dwt.fill(0.0);
        for b in 0..batch {
            // This sample's output gradient: OC rows of OH*OW, batch*OH*OW apart.
            let dyb = Mat::rows(&dy[b * ohw..], batch * ohw);
            self.im2col(x, layout, batch, b, cols);
            if self.oc < WIDE_OC {
                // dweight [OC, K] += dy_b [OC, OH*OW] x cols^T [OH*OW, K]: with few output
                // channels, dot products along the long axis, OH*OW, fill the kernel best.
                small_gemm_nt(self.oc, k, ohw, dyb, Mat::rows(cols, ohw), dweight, k, true);
            } else {
                // dweight^T [K, OC] += cols [K, OH*OW] x dy_b^T [OH*OW, OC]: the register-blocked
                // kernel runs along K, with the output channels as its columns.
                for o in 0..self.oc {
                    for (q, &g) in dy[(o * batch + b) * ohw..][..ohw].iter().enumerate() {
                        dyt[q * self.oc + o] = g;
                    }
                }
                small_gemm(
                    k,
                    ohw,
                    self.oc,
                    Mat::rows(cols, ohw),
                    Mat::rows(dyt, self.oc),
                    dwt,
                    self.oc,
                    true,
                );
            }
            if let Some(dx) = dx.as_deref_mut() {
                // dcols [K, OH*OW] = weight^T [K, OC] x dy_b [OC, OH*OW]
                small_gemm(k, self.oc, ohw, Mat::transposed(weight, k), dyb, dcols, ohw, false);
                self.col2im_add(dcols, layout, batch, b, dx);
            }
        }
        if self.oc >= WIDE_OC {
            for (kk, row) in dwt.chunks_exact(self.oc).enumerate() {
                for (o, &g) in row.iter().enumerate() {
                    dweight[o * k + kk] = g;
                }
            }
        }
    }
}

/// From this many output channels on, the weight gradient is computed transposed, with the
/// channels as the columns of the register-blocked kernel (16 wide).
const WIDE_OC: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_grad_matches, seq};

    /// Direct definition: y[o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] * xpad[c, i*sh+u, j*sw+v].
    fn naive(g: &Conv2d, x: &[f32], p: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; g.out_len()];
        for o in 0..g.oc {
            for i in 0..g.oh {
                for j in 0..g.ow {
                    let mut s = if g.bias { p[g.weight_len() + o] } else { 0.0 };
                    for c in 0..g.c {
                        for u in 0..g.kh {
                            for v in 0..g.kw {
                                let r = (i * g.sh + u) as isize - g.ph as isize;
                                let q = (j * g.sw + v) as isize - g.pw as isize;
                                if r >= 0 && q >= 0 && (r as usize) < g.h && (q as usize) < g.w {
                                    s += p[((o * g.c + c) * g.kh + u) * g.kw + v]
                                        * x[(c * g.h + r as usize) * g.w + q as usize];
                                }
                            }
                        }
                    }
                    y[(o * g.oh + i) * g.ow + j] = s;
                }
            }
        }
        y
    }

    // Narrow (few output channels) and wide (>= WIDE_OC) weight-gradient paths both appear.
    const CASES: [Conv2d; 5] = [
        Conv2d::new([2, 6, 5], 17, [3, 2], [1, 1], [1, 0], true),
        Conv2d::new([1, 5, 5], 2, [3, 3], [1, 1], [0, 0], true),
        Conv2d::new([3, 7, 6], 4, [3, 5], [2, 2], [1, 1], true),
        Conv2d::new([2, 4, 5], 3, [2, 3], [1, 2], [2, 0], false),
        Conv2d::new([1, 1, 1], 1, [1, 1], [1, 1], [0, 0], true),
    ];

    #[test]
    fn forward_matches_definition() {
        for g in CASES {
            let batch = 3;
            let x = seq(batch * g.in_len(), 0.3);
            let p = seq(g.param_len(), 0.7);
            let mut y = vec![f32::NAN; batch * g.out_len()];
            let mut cols = vec![0.0; g.cols_len()];
            g.forward(batch, &x, Layout::SampleMajor, &p, &mut y, &mut cols);
            // The output is channel-major: [OC, batch, OH*OW].
            let ohw = g.oh * g.ow;
            for b in 0..batch {
                let want = naive(&g, &x[b * g.in_len()..][..g.in_len()], &p);
                for o in 0..g.oc {
                    for q in 0..ohw {
                        let (a, w) = (y[(o * batch + b) * ohw + q], want[o * ohw + q]);
                        assert!((a - w).abs() < 1e-5, "{g:?}: {a} vs {w}");
                    }
                }
            }
            // The same batch given channel-major gives the same output.
            let mut xc = vec![0.0; x.len()];
            crate::layout::to_channel_major(g.c, batch, g.h * g.w, &x, &mut xc);
            let mut yc = vec![f32::NAN; y.len()];
            g.forward(batch, &xc, Layout::ChannelMajor, &p, &mut yc, &mut cols);
            assert_eq!(y, yc);
        }
    }

    #[test]
    fn backward_matches_central_differences() {
        for g in CASES {
            let batch = 2;
            let x = seq(batch * g.in_len(), 0.3);
            let p = seq(g.param_len(), 0.7);
            // Loss = sum(y * r) for a fixed r, so dy = r.
            let r = seq(batch * g.out_len(), 1.3);
            let loss = |x: &[f32], p: &[f32]| {
                let mut y = vec![0.0; batch * g.out_len()];
                g.forward(batch, x, Layout::SampleMajor, p, &mut y, &mut vec![0.0; g.cols_len()]);
                y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
            };
            let mut dp = vec![f32::NAN; g.param_len()];
            let mut dx = vec![f32::NAN; x.len()];
            let mut scratch = vec![0.0; g.scratch_len()];
            g.backward(
                batch,
                &x,
                Layout::SampleMajor,
                &p,
                &r,
                &mut dp,
                Some(&mut dx),
                &mut scratch,
            );
            assert_grad_matches("conv dparams", &p, &dp, |p| loss(&x, p));
            assert_grad_matches("conv dx", &x, &dx, |x| loss(x, &p));
        }
    }

    #[test]
    #[should_panic(expected = "conv2d: input must hold batch*C*H*W = 2*25 elements, got 49")]
    fn wrong_input_length_panics() {
        let g = CASES[1];
        g.forward(
            2,
            &[0.0; 49],
            Layout::SampleMajor,
            &vec![0.0; g.param_len()],
            &mut vec![0.0; 2 * g.out_len()],
            &mut vec![0.0; g.cols_len()],
        );
    }
}
