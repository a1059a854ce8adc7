//! The dense kernels under convolution and linear layers: matrix products whose operands are
//! read in place (at any strides, or gathered from shifted views of a padded image), a dot
//! a transpose, and the sum of shifted windows.
//!
//! Each kernel has up to three paths, one module each: `portable` (plain Rust, any CPU),
//! `avx2` (AVX2 + FMA intrinsics, 8 lanes) and `avx512` (AVX-512F intrinsics, 16 lanes, for
//! the matrix products; the other kernels run their AVX2 version there). The entry points here
//! check every operand, then call the path [`Isa::current`] chose once for the process: the
//! widest the CPU has, or the one the `CNN_KERNELS` environment variable names
//! (`portable|avx2|avx512`), so that every path can be run and tested on a CPU that has it.
//! A default build targets baseline x86-64, so the choice is made at run time; without `std`
//! it follows the build's target features.

#[cfg(target_arch = "x86_64")]
mod blocks;
mod isa;
mod operands;
mod portable;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests;

pub use isa::kernels;
#[cfg(test)]
pub(crate) use isa::{on_every_path, with as on_path};
pub(crate) use isa::{Isa, Path};
use operands::{check_a, check_c, check_rows, Lhs, Pixels, Rhs, RowAt, Strided, Strides, Table};
pub(crate) use operands::{Finish, Gathered, Mat, Spread, Store};

/// Sets every element of `x` to 0.0 through `memset`, which runs at the width of the CPU's
/// widest stores (`x.fill(0.0)` compiles to a loop of 16-byte stores outside the kernels: a
/// convolution's padded input zeroed so took 5% of ResNet-8's batch-1 inference in perf).
pub(crate) fn zero(x: &mut [f32]) {
    // SAFETY: the bytes written are the slice's own, and all-zero bits are the f32 0.0.
    unsafe { core::ptr::write_bytes(x.as_mut_ptr(), 0, x.len()) }
}

/// Floats in a cache line of 64 bytes.
pub(crate) const LINE: usize = 16;

/// `x` from its first element that starts a cache line on (up to `LINE - 1` skipped): a
/// network's workspace starts anywhere, and a vector stored across two lines costs two.
///
/// # Panics
///
/// If `x` is shorter than the elements skipped.
pub(crate) fn from_line(x: &mut [f32]) -> &mut [f32] {
    let skip = x.as_ptr().align_offset(64).min(LINE);
    &mut x[skip..]
}

