//! The portable path: plain Rust, blocked as the vector paths are, for any CPU.

use super::operands::{Finish, Lhs, Mat, Rhs, RowAt, Store, Strides};

/// Rows of C per register block.
const MR: usize = 6;
/// Columns of C per register block.
const NR: usize = 16;
/// Lanes of the partial sums of a dot product.
const LANES: usize = 8;

/// `a . b` for slices of one length, in four interleaved 8-lane partial sums.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [[0.0f32; LANES]; 4];
    let (a4, b4) = (a.chunks_exact(4 * LANES), b.chunks_exact(4 * LANES));
    let (ar, br) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for (r, acc) in acc.iter_mut().enumerate() {
            for l in 0..LANES {
                acc[l] += x[r * LANES + l] * y[r * LANES + l];
            }
        }
    }
    let mut total = [0.0f32; LANES];
    for acc in &acc {
        for l in 0..LANES {
            total[l] += acc[l];
        }
    }
    let mut sum = total.iter().sum::<f32>();
    for (x, y) in ar.iter().zip(br) {
        sum += x * y;
    }
    sum
}

/// `out[q] = sum over t of rows[starts[t] + q]`, windows checked by the caller.
pub fn sum_shifted(rows: &[f32], starts: &[usize], out: &mut [f32]) {
    out.fill(0.0);
    for &s in starts {
        out.iter_mut().zip(&rows[s..]).for_each(|(o, r)| *o += r);
    }
}

/// `y[j * ldy + i] = x[i * x.rs + j]`, except the rows before `i0` up to column `j0` (what the
/// vector paths did: the edges remain); operands checked by the caller.
pub fn transpose_from(rows: usize, cols: usize, x: Mat, y: &mut [f32], ldy: usize, [i0, j0]: [usize; 2]) {
    for i in 0..rows {
        let from = if i < i0 { j0 } else { 0 };
        for j in from..cols {
            y[j * ldy + i] = x.data[i * x.rs + j];
        }
    }
}

/// `C (+)= A x B`, each entry finished as `finish` says: the broadcast kernel's blocking in
/// plain Rust; operands checked by the caller (`B`'s rows hold `n` columns in whole image rows,
/// `C` reaches `(m, n)`, and so does `finish`'s residual).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Lhs<impl RowAt, impl RowAt>,
    b: Rhs<impl RowAt>,
    c: &mut [f32],
    cs: Strides,
    store: Store,
    finish: Finish,
) {
    let (width, stride) = b.spread.rows(n);
    let mut i = 0;
    while i < m {
        let rows = MR.min(m - i);
        for (jb, jc) in (0..n / width).map(|g| (g * stride, g * width)) {
            let mut jj = 0;
            while jj < width {
                let cols = NR.min(width - jj);
                let mut acc = [[0.0f32; NR]; MR];
                for p in 0..k {
                    let brow = &b.data[b.row.at(p) + jb + jj..][..cols];
                    let ap = a.col.at(p);
                    for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                        let av = a.data[a.row.at(i + r) + ap];
                        for (l, &bv) in brow.iter().enumerate() {
                            acc[l] += av * bv;
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate().take(rows) {
                    for (l, v) in acc[..cols].iter().enumerate() {
                        let at = (i + r) * cs[0] + (jc + jj + l) * cs[1];
                        c[at] = finish.scalar(i + r, at, store.apply(c[at], *v));
                    }
                }
                jj += cols;
            }
        }
        i += rows;
    }
}

/// `C (+)= A x B^T`, one dot product per entry; operands checked by the caller.
#[allow(clippy::too_many_arguments)]
pub fn gemm_nt(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: &[f32],
    brow: impl RowAt,
    c: &mut [f32],
    ldc: usize,
    store: Store,
) {
    for i in 0..m {
        let arow = &a.data[i * a.rs..][..k];
        for j in 0..n {
            let d = dot(arow, &b[brow.at(j)..][..k]);
            let out = &mut c[i * ldc + j];
            *out = store.apply(*out, d);
        }
    }
}

/// Partial sums the `f64` reductions keep: one running sum is a chain of dependent additions,
/// one per element, which the compiler may not reorder; 32 interleaved ones vectorize into
/// several independent chains (four vectors of 8 with AVX-512, which keeps the same lanes).
const F64_LANES: usize = 32;

/// The sum of `x` in `f64`, in [`F64_LANES`] interleaved partial sums.
#[inline(always)]
pub fn sum_f64(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; F64_LANES];
    let chunks = x.chunks_exact(F64_LANES);
    let rest = chunks.remainder().iter().map(|&v| v as f64).sum::<f64>();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v as f64;
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// The sum of `(x - mean)^2` in `f64`, in [`F64_LANES`] interleaved partial sums.
#[inline(always)]
pub fn sum_sq_dev_f64(x: &[f32], mean: f64) -> f64 {
    let sq = |v: f32| (v as f64 - mean) * (v as f64 - mean);
    let mut acc = [0.0f64; F64_LANES];
    let chunks = x.chunks_exact(F64_LANES);
    let rest = chunks.remainder().iter().map(|&v| sq(v)).sum::<f64>();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += sq(v);
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// The sums of `dy` and of `dy * (x - mean)` in `f64`, in [`F64_LANES`] interleaved partial sums.
#[inline(always)]
pub fn sums_dy_f64(x: &[f32], dy: &[f32], mean: f64) -> (f64, f64) {
    let (mut s, mut sx) = ([0.0f64; F64_LANES], [0.0f64; F64_LANES]);
    let (xc, gc) = (x.chunks_exact(F64_LANES), dy.chunks_exact(F64_LANES));
    let (mut rs, mut rsx) = (0.0f64, 0.0f64);
    for (&x, &g) in xc.remainder().iter().zip(gc.remainder()) {
        rs += g as f64;
        rsx += g as f64 * (x as f64 - mean);
    }
    for (xs, gs) in xc.zip(gc) {
        for l in 0..F64_LANES {
            s[l] += gs[l] as f64;
            sx[l] += gs[l] as f64 * (xs[l] as f64 - mean);
        }
    }
    (s.iter().sum::<f64>() + rs, sx.iter().sum::<f64>() + rsx)
}

/// `simd::split_columns`, whose checks it assumes (rows outside the slices panic).
#[inline(always)]
pub fn split_columns(src: &[f32], even: &mut [f32], odd: &mut [f32], at: super::Columns) {
    let ([sr, sp], [dr, dp], w) = (at.src, at.dst, at.w);
    for p in 0..at.planes {
        for r in 0..at.rows {
            let row = &src[p * sp + r * sr..][..w];
            let e = &mut even[p * dp + r * dr..][..w.div_ceil(2)];
            let o = &mut odd[p * dp + r * dr..][..w / 2];
            for ((pair, e), o) in row.chunks_exact(2).zip(e.iter_mut()).zip(o) {
                (*e, *o) = (pair[0], pair[1]);
            }
            if w % 2 == 1 {
                e[w / 2] = row[w - 1];
            }
        }
    }
}
