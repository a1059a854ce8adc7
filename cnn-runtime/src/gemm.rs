//! The one safe wrapper around `matrixmultiply::sgemm`.

/// How a matrix operand is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Row-major as named: an `m x k` operand stored as `m` rows of `k`.
    N,
    /// Transposed: an `m x k` operand stored row-major as `k` rows of `m`.
    T,
}

/// `C <- alpha * op(A) * op(B) + beta * C`, with `op(A)` of `m x k`, `op(B)` of `k x n`, and `C`
/// row-major `m x n`.
///
/// When `beta == 0`, `C` is overwritten without being read (NaNs in it do not propagate).
///
/// # Panics
///
/// If `a.len() != m * k`, `b.len() != k * n` or `c.len() != m * n`.
///
/// ```
/// use cnn_runtime::gemm::{sgemm, Op};
/// // [1 2; 3 4] x [1; 1] = [3; 7]
/// let mut c = [0.0; 2];
/// sgemm(2, 2, 1, 1.0, &[1.0, 2.0, 3.0, 4.0], Op::N, &[1.0, 1.0], Op::N, 0.0, &mut c);
/// assert_eq!(c, [3.0, 7.0]);
/// ```
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    beta: f32,
    c: &mut [f32],
) {
    // Checked: a product that wrapped around could match a short slice.
    assert!(
        m.checked_mul(k) == Some(a.len()),
        "sgemm: A must hold m*k = {m}*{k} elements, got {}",
        a.len()
    );
    // Checked: a product that wrapped around could match a short slice.
    assert!(
        k.checked_mul(n) == Some(b.len()),
        "sgemm: B must hold k*n = {k}*{n} elements, got {}",
        b.len()
    );
    // Checked: a product that wrapped around could match a short slice.
    assert!(
        m.checked_mul(n) == Some(c.len()),
        "sgemm: C must hold m*n = {m}*{n} elements, got {}",
        c.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // Empty product: C <- beta * C.
        for x in c.iter_mut() {
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
        return;
    }
    let (rsa, csa) = match op_a {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (rsb, csb) = match op_b {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    #[cfg(feature = "std")]
    {
        // SAFETY: the asserts above guarantee that A, B and C hold exactly m*k, k*n and m*n
        // elements, and the strides describe those extents (row-major or its transpose), so every
        // access of sgemm stays inside the slices. C is a unique borrow, so it aliases neither A nor B.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                beta,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    }
    #[cfg(not(feature = "std"))]
    portable(m, k, n, alpha, (a, rsa, csa), (b, rsb, csb), beta, c);
}

/// Without std (and so without matrixmultiply, whose packing buffers need a heap): a plain
/// triple loop, the i-k-j order so the innermost loop runs along rows of `B` and `C`.
#[cfg(not(feature = "std"))]
#[allow(clippy::too_many_arguments)]
fn portable(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    (a, rsa, csa): (&[f32], isize, isize),
    (b, rsb, csb): (&[f32], isize, isize),
    beta: f32,
    c: &mut [f32],
) {
    let (rsa, csa, rsb, csb) = (rsa as usize, csa as usize, rsb as usize, csb as usize);
    for i in 0..m {
        let row = &mut c[i * n..][..n];
        for x in row.iter_mut() {
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
        for p in 0..k {
            let aip = alpha * a[i * rsa + p * csa];
            for (j, x) in row.iter_mut().enumerate() {
                *x += aip * b[p * rsb + j * csb];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], op_a: Op, b: &[f32], op_b: Op) -> Vec<f32> {
        let at = |i: usize, p: usize| match op_a {
            Op::N => a[i * k + p],
            Op::T => a[p * m + i],
        };
        let bt = |p: usize, j: usize| match op_b {
            Op::N => b[p * n + j],
            Op::T => b[j * k + p],
        };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            }
        }
        c
    }

    #[test]
    fn matches_naive_at_awkward_sizes() {
        for &(m, k, n) in &[(1, 1, 1), (0, 3, 2), (2, 0, 3), (3, 7, 5), (13, 17, 11), (1, 31, 1)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.71).cos()).collect();
            for op_a in [Op::N, Op::T] {
                for op_b in [Op::N, Op::T] {
                    let want = naive(m, k, n, &a, op_a, &b, op_b);
                    let mut c = vec![f32::NAN; m * n];
                    sgemm(m, k, n, 1.0, &a, op_a, &b, op_b, 0.0, &mut c);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((x - y).abs() <= 1e-5, "{m}x{k}x{n} {op_a:?}{op_b:?}: {x} vs {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn beta_accumulates() {
        let mut c = [1.0, 2.0];
        sgemm(1, 1, 2, 2.0, &[3.0], Op::N, &[1.0, 1.0], Op::N, 1.0, &mut c);
        assert_eq!(c, [7.0, 8.0]);
    }

    #[test]
    #[should_panic(expected = "sgemm: C must hold m*n = 2*2 elements, got 3")]
    fn wrong_length_panics() {
        sgemm(2, 1, 2, 1.0, &[0.0; 2], Op::N, &[0.0; 2], Op::N, 0.0, &mut [0.0; 3]);
    }
}