/// The sum of `xs`, kept as 32 interleaved partial sums: a running total is one long chain of
/// dependent additions, which the compiler may not reorder.
pub(crate) fn sum(xs: &[f32]) -> f32 {
    const PARTS: usize = 32;
    let mut acc = [0.0f32; PARTS];
    let chunks = xs.chunks_exact(PARTS);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Dispatches a reduction that has the same body on every path (its lanes explicit, so the
/// result is bitwise the same), compiled per path so that it runs on the widest vectors.
macro_rules! same_body {
    ($name:ident($($arg:expr),*)) => {
        match Isa::current().path() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path is only chosen on CPUs with AVX-512F.
            Path::Avx512 => unsafe { avx512::$name($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path is only chosen on CPUs with AVX2 and FMA.
            Path::Avx2 => unsafe { avx2::$name($($arg),*) },
            _ => portable::$name($($arg),*),
        }
    };
}

/// The sum of `x` in `f64` (BatchNorm's statistics), in 32 interleaved partial sums: a single
/// running sum is a chain of dependent additions, which the compiler may not reorder.
pub(crate) fn sum_f64(x: &[f32]) -> f64 {
    same_body!(sum_f64(x))
}

/// The rows [`split_columns`] splits: `planes` planes of `rows` rows of `w` pixels, whose rows
/// and planes lie `src = [row, plane]` elements apart in the source and `dst` in each
/// destination.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Columns {
    pub planes: usize,
    pub rows: usize,
    pub w: usize,
    pub src: [usize; 2],
    pub dst: [usize; 2],
}

impl Columns {
    /// Elements from the first to past the last that a plane-major walk with `strides`
    /// reaches, rows `len` long.
    fn reach(&self, [row, plane]: [usize; 2], len: usize) -> usize {
        (self.planes - 1) * plane + (self.rows - 1) * row + len
    }
}

/// The rows of `at` split by column: the even columns (`ceil(w / 2)` of them) to the rows of
/// `even`, the odd ones to those of `odd`. A stride-2 convolution's input so becomes its
/// column phases (`Conv2d::pad_sample`), a row phase of all channels in one call; compiled
/// for the CPU's widest vectors, whose shuffles do in a few instructions what took a
/// baseline build 24 cycles a row of 32.
///
/// # Panics
///
/// If a row does not lie inside its slice.
pub(crate) fn split_columns(src: &[f32], even: &mut [f32], odd: &mut [f32], at: Columns) {
    if at.planes == 0 || at.rows == 0 {
        return;
    }
    assert!(
        src.len() >= at.reach(at.src, at.w)
            && even.len() >= at.reach(at.dst, at.w.div_ceil(2))
            && odd.len() >= at.reach(at.dst, at.w / 2),
        "split_columns: {at:?} from {} elements into {} and {}",
        src.len(),
        even.len(),
        odd.len()
    );
    same_body!(split_columns(src, even, odd, at))
}

/// The sum of `(x - mean)^2` in `f64`, as [`sum_f64`].
pub(crate) fn sum_sq_dev_f64(x: &[f32], mean: f64) -> f64 {
    same_body!(sum_sq_dev_f64(x, mean))
}

/// The sums of `dy` and of `dy * (x - mean)` in `f64`, as [`sum_f64`].
///
/// # Panics
///
/// If `x` and `dy` differ in length.
pub(crate) fn sums_dy_f64(x: &[f32], dy: &[f32], mean: f64) -> (f64, f64) {
    assert_eq!(x.len(), dy.len(), "sums_dy_f64: x and dy differ in length");
    same_body!(sums_dy_f64(x, dy, mean))
}

/// `out[q] = sum over t of rows[starts[t] + q]`: the sum of shifted windows of one slice. The
/// input gradient of a stride-1 convolution folds each kernel tap's product back onto the
/// padded image this way, every pixel summing the taps that read it, rather than each tap
/// adding onto overlapping stretches in turn.
///
/// # Panics
///
/// If a window, `starts[t]..starts[t] + out.len()`, does not lie inside `rows`.
pub(crate) fn sum_shifted(rows: &[f32], starts: &[usize], out: &mut [f32]) {
    let n = out.len();
    assert!(
        starts
            .iter()
            .all(|&s| s.checked_add(n).is_some_and(|end| end <= rows.len())),
        "sum_shifted: every window of {n} elements must lie inside the {} rows elements",
        rows.len()
    );
    #[cfg(target_arch = "x86_64")]
    if Isa::current().path() != Path::Portable {
        // SAFETY: the AVX2 and AVX-512 paths are only chosen on CPUs with AVX2 and FMA; the
        // windows were checked.
        return unsafe { avx2::sum_shifted(rows, starts, out) };
    }
    portable::sum_shifted(rows, starts, out)
}

/// `y = x^T` for `x` of `rows x cols` (unit column stride, rows `x.rs` apart) into `y` with
/// rows `ldy` apart: `y[j * ldy + i] = x(i, j)`. In 8x8 blocks of vector shuffles where the CPU
/// has AVX2 (an element at a time, one of the two sides is strided, and a convolution's weight
/// took 2 us to transpose that way).
///
/// # Panics
///
/// If `x` or `y` does not hold its elements, `x.cs != 1`, or `ldy < rows`.
pub(crate) fn transpose(rows: usize, cols: usize, x: Mat, y: &mut [f32], ldy: usize) {
    assert!(
        x.cs == 1 && x.holds(rows, cols) && ldy >= rows && Mat::rows(y, ldy).holds(cols, rows),
        "transpose: x ({rows}x{cols}, row stride {}) and y (row stride {ldy}) must hold their \
         elements, got {} and {}",
        x.rs,
        x.data.len(),
        y.len()
    );
    #[cfg(target_arch = "x86_64")]
    if Isa::current().path() != Path::Portable {
        let (full_r, full_c) = (rows - rows % 8, cols - cols % 8);
        // Along y's rows: each of its cache lines is written whole before the next, rather
        // than in halves a pass over x apart (which evicts them in between once y outgrows L1).
        for j in (0..full_c).step_by(8) {
            for i in (0..full_r).step_by(8) {
                let (from, to) = (x.data[i * x.rs + j..].as_ptr(), y[j * ldy + i..].as_mut_ptr());
                // SAFETY: the AVX2 and AVX-512 paths are only chosen on CPUs with AVX2; rows
                // i..i+8 and columns j..j+8 lie inside both matrices (full blocks only).
                unsafe { avx2::transpose8(from, x.rs, to, ldy) };
            }
        }
        return portable::transpose_from(rows, cols, x, y, ldy, [full_r, full_c]);
    }
    portable::transpose_from(rows, cols, x, y, ldy, [0, 0])
}

/// `C (+)= A x B` for `A: m x k` (any strides), `B: k x n` with unit column stride and row
/// stride `b.rs`, and `C: m x n` row-major with row stride `ldc`; `store` says whether `C` is
/// overwritten or added to.
///
/// Tuned for the small matrices of one sample's convolution (few output channels, hundreds of
/// pixels), where a general sgemm spends its time packing; the strides let one sample's slice
/// of a channel-major batch be read and written in place.
///
/// # Panics
///
/// If an operand does not hold the elements its sizes and strides reach, or `b.cs != 1`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn small_gemm(m: usize, k: usize, n: usize, a: Mat, b: Mat, c: &mut [f32], ldc: usize, store: Store) {
    checked_gemm("small_gemm", m, k, n, a, b, c, ldc, store, Finish::NONE)
}

/// `C = A x B` as [`small_gemm`], each entry finished as `finish` says as it is stored.
///
/// # Panics
///
/// As [`small_gemm`], and if the bias has fewer than `m` entries or the residual does not
/// reach as far as `C`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finished_gemm(m: usize, k: usize, n: usize, a: Mat, b: Mat, c: &mut [f32], ldc: usize, finish: Finish) {
    checked_gemm("finished_gemm", m, k, n, a, b, c, ldc, Store::Overwrite, finish)
}

