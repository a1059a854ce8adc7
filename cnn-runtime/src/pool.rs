//! Max and average pooling (PyTorch's `MaxPool2d`/`AvgPool2d`: no padding, floor mode),
//! forward and backward.
//!
//! Layouts, per sample: input `[C, H, W]`, output `[C, OH, OW]`. Windows may overlap
//! (stride < kernel); an input then receives gradient from every window it belongs to.

use crate::shape::pool_out;

/// Which reduction a pooling layer applies over its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The window's maximum; the gradient goes to the first maximum (row-major order).
    Max,
    /// The window's mean, always divided by `KH*KW`.
    Avg,
}

/// The geometry of one pooling layer.
///
/// ```
/// use cnn_runtime::pool::{Pool2d, PoolKind};
/// const P: Pool2d = Pool2d::new(PoolKind::Max, [1, 2, 4], [2, 2], [2, 2]);
/// let x = [1.0, 5.0, 2.0, 0.0,
///          3.0, 4.0, 7.0, 6.0];
/// let mut y = [0.0; 2];
/// P.forward(1, &x, &mut y);
/// assert_eq!(y, [5.0, 7.0]);
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
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl Pool2d {
    /// The geometry for input `[c, h, w]`, window `[kh, kw]` and stride `[sh, sw]`.
    ///
    /// # Panics
    ///
    /// If the window does not fit the input or a size is zero (the `cnn!` macro rejects such
    /// declarations at compile time).
    pub const fn new(kind: PoolKind, input: [usize; 3], kernel: [usize; 2], stride: [usize; 2]) -> Self {
        let [c, h, w] = input;
        let (Some(oh), Some(ow)) = (pool_out(h, kernel[0], stride[0]), pool_out(w, kernel[1], stride[1])) else {
            panic!("Pool2d: the window does not fit the input");
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
            oh,
            ow,
        }
    }

    /// Elements of one input sample, `C*H*W`.
    pub const fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one output sample, `C*OH*OW`.
    pub const fn out_len(&self) -> usize {
        self.c * self.oh * self.ow
    }

    /// Pools a batch: `x: [batch, C, H, W]` into `y: [batch, C, OH, OW]`.
    ///
    /// # Panics
    ///
    /// If `x.len()` is not a multiple of `C*H*W` or `y` does not match it; the message gives
    /// the expected and the actual length.
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
        for (xp, yp) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
            for i in 0..oh {
                let yrow = &mut yp[i * ow..][..ow];
                // The window's first row initializes the reduction, the others fold into it.
                for u in 0..self.kh {
                    let xrow = &xp[(i * self.sh + u) * w..][..w];
                    for (j, out) in yrow.iter_mut().enumerate() {
                        let win = &xrow[j * self.sw..][..self.kw];
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
    pub fn backward(&self, batch: usize, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        self.check(batch, x.len(), dy.len(), "dy");
        assert_eq!(
            dx.len(),
            x.len(),
            "pool: dx must hold {} elements, got {}",
            x.len(),
            dx.len()
        );
        dx.fill(0.0);
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
                for j in 0..ow {
                    let g = dyp[i * ow + j];
                    let (r0, c0) = (i * self.sh, j * self.sw);
                    match self.kind {
                        PoolKind::Max => {
                            // First maximum in row-major order, as PyTorch picks it.
                            let mut best = r0 * w + c0;
                            for r in r0..r0 + self.kh {
                                for at in r * w + c0..r * w + c0 + self.kw {
                                    if xp[at] > xp[best] {
                                        best = at;
                                    }
                                }
                            }
                            dxp[best] += g;
                        }
                        PoolKind::Avg => {
                            for r in r0..r0 + self.kh {
                                dxp[r * w + c0..][..self.kw].iter_mut().for_each(|d| *d += g * inv_area);
                            }
                        }
                    }
                }
            }
        }
    }

    fn is_2x2(&self) -> bool {
        (self.kh, self.kw, self.sh, self.sw) == (2, 2, 2, 2)
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

    fn cases(kind: PoolKind) -> [Pool2d; 6] {
        [
            Pool2d::new(kind, [2, 4, 4], [2, 2], [2, 2]),
            // Rows of 9 windows: two runs of four and one left over.
            Pool2d::new(kind, [2, 6, 19], [2, 2], [2, 2]),
            Pool2d::new(kind, [3, 7, 5], [2, 2], [2, 2]),
            Pool2d::new(kind, [3, 9, 6], [2, 2], [1, 1]),
            Pool2d::new(kind, [1, 7, 5], [3, 2], [2, 3]),
            Pool2d::new(kind, [1, 1, 1], [1, 1], [1, 1]),
        ]
    }

    #[test]
    fn forward_matches_definition() {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            for g in cases(kind) {
                let x = seq(2 * g.in_len(), 0.4);
                let mut y = vec![f32::NAN; 2 * g.out_len()];
                g.forward(2, &x, &mut y);
                for p in 0..2 * g.c {
                    for i in 0..g.oh {
                        for j in 0..g.ow {
                            let vals: Vec<f32> = (0..g.kh)
                                .flat_map(|u| (0..g.kw).map(move |v| (u, v)))
                                .map(|(u, v)| x[p * g.h * g.w + (i * g.sh + u) * g.w + j * g.sw + v])
                                .collect();
                            let want = match kind {
                                PoolKind::Max => vals.iter().cloned().fold(f32::MIN, f32::max),
                                PoolKind::Avg => vals.iter().sum::<f32>() / vals.len() as f32,
                            };
                            let got = y[(p * g.oh + i) * g.ow + j];
                            assert!((got - want).abs() < 1e-6, "{g:?}");
                        }
                    }
                }
            }
        }
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
            let g = Pool2d::new(PoolKind::Max, [1, 2, w], [2, 2], [2, 2]);
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
        let g = Pool2d::new(PoolKind::Max, [1, 2, 2], [2, 2], [2, 2]);
        let mut dx = [0.0; 4];
        g.backward(1, &[1.0, 3.0, 3.0, 2.0], &[1.0], &mut dx);
        assert_eq!(dx, [0.0, 1.0, 0.0, 0.0]);
    }
}
