//! 2-D convolution (PyTorch's `Conv2d`: cross-correlation, zero padding), forward and backward.
//!
//! Layouts, per sample: input `[C, H, W]`, output `[OC, OH, OW]`, weight `[OC, C, KH, KW]`,
//! bias `[OC]`. The parameters of one layer are contiguous: weight, then bias.
//!
//! Each sample is unfolded into columns (im2col, `cols: [C*KH*KW, OH*OW]`) and multiplied by the
//! weight matrix `[OC, C*KH*KW]` with sgemm.

use crate::gemm::{sgemm, Op};
use crate::shape::conv_out;
use crate::simd::small_gemm;

/// The geometry of one convolution layer, all sizes known when the network is declared.
///
/// ```
/// use cnn_runtime::conv::Conv2d;
/// // LeNet-5's conv1: 1 -> 6 channels, 5x5 kernel, padding 2, on 28x28.
/// const G: Conv2d = Conv2d::new([1, 28, 28], 6, [5, 5], [1, 1], [2, 2], true);
/// assert_eq!((G.oh, G.ow), (28, 28));
/// assert_eq!(G.param_len(), 6 * 25 + 6);
///
/// let x = vec![1.0; G.in_len()];
/// let mut p = vec![0.0; G.param_len()];
/// p[..25].fill(1.0); // first output channel sums its window
/// let mut y = vec![0.0; G.out_len()];
/// let mut scratch = vec![0.0; G.scratch_len()];
/// G.forward(1, &x, &p, &mut y, &mut scratch);
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

    /// Scratch that [`forward`](Self::forward) and [`backward`](Self::backward) need:
    /// two unfolded samples.
    pub const fn scratch_len(&self) -> usize {
        2 * self.patch_len() * self.oh * self.ow
    }

    /// Unfolds one sample `x: [C, H, W]` into `cols: [C*KH*KW, OH*OW]`; padding reads as zero.
    pub fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        let (ohw, ow) = (self.oh * self.ow, self.ow);
        debug_assert_eq!(x.len(), self.in_len());
        debug_assert_eq!(cols.len(), self.patch_len() * ohw);
        for ch in 0..self.c {
            let plane = &x[ch * self.h * self.w..][..self.h * self.w];
            for u in 0..self.kh {
                for v in 0..self.kw {
                    let row = &mut cols[((ch * self.kh + u) * self.kw + v) * ohw..][..ohw];
                    for i in 0..self.oh {
                        let out = &mut row[i * ow..][..ow];
                        // Input row i*sh + u - ph; outside the image it is padding.
                        let r = (i * self.sh + u).wrapping_sub(self.ph);
                        if r >= self.h {
                            out.fill(0.0);
                            continue;
                        }
                        let src = &plane[r * self.w..][..self.w];
                        for (j, o) in out.iter_mut().enumerate() {
                            let col = (j * self.sw + v).wrapping_sub(self.pw);
                            *o = if col < self.w { src[col] } else { 0.0 };
                        }
                    }
                }
            }
        }
    }

    /// Folds `cols: [C*KH*KW, OH*OW]` back onto one sample, adding into `dx: [C, H, W]`
    /// (the adjoint of [`im2col`](Self::im2col)); entries that fell on padding are dropped.
    pub fn col2im_add(&self, cols: &[f32], dx: &mut [f32]) {
        let (ohw, ow) = (self.oh * self.ow, self.ow);
        debug_assert_eq!(dx.len(), self.in_len());
        debug_assert_eq!(cols.len(), self.patch_len() * ohw);
        for ch in 0..self.c {
            let plane = &mut dx[ch * self.h * self.w..][..self.h * self.w];
            for u in 0..self.kh {
                for v in 0..self.kw {
                    let row = &cols[((ch * self.kh + u) * self.kw + v) * ohw..][..ohw];
                    for i in 0..self.oh {
                        let r = (i * self.sh + u).wrapping_sub(self.ph);
                        if r >= self.h {
                            continue;
                        }
                        let dst = &mut plane[r * self.w..][..self.w];
                        for (j, &g) in row[i * ow..][..ow].iter().enumerate() {
                            let col = (j * self.sw + v).wrapping_sub(self.pw);
                            if col < self.w {
                                dst[col] += g;
                            }
                        }
                    }
                }
            }
        }
    }

    /// `y = conv(x, weight) + bias` for a batch.
    ///
    /// `x: [batch, C, H, W]`, `params`: weight then bias, `y: [batch, OC, OH, OW]`,
    /// `scratch` at least [`scratch_len`](Self::scratch_len) long.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length; the message gives the expected and the actual one.
    pub fn forward(&self, batch: usize, x: &[f32], params: &[f32], y: &mut [f32], scratch: &mut [f32]) {
        self.check(batch, x.len(), params.len(), y.len(), scratch.len());
        let (k, ohw) = (self.patch_len(), self.oh * self.ow);
        let (weight, bias) = params.split_at(self.weight_len());
        let cols = &mut scratch[..k * ohw];
        for (xb, yb) in x.chunks_exact(self.in_len()).zip(y.chunks_exact_mut(self.out_len())) {
            self.im2col(xb, cols);
            let beta = if self.bias {
                for (row, &b) in yb.chunks_exact_mut(ohw).zip(bias) {
                    row.fill(b);
                }
                1.0
            } else {
                0.0
            };
            // y_b [OC, OH*OW] = weight [OC, K] x cols [K, OH*OW] (+ bias already in y_b)
            small_gemm(self.oc, k, ohw, weight, cols, yb, beta != 0.0);
        }
    }

    /// Gradients of a batch: overwrites `dparams` (weight then bias, as `params`) with
    /// d loss / d params and, when `dx` is given, overwrites it with d loss / d x.
    ///
    /// `dy` is d loss / d y, `[batch, OC, OH, OW]`.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length; the message gives the expected and the actual one.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        batch: usize,
        x: &[f32],
        params: &[f32],
        dy: &[f32],
        dparams: &mut [f32],
        mut dx: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) {
        self.check(batch, x.len(), params.len(), dy.len(), scratch.len());
        assert_eq!(
            dparams.len(),
            self.param_len(),
            "conv2d: dparams must hold {} elements, got {}",
            self.param_len(),
            dparams.len()
        );
        let (k, ohw) = (self.patch_len(), self.oh * self.ow);
        let weight = &params[..self.weight_len()];
        let (dweight, dbias) = dparams.split_at_mut(self.weight_len());
        dweight.fill(0.0);
        dbias.fill(0.0);
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
        let (cols, rest) = scratch.split_at_mut(k * ohw);
        let dcols = &mut rest[..k * ohw];
        for (b, (xb, dyb)) in x
            .chunks_exact(self.in_len())
            .zip(dy.chunks_exact(self.out_len()))
            .enumerate()
        {
            self.im2col(xb, cols);
            // dweight [OC, K] += dy_b [OC, OH*OW] x cols^T [OH*OW, K]
            sgemm(self.oc, ohw, k, 1.0, dyb, Op::N, cols, Op::T, 1.0, dweight);
            for (db, row) in dbias.iter_mut().zip(dyb.chunks_exact(ohw)) {
                *db += row.iter().sum::<f32>();
            }
            if let Some(dx) = dx.as_deref_mut() {
                // dcols [K, OH*OW] = weight^T [K, OC] x dy_b [OC, OH*OW]
                sgemm(k, self.oc, ohw, 1.0, weight, Op::T, dyb, Op::N, 0.0, dcols);
                self.col2im_add(dcols, &mut dx[b * self.in_len()..][..self.in_len()]);
            }
        }
    }

    fn check(&self, batch: usize, x: usize, params: usize, y: usize, scratch: usize) {
        assert_eq!(
            x,
            batch * self.in_len(),
            "conv2d: input must hold batch*C*H*W = {batch}*{} elements, got {x}",
            self.in_len()
        );
        assert_eq!(
            params,
            self.param_len(),
            "conv2d: params must hold {} elements, got {params}",
            self.param_len()
        );
        assert_eq!(
            y,
            batch * self.out_len(),
            "conv2d: output must hold batch*OC*OH*OW = {batch}*{} elements, got {y}",
            self.out_len()
        );
        assert!(
            scratch >= self.scratch_len(),
            "conv2d: scratch must hold at least {} elements, got {scratch}",
            self.scratch_len()
        );
    }
}

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

    const CASES: [Conv2d; 4] = [
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
            let mut s = vec![0.0; g.scratch_len()];
            g.forward(batch, &x, &p, &mut y, &mut s);
            for b in 0..batch {
                let want = naive(&g, &x[b * g.in_len()..][..g.in_len()], &p);
                for (a, w) in y[b * g.out_len()..][..g.out_len()].iter().zip(&want) {
                    assert!((a - w).abs() < 1e-5, "{g:?}: {a} vs {w}");
                }
            }
        }
    }

    #[test]
    fn backward_matches_central_differences() {
        for g in CASES {
            let batch = 2;
            let x = seq(batch * g.in_len(), 0.3);
            let p = seq(g.param_len(), 0.7);
            let mut s = vec![0.0; g.scratch_len()];
            // Loss = sum(y * r) for a fixed r, so dy = r.
            let r = seq(batch * g.out_len(), 1.3);
            let loss = |x: &[f32], p: &[f32]| {
                let mut y = vec![0.0; batch * g.out_len()];
                g.forward(batch, x, p, &mut y, &mut vec![0.0; g.scratch_len()]);
                y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
            };
            let mut dp = vec![f32::NAN; g.param_len()];
            let mut dx = vec![f32::NAN; x.len()];
            g.backward(batch, &x, &p, &r, &mut dp, Some(&mut dx), &mut s);
            assert_grad_matches("conv dparams", &p, &dp, |p| loss(&x, p));
            assert_grad_matches("conv dx", &x, &dx, |x| loss(x, &p));
        }
    }

    #[test]
    #[should_panic(expected = "conv2d: input must hold batch*C*H*W = 2*25 elements, got 49")]
    fn wrong_input_length_panics() {
        let g = CASES[0];
        g.forward(
            2,
            &[0.0; 49],
            &vec![0.0; g.param_len()],
            &mut vec![0.0; 2 * g.out_len()],
            &mut vec![0.0; g.scratch_len()],
        );
    }
}