/// [`small_gemm`] and [`finished_gemm`]: every operand checked, `what` naming the caller.
#[allow(clippy::too_many_arguments)]
#[track_caller]
#[inline]
fn checked_gemm(
    what: &str,
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
    store: Store,
    finish: Finish,
) {
    check_a(what, a, m, k);
    check_rows(what, "B", b, k, n);
    check_c(what, m, n, c, ldc);
    check_finish(what, finish, m, n, ldc);
    let b = Rhs {
        data: b.data,
        row: Strided(b.rs),
        spread: Spread::Contiguous,
    };
    gemm(m, k, n, Lhs::of(a), b, c, [ldc, 1], store, finish)
}

/// Panics unless `finish`'s bias has `m` entries and its residual reaches as far as `C`
/// (`m x n`, row stride `ldc`); `what` names the caller.
#[track_caller]
fn check_finish(what: &str, finish: Finish, m: usize, n: usize, ldc: usize) {
    assert!(
        finish.bias.is_none_or(|bias| bias.len() >= m),
        "{what}: the bias needs {m} entries, got {}",
        finish.bias.map_or(0, <[f32]>::len)
    );
    if let Some(residual) = finish.residual {
        assert!(
            ldc >= n && Mat::rows(residual, ldc).holds(m, n),
            "{what}: the residual ({m}x{n}, row stride {ldc}) does not fit its {} elements",
            residual.len()
        );
    }
}

/// `C (+)= A x B` as [`small_gemm`], with the rows of `B` (`k x n`) gathered: row `p` starts at
/// `b.data[b.offsets[p]]` and, read as images, holds `n` pixels (whole image rows). Each entry
/// is finished as `finish` says as it is stored: a convolution's bias, residual sum and ReLU
/// with no pass of their own.
///
/// # Panics
///
/// If an operand does not hold the elements its sizes, strides and offsets reach, the bias
/// has fewer than `m` entries, or the residual does not reach as far as `C`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gather_gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Gathered,
    c: &mut [f32],
    ldc: usize,
    store: Store,
    finish: Finish,
) {
    check_a("gather_gemm", a, m, k);
    check_finish("gather_gemm", finish, m, n, ldc);
    assert!(
        b.holds(k, n) && b.whole_rows(n),
        "gather_gemm: B needs {k} row offsets, each with {n} elements (spread {:?}) after it in \
         its {} elements",
        b.spread,
        b.data.len()
    );
    check_c("gather_gemm", m, n, c, ldc);
    let rhs = Rhs {
        data: b.data,
        row: Table(b.offsets),
        spread: b.spread,
    };
    gemm(m, k, n, Lhs::of(a), rhs, c, [ldc, 1], store, finish)
}

