//! Small dense kernels, written once and compiled twice: a portable path, and an AVX2 + FMA
//! path chosen at run time with `is_x86_feature_detected!` (a default build targets baseline
//! x86-64, so compile-time `cfg(target_feature)` alone would always run the portable one).
//!
//! The bodies are plain Rust over fixed-size arrays; inlined into a
//! `#[target_feature(enable = "avx2,fma")]` shim, LLVM turns them into 8-wide FMA code.

/// `a . b`.
///
/// # Panics
///
/// If `a` and `b` differ in length.
///
/// ```
/// assert_eq!(cnn_runtime::simd::dot(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
/// ```
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(
        a.len(),
        b.len(),
        "dot: the vectors differ in length, {} and {}",
        a.len(),
        b.len()
    );
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_body::<false>(a, b)
}

/// `c[m, n] (+)= a[m, k] x b[k, n]`, all row-major; with `accumulate` false `c` is overwritten.
///
/// Tuned for the small matrices of one sample's convolution (few output channels, hundreds of
/// pixels), where a general sgemm spends its time packing.
///
/// # Panics
///
/// If `a.len() != m * k`, `b.len() != k * n` or `c.len() != m * n`.
///
/// ```
/// use cnn_runtime::simd::small_gemm;
/// let mut c = [0.0; 2];
/// small_gemm(1, 2, 2, &[1.0, 2.0], &[1.0, 2.0, 3.0, 4.0], &mut c, false);
/// assert_eq!(c, [7.0, 10.0]);
/// ```
#[inline]
pub fn small_gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    assert_eq!(
        a.len(),
        m * k,
        "small_gemm: A must hold m*k = {m}*{k} elements, got {}",
        a.len()
    );
    assert_eq!(
        b.len(),
        k * n,
        "small_gemm: B must hold k*n = {k}*{n} elements, got {}",
        b.len()
    );
    assert_eq!(
        c.len(),
        m * n,
        "small_gemm: C must hold m*n = {m}*{n} elements, got {}",
        c.len()
    );
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { small_gemm_avx2(m, k, n, a, b, c, accumulate) };
    }
    small_gemm_body::<false>(m, k, n, a, b, c, accumulate)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_body::<true>(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn small_gemm_avx2(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    small_gemm_body::<true>(m, k, n, a, b, c, accumulate)
}

/// `a * b + c`, fused where the CPU has FMA (without it, `mul_add` is a slow library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

const LANES: usize = 8;

#[inline(always)]
fn dot_body<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    // Four independent 8-lane accumulators hide the FMA latency.
    let mut acc = [[0.0f32; LANES]; 4];
    let (a4, b4) = (a.chunks_exact(4 * LANES), b.chunks_exact(4 * LANES));
    let (ar, br) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for (r, acc) in acc.iter_mut().enumerate() {
            for l in 0..LANES {
                acc[l] = madd::<FMA>(x[r * LANES + l], y[r * LANES + l], acc[l]);
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
        sum = madd::<FMA>(*x, *y, sum);
    }
    sum
}

/// Rows of C per register block.
const MR: usize = 4;
/// Columns of C per register block: two 8-lane vectors.
const NR: usize = 16;

#[inline(always)]
fn small_gemm_body<const FMA: bool>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    if k == 0 {
        // The empty product: C is zero, or unchanged when accumulating.
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    // C is walked in MR x NR register blocks; each block reads a strip of A (MR rows) and a
    // panel of B (NR columns) once per k. Ragged edges take the same path with a narrower block.
    let mut i = 0;
    while i < m {
        let rows = MR.min(m - i);
        let mut j = 0;
        while j < n {
            let cols = NR.min(n - j);
            if rows == MR && cols == NR {
                block::<FMA, MR, NR>(k, n, &a[i * k..], &b[j..], &mut c[i * n + j..], accumulate);
            } else {
                block_edge::<FMA>(rows, cols, k, n, &a[i * k..], &b[j..], &mut c[i * n + j..], accumulate);
            }
            j += cols;
        }
        i += rows;
    }
}

#[inline(always)]
fn block<const FMA: bool, const R: usize, const C: usize>(
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    let mut acc = [[0.0f32; C]; R];
    for p in 0..k {
        let brow: &[f32; C] = b[p * n..][..C].try_into().expect("C columns");
        for r in 0..R {
            let av = a[r * k + p];
            for l in 0..C {
                acc[r][l] = madd::<FMA>(av, brow[l], acc[r][l]);
            }
        }
    }
    for r in 0..R {
        let crow = &mut c[r * n..][..C];
        for l in 0..C {
            crow[l] = if accumulate { crow[l] + acc[r][l] } else { acc[r][l] };
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn block_edge<const FMA: bool>(
    rows: usize,
    cols: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    let mut acc = [[0.0f32; NR]; MR];
    for p in 0..k {
        let brow = &b[p * n..][..cols];
        for r in 0..rows {
            let av = a[r * k + p];
            for (l, &bv) in brow.iter().enumerate() {
                acc[r][l] = madd::<FMA>(av, bv, acc[r][l]);
            }
        }
    }
    for r in 0..rows {
        let crow = &mut c[r * n..][..cols];
        for (l, cv) in crow.iter_mut().enumerate() {
            *cv = if accumulate { *cv + acc[r][l] } else { acc[r][l] };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::seq;

    const SIZES: [usize; 9] = [0, 1, 2, 3, 7, 8, 17, 31, 100];

    #[test]
    fn dot_paths_agree_with_a_plain_sum() {
        for n in SIZES.into_iter().chain([33, 257]) {
            let (a, b) = (seq(n, 0.1), seq(n, 0.7));
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            for got in [dot(&a, &b), dot_body::<false>(&a, &b)] {
                assert!((got as f64 - want).abs() < 1e-4, "n={n}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn small_gemm_paths_agree_with_the_definition() {
        for m in [1, 3, 4, 5, 6, 16] {
            for k in [0, 1, 5, 25, 150] {
                for n in [1, 7, 16, 17, 100] {
                    let (a, b) = (seq(m * k, 0.2), seq(k * n, 0.9));
                    let init = seq(m * n, 1.5);
                    for accumulate in [false, true] {
                        let mut want = init.clone();
                        for i in 0..m {
                            for j in 0..n {
                                let s: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                                want[i * n + j] = if accumulate { want[i * n + j] + s } else { s };
                            }
                        }
                        let mut fast = init.clone();
                        small_gemm(m, k, n, &a, &b, &mut fast, accumulate);
                        let mut portable = init.clone();
                        small_gemm_body::<false>(m, k, n, &a, &b, &mut portable, accumulate);
                        for idx in 0..m * n {
                            for got in [fast[idx], portable[idx]] {
                                assert!((got - want[idx]).abs() < 1e-4, "{m}x{k}x{n}: {got} vs {}", want[idx]);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "dot: the vectors differ in length, 2 and 3")]
    fn dot_rejects_different_lengths() {
        dot(&[0.0; 2], &[0.0; 3]);
    }
}
