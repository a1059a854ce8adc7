//! Max and average pooling (PyTorch's `MaxPool2d`/`AvgPool2d`: floor mode, optional padding),
//! forward and backward.
//!
//! Layouts, per sample: input `[C, H, W]`, output `[C, OH, OW]`. Windows may overlap
//! (stride < kernel); an input then receives gradient from every window it belongs to.
//!
//! Padding is PyTorch's: `ph` rows above and below, `pw` columns left and right, at most half
//! the window, so every window holds an element of the input. Max pooling pads with -inf
//! (padding never wins); average pooling pads with zeros and counts them in its divisor
//! (`count_include_pad = True`: every window divides by `KH*KW`). A global average pool is
//! the window `[H, W]` at stride `[H, W]`.

use crate::shape::pool_out;

/// Which reduction a pooling layer applies over its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The window's maximum; the gradient goes to the first maximum (row-major order) among
    /// the window's input elements (padding never wins).
    Max,
    /// The window's mean, always divided by `KH*KW` (padding counts as zeros).
    Avg,
}

/// The geometry of one pooling layer.
///
/// ```
/// use cnn_runtime::pool::{Pool2d, PoolKind};
/// const P: Pool2d = Pool2d::new(PoolKind::Max, [1, 2, 4], [2, 2], [2, 2], [0, 0]);
/// let x = [1.0, 5.0, 2.0, 0.0,
///          3.0, 4.0, 7.0, 6.0];
/// let mut y = [0.0; 2];
/// P.forward(1, &x, &mut y);
/// assert_eq!(y, [5.0, 7.0]);
///
/// // AvgPool2d(3, stride 2, padding 1) on 3x3: the corner window sees 2x2 of the input but
/// // divides by 9.
/// const A: Pool2d = Pool2d::new(PoolKind::Avg, [1, 3, 3], [3, 3], [2, 2], [1, 1]);
/// assert_eq!((A.oh, A.ow), (2, 2));
/// let mut y = [0.0; 4];
/// A.forward(1, &[9.0; 9], &mut y);
/// assert_eq!(y, [4.0; 4]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Max or average.
    pub kind: PoolKind,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Padding, top and bottom.
    pub ph: usize,
    /// Padding, left and right.
    pub pw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl Pool2d {
    /// The geometry for input `[c, h, w]`, window `[kh, kw]`, stride `[sh, sw]` and padding
    /// `[ph, pw]`: output `(H + 2PH - KH) / SH + 1` by `(W + 2PW - KW) / SW + 1`.
    ///
    /// # Panics
    ///
    /// If the window does not fit the padded input, a size is zero, or the padding is more
    /// than half the window (the `cnn!` macro rejects such declarations at compile time).
    ///
    /// ```
    /// use cnn_runtime::pool::{Pool2d, PoolKind};
    /// // MaxPool2d(3, stride 2, padding 1) on 7x9.
    /// const P: Pool2d = Pool2d::new(PoolKind::Max, [4, 7, 9], [3, 3], [2, 2], [1, 1]);
    /// assert_eq!((P.oh, P.ow), (4, 5));
    /// // A global average pool.
    /// const G: Pool2d = Pool2d::new(PoolKind::Avg, [4, 7, 9], [7, 9], [7, 9], [0, 0]);
    /// assert_eq!(G.out_len(), 4);
    /// ```
    pub const fn new(
        kind: PoolKind,
        input: [usize; 3],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Self {
        let [c, h, w] = input;
        assert!(
            padding[0] <= kernel[0] / 2 && padding[1] <= kernel[1] / 2,
            "Pool2d: the padding must be at most half the window"
        );
        let (Some(oh), Some(ow)) = (
            pool_out(h, kernel[0], stride[0], padding[0]),
            pool_out(w, kernel[1], stride[1], padding[1]),
        ) else {
            panic!("Pool2d: the window does not fit the padded input");
        };
        Pool2d {
            kind,
            c,
            h,
            w,
            kh: kernel[0],
            kw: kernel[1],
            sh: stride[0],
            sw: stride[1],
            ph: padding[0],
            pw: padding[1],
            oh,
            ow,
        }
    }

    /// Elements of one input sample, `C*H*W`.
    ///
    /// ```
    /// use cnn_runtime::pool::{Pool2d, PoolKind};
    /// assert_eq!(Pool2d::new(PoolKind::Max, [3, 7, 9], [3, 3], [2, 2], [1, 1]).in_len(), 3 * 7 * 9);
    /// ```
    pub const fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one output sample, `C*OH*OW`.
    ///
    /// ```
    /// use cnn_runtime::pool::{Pool2d, PoolKind};
    /// assert_eq!(Pool2d::new(PoolKind::Max, [3, 7, 9], [3, 3], [2, 2], [1, 1]).out_len(), 3 * 4 * 5);
    /// ```
    pub const fn out_len(&self) -> usize {
        self.c * self.oh * self.ow
    }

    /// Pools a batch: `x`, `batch * C` planes of `H x W` in either layout (sample-major
    /// `[batch, C, H, W]` or channel-major `[C, batch, H, W]`: each plane is pooled on its
    /// own), into `y`, the same planes of `OH x OW` in the same order.
    ///
    /// # Panics
    ///
    /// If `x.len()` is not a multiple of `C*H*W` or `y` does not match it; the message gives
    /// the expected and the actual length.
    ///
    /// ```
    /// use cnn_runtime::pool::{Pool2d, PoolKind};
    /// // MaxPool2d(3, stride 2, padding 1) on 3x3: the padding (-inf) never wins.
    /// const P: Pool2d = Pool2d::new(PoolKind::Max, [1, 3, 3], [3, 3], [2, 2], [1, 1]);
    /// let x = [-1.0, -2.0, -3.0,
    ///          -4.0, -5.0, -6.0,
    ///          -7.0, -8.0, -9.0];
    /// let mut y = [0.0; 4];
    /// P.forward(1, &x, &mut y);
    /// assert_eq!(y, [-1.0, -2.0, -4.0, -5.0]);
    /// ```
    pub fn forward(&self, batch: usize, x: &[f32], y: &mut [f32]) {
        self.check(batch, x.len(), y.len(), "output");
        let (h, w, oh, ow) = (self.h, self.w, self.oh, self.ow);
        let inv_area = 1.0 / (self.kh * self.kw) as f32;
        if self.is_2x2() {
            // The common case, 2x2 windows at stride 2: two input rows per output row.
            for (xp, yp) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
                for (i, yrow) in yp.chunks_exact_mut(ow).enumerate() {
                    let (r0, r1) = (&xp[2 * i * w..][..2 * ow], &xp[(2 * i + 1) * w..][..2 * ow]);
                    for ((out, a), b) in yrow.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                        *out = match self.kind {
                            PoolKind::Max => max(max(a[0], a[1]), max(b[0], b[1])),
                            PoolKind::Avg => ((a[0] + a[1]) + (b[0] + b[1])) * inv_area,
                        };
                    }
                }
            }
            return;
        }
        if self.kind == PoolKind::Avg && (self.kh, self.kw, self.ph, self.pw) == (h, w, 0, 0) {
            // A global average pool (a ResNet's last): each plane's sum in partial sums, where
            // one running sum a plane was a chain of dependent additions (1.4% of ResNet-8's
            // batch-1 inference).
            for (xp, out) in x.chunks_exact(h * w).zip(y.iter_mut()) {
                *out = crate::simd::sum(xp) * inv_area;
            }
            return;
        }
        for (xp, yp) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
            for i in 0..oh {
                let yrow = &mut yp[i * ow..][..ow];
                // The window's first input row initializes the reduction, the others fold into
                // it; padding rows and columns are skipped (-inf never wins a max, zeros add
                // nothing to a sum).
                for (u, r) in self.rows(i).enumerate() {
                    let xrow = &xp[r * w..][..w];
                    for (j, out) in yrow.iter_mut().enumerate() {
                        let win = &xrow[self.cols(j)];
                        let (mut acc, rest) = if u == 0 { (win[0], &win[1..]) } else { (*out, win) };
                        match self.kind {
                            PoolKind::Max => rest.iter().for_each(|&v| acc = if v > acc { v } else { acc }),
                            PoolKind::Avg => rest.iter().for_each(|&v| acc += v),
                        }
                        *out = acc;
                    }
                }
                if self.kind == PoolKind::Avg {
                    yrow.iter_mut().for_each(|v| *v *= inv_area);
                }
            }
        }
    }

    /// Overwrites `dx` with d loss / d x given `dy` = d loss / d y, for a batch.
    ///
    /// # Panics
    ///
    /// On a length mismatch, as [`forward`](Self::forward); `dx` must match `x`.
    ///
    /// ```
    /// use cnn_runtime::pool::{Pool2d, PoolKind};
    /// // A global average pool: each input gets dy / (H*W).
    /// const G: Pool2d = Pool2d::new(PoolKind::Avg, [1, 2, 4], [2, 4], [2, 4], [0, 0]);
    /// let mut dx = [0.0; 8];
    /// G.backward(1, &[0.0; 8], &[2.0], &mut dx);
    /// assert_eq!(dx, [0.25; 8]);
    /// ```
    pub fn backward(&self, batch: usize, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        self.check(batch, x.len(), dy.len(), "dy");
        assert_eq!(
            dx.len(),
            x.len(),
            "pool: dx must hold {} elements, got {}",
            x.len(),
            dx.len()
        );
        crate::simd::zero(dx);
        let (h, w, oh, ow) = (self.h, self.w, self.oh, self.ow);
        let inv_area = 1.0 / (self.kh * self.kw) as f32;
        let planes = x
            .chunks_exact(h * w)
            .zip(dx.chunks_exact_mut(h * w))
            .zip(dy.chunks_exact(oh * ow));
        if self.is_2x2() && self.kind == PoolKind::Max {
            // Windows do not overlap: each of the four inputs gets the gradient or zero.
            for ((xp, dxp), dyp) in planes {
                for (i, grow) in dyp.chunks_exact(ow).enumerate() {
                    let (x0, x1) = (&xp[2 * i * w..][..2 * ow], &xp[(2 * i + 1) * w..][..2 * ow]);
                    let (top, bottom) = dxp[2 * i * w..].split_at_mut(w);
                    let (d0, d1) = (&mut top[..2 * ow], &mut bottom[..2 * ow]);
                    #[cfg(target_arch = "x86_64")]
                    let done = max2x2_backward_sse2(grow, x0, x1, d0, d1);
                    #[cfg(not(target_arch = "x86_64"))]
                    let done = 0;
                    let rows = x0[2 * done..].chunks_exact(2).zip(x1[2 * done..].chunks_exact(2));
                    let outs = d0[2 * done..]
                        .chunks_exact_mut(2)
                        .zip(d1[2 * done..].chunks_exact_mut(2));
                    for ((&g, (a, b)), (da, db)) in grow[done..].iter().zip(rows).zip(outs) {
                        // The first maximum in row-major order, as PyTorch picks it.
                        let mut best = 0;
                        let mut top = a[0];
                        for (at, v) in [(1, a[1]), (2, b[0]), (3, b[1])] {
                            if v > top {
                                (best, top) = (at, v);
                            }
                        }
                        let pick = |at: usize| if best == at { g } else { 0.0 };
                        (da[0], da[1], db[0], db[1]) = (pick(0), pick(1), pick(2), pick(3));
                    }
                }
            }
            return;
        }
        for ((xp, dxp), dyp) in planes {
            for i in 0..oh {
                let rows = self.rows(i);
                for j in 0..ow {
                    let g = dyp[i * ow + j];
                    let cols = self.cols(j);
                    match self.kind {
                        PoolKind::Max => {
                            // First maximum in row-major order among the window's inputs, as
                            // PyTorch picks it.
                            let mut best = rows.start * w + cols.start;
                            for r in rows.clone() {
                                for at in r * w + cols.start..r * w + cols.end {
                                    if xp[at] > xp[best] {
                                        best = at;
                                    }
                                }
                            }
                            dxp[best] += g;
                        }
                        PoolKind::Avg => {
                            for r in rows.clone() {
                                dxp[r * w..][cols.clone()].iter_mut().for_each(|d| *d += g * inv_area);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The input rows of output row `i`'s windows: the window's rows minus the padding.
    /// Never empty, as the padding is at most half the window.
    #[inline]
    fn rows(&self, i: usize) -> core::ops::Range<usize> {
        let top = i * self.sh;
        top.saturating_sub(self.ph)..(top + self.kh - self.ph).min(self.h)
    }

    /// The input columns of output column `j`'s windows, as [`rows`](Self::rows).
    #[inline]
    fn cols(&self, j: usize) -> core::ops::Range<usize> {
        let left = j * self.sw;
        left.saturating_sub(self.pw)..(left + self.kw - self.pw).min(self.w)
    }

    /// 2x2 windows at stride 2 without padding: the fast paths.
    fn is_2x2(&self) -> bool {
        (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (2, 2, 2, 2, 0, 0)
    }

    fn check(&self, batch: usize, x: usize, y: usize, what: &str) {
        assert_eq!(
            x,
            batch * self.in_len(),
            "pool: input must hold batch*C*H*W = {batch}*{} elements, got {x}",
            self.in_len()
        );
        assert_eq!(
            y,
            batch * self.out_len(),
            "pool: {what} must hold batch*C*OH*OW = {batch}*{} elements, got {y}",
            self.out_len()
        );
    }
}

/// The 2x2 max-pool backward pass over one row of output gradients `g`, four outputs at a
/// time: `x0`, `x1` are the two input rows, `d0`, `d1` their gradients, all `2 * g.len()` long
/// or more. Returns how many outputs it did (a multiple of 4); the caller does the rest.
///
/// Branch-free: on random data the comparisons that pick a window's first maximum mispredict,
/// and a scalar loop spent more time in the 2x2 backward pass than in the convolution's.
#[cfg(target_arch = "x86_64")]
fn max2x2_backward_sse2(g: &[f32], x0: &[f32], x1: &[f32], d0: &mut [f32], d1: &mut [f32]) -> usize {
    use core::arch::x86_64::*;
    let n = g.len() / 4 * 4;
    assert!(x0.len() >= 2 * n && x1.len() >= 2 * n && d0.len() >= 2 * n && d1.len() >= 2 * n);
    for j in (0..n).step_by(4) {
        // SAFETY: SSE2 is part of x86_64; the loads and stores cover elements 2j..2j+8 of the
        // rows and j..j+4 of g, inside the lengths asserted above.
        unsafe {
            let (r0, r0b) = (
                _mm_loadu_ps(x0.as_ptr().add(2 * j)),
                _mm_loadu_ps(x0.as_ptr().add(2 * j + 4)),
            );
            let (r1, r1b) = (
                _mm_loadu_ps(x1.as_ptr().add(2 * j)),
                _mm_loadu_ps(x1.as_ptr().add(2 * j + 4)),
            );
            // Each window's four inputs, one window per lane: a b (top row), c d (bottom row).
            let (a, b) = (
                _mm_shuffle_ps(r0, r0b, 0b10_00_10_00),
                _mm_shuffle_ps(r0, r0b, 0b11_01_11_01),
            );
            let (c, d) = (
                _mm_shuffle_ps(r1, r1b, 0b10_00_10_00),
                _mm_shuffle_ps(r1, r1b, 0b11_01_11_01),
            );
            let top = _mm_max_ps(_mm_max_ps(a, b), _mm_max_ps(c, d));
            let fa = _mm_cmpeq_ps(a, top);
            let fb = _mm_andnot_ps(fa, _mm_cmpeq_ps(b, top));
            let seen = _mm_or_ps(fa, fb);
            let fc = _mm_andnot_ps(seen, _mm_cmpeq_ps(c, top));
            let fd = _mm_andnot_ps(_mm_or_ps(seen, fc), _mm_castsi128_ps(_mm_set1_epi32(-1)));
            let gv = _mm_loadu_ps(g.as_ptr().add(j));
            let (ga, gb) = (_mm_and_ps(fa, gv), _mm_and_ps(fb, gv));
            let (gc, gd) = (_mm_and_ps(fc, gv), _mm_and_ps(fd, gv));
            _mm_storeu_ps(d0.as_mut_ptr().add(2 * j), _mm_unpacklo_ps(ga, gb));
            _mm_storeu_ps(d0.as_mut_ptr().add(2 * j + 4), _mm_unpackhi_ps(ga, gb));
            _mm_storeu_ps(d1.as_mut_ptr().add(2 * j), _mm_unpacklo_ps(gc, gd));
            _mm_storeu_ps(d1.as_mut_ptr().add(2 * j + 4), _mm_unpackhi_ps(gc, gd));
        }
    }
    n
}

/// The larger of two values; the first when they tie (and when `b` is NaN).
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_grad_matches, seq};

    fn cases(kind: PoolKind) -> [Pool2d; 12] {
        [
            Pool2d::new(kind, [2, 4, 4], [2, 2], [2, 2], [0, 0]),
            // Rows of 9 windows: two runs of four and one left over.
            Pool2d::new(kind, [2, 6, 19], [2, 2], [2, 2], [0, 0]),
            Pool2d::new(kind, [3, 7, 5], [2, 2], [2, 2], [0, 0]),
            Pool2d::new(kind, [3, 9, 6], [2, 2], [1, 1], [0, 0]),
            Pool2d::new(kind, [1, 7, 5], [3, 2], [2, 3], [0, 0]),
            Pool2d::new(kind, [1, 1, 1], [1, 1], [1, 1], [0, 0]),
            // Padded: PyTorch's MaxPool2d(3, 2, 1)/AvgPool2d(3, 2, 1) on odd and even sizes.
            Pool2d::new(kind, [2, 7, 9], [3, 3], [2, 2], [1, 1]),
            Pool2d::new(kind, [1, 12, 12], [3, 3], [2, 2], [1, 1]),
            // A 2x2 window at stride 2 with padding (not the fast path), padding on one axis,
            // overlapping windows, and windows wider than the input.
            Pool2d::new(kind, [2, 5, 6], [2, 2], [2, 2], [1, 1]),
            Pool2d::new(kind, [1, 6, 7], [3, 4], [1, 3], [0, 2]),
            Pool2d::new(kind, [1, 5, 5], [5, 3], [1, 1], [2, 1]),
            Pool2d::new(kind, [1, 2, 3], [4, 5], [2, 1], [2, 2]),
        ]
    }

    /// Pooling by the definition: each plane padded explicitly (with -inf for max, zeros for
    /// average), then unpadded windows over it.
    fn naive_forward(g: &Pool2d, batch: usize, x: &[f32]) -> Vec<f32> {
        let (hp, wp) = (g.h + 2 * g.ph, g.w + 2 * g.pw);
        let pad = match g.kind {
            PoolKind::Max => f32::NEG_INFINITY,
            PoolKind::Avg => 0.0,
        };
        let mut y = Vec::new();
        for xp in x.chunks_exact(g.h * g.w).take(batch * g.c) {
            let mut padded = vec![pad; hp * wp];
            for r in 0..g.h {
                padded[(r + g.ph) * wp + g.pw..][..g.w].copy_from_slice(&xp[r * g.w..][..g.w]);
            }
            for i in 0..g.oh {
                for j in 0..g.ow {
                    let vals: Vec<f32> = (0..g.kh)
                        .flat_map(|u| (0..g.kw).map(move |v| (u, v)))
                        .map(|(u, v)| padded[(i * g.sh + u) * wp + j * g.sw + v])
                        .collect();
                    y.push(match g.kind {
                        PoolKind::Max => vals.iter().cloned().fold(f32::NEG_INFINITY, f32::max),
                        PoolKind::Avg => vals.iter().sum::<f32>() / vals.len() as f32,
                    });
                }
            }
        }
        y
    }

    #[test]
    fn forward_matches_definition() {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            for g in cases(kind) {
                let x = seq(2 * g.in_len(), 0.4);
                let mut y = vec![f32::NAN; 2 * g.out_len()];
                g.forward(2, &x, &mut y);
                let want = naive_forward(&g, 2, &x);
                for (i, (got, want)) in y.iter().zip(&want).enumerate() {
                    assert!((got - want).abs() < 1e-6, "{g:?} [{i}]: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn padded_pools_match_pytorch() {
        // MaxPool2d(3, stride 2, padding 1) and AvgPool2d(3, 2, 1), as in the golden
        // `depthwise` case, on 7x9 and 12x12 with negative inputs (a zero pad would win a max).
        for kind in [PoolKind::Max, PoolKind::Avg] {
            for (h, w, oh, ow) in [(7, 9, 4, 5), (12, 12, 6, 6)] {
                let g = Pool2d::new(kind, [3, h, w], [3, 3], [2, 2], [1, 1]);
                assert_eq!((g.oh, g.ow), (oh, ow));
                let x: Vec<f32> = seq(2 * g.in_len(), 0.8).iter().map(|v| v - 2.0).collect();
                let mut y = vec![f32::NAN; 2 * g.out_len()];
                g.forward(2, &x, &mut y);
                let want = naive_forward(&g, 2, &x);
                for (i, (got, want)) in y.iter().zip(&want).enumerate() {
                    assert!((got - want).abs() < 1e-6, "{g:?} [{i}]: {got} vs {want}");
                }
                if kind == PoolKind::Max {
                    assert!(y.iter().all(|&v| v < -0.5), "padding won a max");
                } else {
                    // The corner window holds 2x2 inputs and divides by 9.
                    let corner = (x[0] + x[1] + x[w] + x[w + 1]) / 9.0;
                    assert!((y[0] - corner).abs() < 1e-6, "{} vs {corner}", y[0]);
                }
            }
        }
    }

    #[test]
    fn global_average_pool_gives_plane_means() {
        for (c, h, w) in [(3, 5, 7), (2, 2, 2), (4, 1, 1), (1, 8, 8)] {
            let g = Pool2d::new(PoolKind::Avg, [c, h, w], [h, w], [h, w], [0, 0]);
            assert_eq!((g.oh, g.ow, g.out_len()), (1, 1, c));
            let batch = 3;
            let x = seq(batch * g.in_len(), 1.2);
            let mut y = vec![f32::NAN; batch * c];
            g.forward(batch, &x, &mut y);
            for (p, xp) in x.chunks_exact(h * w).enumerate() {
                let mean = xp.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64;
                assert!(
                    (y[p] as f64 - mean).abs() < 1e-6,
                    "[{c}, {h}, {w}] plane {p}: {} vs {mean}",
                    y[p]
                );
            }
            let dy = seq(batch * c, 0.3);
            let mut dx = vec![f32::NAN; x.len()];
            g.backward(batch, &x, &dy, &mut dx);
            for (p, dxp) in dx.chunks_exact(h * w).enumerate() {
                let want = dy[p] / (h * w) as f32;
                assert!(
                    dxp.iter().all(|&d| (d - want).abs() < 1e-7),
                    "[{c}, {h}, {w}] plane {p}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "at most half the window")]
    fn padding_over_half_the_window_panics() {
        let _ = Pool2d::new(PoolKind::Max, [1, 8, 8], [3, 3], [2, 2], [2, 1]);
    }

    #[test]
    fn backward_matches_central_differences() {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            for g in cases(kind) {
                // Distinct values 0.1 apart (a permutation), so no window has a near-tie that
                // a finite-difference step could flip.
                let n = 2 * g.in_len();
                let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % n) as f32 * 0.1).collect();
                let r = seq(2 * g.out_len(), 2.1);
                let loss = |x: &[f32]| {
                    let mut y = vec![0.0; 2 * g.out_len()];
                    g.forward(2, x, &mut y);
                    y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
                };
                let mut dx = vec![f32::NAN; x.len()];
                g.backward(2, &x, &r, &mut dx);
                assert_grad_matches("pool dx", &x, &dx, loss);
            }
        }
    }

    #[test]
    fn max_gradient_goes_to_the_first_of_tied_maxima() {
        // Windows of equal values, of two equal maxima in each pair of positions, and one with
        // the maximum last: 4 windows in one row (the vector path), then the same one at a time.
        for w in [8, 2] {
            let g = Pool2d::new(PoolKind::Max, [1, 2, w], [2, 2], [2, 2], [0, 0]);
            let windows = [
                [1.0, 1.0, 1.0, 1.0],
                [0.0, 3.0, 3.0, 0.0],
                [0.0, 0.0, 2.0, 2.0],
                [0.0, 1.0, 2.0, 5.0],
            ];
            let firsts = [0, 1, 2, 3];
            for start in (0..4).step_by(w / 2) {
                let mut x = vec![0.0; 2 * w];
                for (j, win) in windows[start..start + w / 2].iter().enumerate() {
                    (x[2 * j], x[2 * j + 1], x[w + 2 * j], x[w + 2 * j + 1]) = (win[0], win[1], win[2], win[3]);
                }
                let dy: Vec<f32> = (0..w / 2).map(|j| 10.0 + j as f32).collect();
                let mut dx = vec![f32::NAN; x.len()];
                g.backward(1, &x, &dy, &mut dx);
                for (j, &first) in firsts[start..start + w / 2].iter().enumerate() {
                    let at = [2 * j, 2 * j + 1, w + 2 * j, w + 2 * j + 1];
                    for (q, &a) in at.iter().enumerate() {
                        let want = if q == first { dy[j] } else { 0.0 };
                        assert_eq!(dx[a], want, "width {w}, window {}", start + j);
                    }
                }
            }
        }
    }

    #[test]
    fn max_gradient_goes_to_first_maximum() {
        let g = Pool2d::new(PoolKind::Max, [1, 2, 2], [2, 2], [2, 2], [0, 0]);
        let mut dx = [0.0; 4];
        g.backward(1, &[1.0, 3.0, 3.0, 2.0], &[1.0], &mut dx);
        assert_eq!(dx, [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn padded_max_gradient_goes_to_the_first_input_maximum() {
        // 3x3 windows at stride 2, padding 1, on 3x3 of equal negative values: each window's
        // first input element (not a padding position) gets its gradient.
        let g = Pool2d::new(PoolKind::Max, [1, 3, 3], [3, 3], [2, 2], [1, 1]);
        let mut y = [0.0; 4];
        g.forward(1, &[-1.0; 9], &mut y);
        assert_eq!(y, [-1.0; 4]);
        let mut dx = [f32::NAN; 9];
        g.backward(1, &[-1.0; 9], &[1.0, 2.0, 3.0, 4.0], &mut dx);
        // Windows start at input (0, 0), (0, 1), (1, 0) and (1, 1).
        assert_eq!(dx, [1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