/// `C (+)= A x B` with the columns of `A` gathered and `C` at any strides: column `p` of `A`
/// starts at `a.data[a.offsets[p]]` and, read as an image, holds `m` pixels; `B` (`k x n`) has
/// unit column stride, and `C(i, j)` is `c[i * cs[0] + j * cs[1]]`. A stride-1 convolution
/// computed output pixel by output pixel: `A(i, p)` is kernel tap `p` seen from pixel `i`, `B`
/// the weight transposed, and `C` the pixels across the output channels of a channel-major
/// image.
///
/// # Panics
///
/// If an operand does not hold the elements its sizes, strides and offsets reach, or
/// `b.cs != 1`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gather_cols_gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Gathered,
    b: Mat,
    c: &mut [f32],
    cs: Strides,
    store: Store,
) {
    let reach = |count: usize, stride: usize| count.checked_sub(1).map_or(Some(0), |last| last.checked_mul(stride));
    assert!(
        a.holds(k, m),
        "gather_cols_gemm: A needs {k} column offsets, each with {m} elements (spread {:?}) \
         after it in its {} elements",
        a.spread,
        a.data.len()
    );
    check_rows("gather_cols_gemm", "B", b, k, n);
    assert!(
        m == 0
            || n == 0
            || reach(m, cs[0])
                .zip(reach(n, cs[1]))
                .and_then(|(r, c)| r.checked_add(c))
                .is_some_and(|last| last < c.len()),
        "gather_cols_gemm: C ({m}x{n}, strides {}, {}) does not fit its {} elements",
        cs[0],
        cs[1],
        c.len()
    );
    let lhs = Lhs {
        data: a.data,
        row: Pixels::of(a.spread),
        col: Table(a.offsets),
    };
    let rhs = Rhs {
        data: b.data,
        row: Strided(b.rs),
        spread: Spread::Contiguous,
    };
    gemm(m, k, n, lhs, rhs, c, cs, store, Finish::NONE)
}

/// `C (+)= A x B` with the rows of `A` gathered: row `i` starts at `a.data[a.offsets[i]]` and,
/// read as an image (`a.spread`), holds `k` pixels; `B` (`k x n`) has unit column stride and
/// `C` is row-major with row stride `ldc`. The weight gradient of a stride-1 convolution,
/// transposed: each kernel tap's view of the padded input times the output gradient,
/// pixel-major.
///
/// # Panics
///
/// If an operand does not hold the elements its sizes, strides and offsets reach, or
/// `b.cs != 1`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gather_rows_gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Gathered,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
    store: Store,
) {
    assert!(
        a.holds(m, k),
        "gather_rows_gemm: A needs {m} row offsets, each with {k} elements (spread {:?}) after \
         it in its {} elements",
        a.spread,
        a.data.len()
    );
    check_rows("gather_rows_gemm", "B", b, k, n);
    check_c("gather_rows_gemm", m, n, c, ldc);
    // The pixels' offsets, a table of them at a time (no division in the kernel's loop).
    const PIXELS: usize = 512;
    let pixels = Pixels::of(a.spread);
    let mut table = [0usize; PIXELS];
    let mut p0 = 0;
    loop {
        let kc = PIXELS.min(k - p0);
        for (q, at) in table[..kc].iter_mut().enumerate() {
            *at = pixels.at(p0 + q);
        }
        let lhs = Lhs {
            data: a.data,
            row: Table(a.offsets),
            col: Table(&table[..kc]),
        };
        let rhs = Rhs {
            data: &b.data[(p0 * b.rs).min(b.data.len())..],
            row: Strided(b.rs),
            spread: Spread::Contiguous,
        };
        let store = if p0 > 0 { Store::Accumulate } else { store };
        gemm(m, kc, n, lhs, rhs, c, [ldc, 1], store, Finish::NONE);
        p0 += kc;
        if p0 >= k {
            return;
        }
    }
}

/// The checked operands of the broadcast products to the chosen path. Columns of `B` lie in
/// whole image rows as `b.spread` says; `C(i, j)` is `c[i * cs[0] + j * cs[1]]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm(
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
    match Isa::current().path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is only chosen on CPUs with AVX-512F; the operands were checked.
        Path::Avx512 => unsafe { avx512::gemm(m, k, n, a, b, c, cs, store, finish) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is only chosen on CPUs with AVX2 and FMA; the operands were checked.
        Path::Avx2 => unsafe { avx2::gemm(m, k, n, a, b, c, cs, store, finish) },
        _ => portable::gemm(m, k, n, a, b, c, cs, store, finish),
    }
}

/// `C (+)= A x B^T` where `A: m x k` and `B: n x k` are row-major with row strides `a.rs` and
/// `b.rs` (unit column strides), and `C: m x n` has row stride `ldc`: every entry a dot product
/// of a row of `A` with a row of `B`. The weight gradient of a convolution, `dy x cols^T`.
///
/// # Panics
///
/// If an operand does not hold the elements its sizes and strides reach, or a column stride
/// is not 1.
#[allow(clippy::too_many_arguments)]
pub(crate) fn small_gemm_nt(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], ldc: usize, store: Store) {
    check_rows("small_gemm_nt", "A", a, m, k);
    check_rows("small_gemm_nt", "B", b, n, k);
    check_c("small_gemm_nt", m, n, c, ldc);
    gemm_nt(m, n, k, a, b.data, Strided(b.rs), c, ldc, store)
}

/// `C (+)= A x B^T` as [`small_gemm_nt`], with the rows of `B` (`n x k`) gathered: row `j` is
/// `b.data[b.offsets[j]..][..k]`. The weight gradient of a stride-1 convolution: output
/// gradient times shifted views of the input.
///
/// # Panics
///
/// If an operand does not hold the elements its sizes, strides and offsets reach, or `a.cs != 1`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gather_gemm_nt(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Gathered,
    c: &mut [f32],
    ldc: usize,
    store: Store,
) {
    check_rows("gather_gemm_nt", "A", a, m, k);
    assert!(
        b.holds(n, k),
        "gather_gemm_nt: B needs {n} row offsets, each with {k} contiguous elements after it in its {} \
         elements",
        b.data.len()
    );
    assert!(
        b.contiguous(k),
        "gather_gemm_nt: the rows of B must be contiguous, got {:?}",
        b.spread
    );
    check_c("gather_gemm_nt", m, n, c, ldc);
    gemm_nt(m, n, k, a, b.data, Table(b.offsets), c, ldc, store)
}

/// The checked operands of [`small_gemm_nt`] or [`gather_gemm_nt`] to the chosen path: `C`,
/// or, when its blocks tile better, `C^T = B x A^T`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_nt(m: usize, n: usize, k: usize, a: Mat, b: &[f32], brow: impl RowAt, c: &mut [f32], ldc: usize, store: Store) {
    let blocks = |[rows, cols]: [usize; 2], m: usize, n: usize| m.div_ceil(rows) * n.div_ceil(cols);
    let flip = |block: [usize; 2]| blocks(block, n, m) < blocks(block, m, n);
    match Isa::current().path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is only chosen on CPUs with AVX-512F; the operands were checked, in
        // either orientation.
        Path::Avx512 => unsafe {
            if flip([avx512::NT_ROWS, avx512::NT_COLS]) {
                avx512::gemm_nt(n, m, k, b, brow, a.data, Strided(a.rs), c, [1, ldc], store)
            } else {
                avx512::gemm_nt(m, n, k, a.data, Strided(a.rs), b, brow, c, [ldc, 1], store)
            }
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is only chosen on CPUs with AVX2 and FMA; the operands were
        // checked, in either orientation.
        Path::Avx2 => unsafe {
            if flip([avx2::NT_ROWS, avx2::NT_COLS]) {
                avx2::gemm_nt(n, m, k, b, brow, a.data, Strided(a.rs), c, [1, ldc], store)
            } else {
                avx2::gemm_nt(m, n, k, a.data, Strided(a.rs), b, brow, c, [ldc, 1], store)
            }
        },
        _ => portable::gemm_nt(m, n, k, a, b, brow, c, ldc, store),
    }
}
