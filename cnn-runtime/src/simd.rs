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

/// The sum of `xs`, kept as 32 interleaved partial sums: a running total is one long chain of
/// dependent additions, which the compiler may not reorder.
///
/// ```
/// let xs: Vec<f32> = (1..=100).map(|i| i as f32).collect();
/// assert_eq!(cnn_runtime::simd::sum(&xs), 5050.0);
/// ```
pub fn sum(xs: &[f32]) -> f32 {
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

/// `out[q] = sum over t of rows[starts[t] + q]`: the sum of shifted windows of one slice. The
/// input gradient of a stride-1 convolution folds each kernel tap's product back onto the
/// padded image this way, every pixel summing the taps that read it, rather than each tap
/// adding onto overlapping stretches in turn.
///
/// # Panics
///
/// If a window, `starts[t]..starts[t] + out.len()`, does not lie inside `rows`.
///
/// ```
/// let rows = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
/// let mut out = [0.0; 2];
/// cnn_runtime::simd::sum_shifted(&rows, &[0, 4], &mut out);
/// assert_eq!(out, [1.0 + 20.0, 2.0 + 30.0]);
/// ```
pub fn sum_shifted(rows: &[f32], starts: &[usize], out: &mut [f32]) {
    let n = out.len();
    assert!(
        starts
            .iter()
            .all(|&s| s.checked_add(n).is_some_and(|end| end <= rows.len())),
        "sum_shifted: every window of {n} elements must lie inside the {} rows elements",
        rows.len()
    );
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 (checked just above); the windows were checked.
        return unsafe { sum_shifted_avx2(rows, starts, out) };
    }
    out.fill(0.0);
    for &s in starts {
        out.iter_mut().zip(&rows[s..]).for_each(|(o, r)| *o += r);
    }
}

/// [`sum_shifted`] 32 outputs at a time, in four independent sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_shifted_avx2(rows: &[f32], starts: &[usize], out: &mut [f32]) {
    use core::arch::x86_64::*;
    let n = out.len();
    let (full, rest) = (n - n % 32, n % 32);
    for q in (0..full).step_by(32) {
        let mut acc = [_mm256_setzero_ps(); 4];
        for &s in starts {
            // SAFETY: the window s..s+n lies inside rows (the caller's check) and q+32 <= n.
            unsafe {
                let p = rows.as_ptr().add(s + q);
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_add_ps(*acc, _mm256_loadu_ps(p.add(8 * v)));
                }
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            // SAFETY: q + 32 <= n = out.len().
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(q + 8 * v), *acc) };
        }
    }
    if rest > 0 {
        let tail = &mut out[full..];
        tail.fill(0.0);
        for &s in starts {
            tail.iter_mut().zip(&rows[s + full..]).for_each(|(o, r)| *o += r);
        }
    }
}

/// `y = x^T` for `x` of `rows x cols` (unit column stride, rows `x.rs` apart), `y` row-major:
/// `y[j * rows + i] = x(i, j)`. In 8x8 blocks of vector shuffles where the CPU has AVX2 (an
/// element at a time, one of the two sides is strided, and a convolution's weight took 2 us to
/// transpose that way).
///
/// # Panics
///
/// If `x` does not hold its elements, `x.cs != 1`, or `y` does not hold `rows * cols`.
///
/// ```
/// use cnn_runtime::simd::{transpose, Mat};
/// let mut y = [0.0; 6];
/// transpose(2, 3, Mat::rows(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3), &mut y);
/// assert_eq!(y, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// ```
pub fn transpose(rows: usize, cols: usize, x: Mat, y: &mut [f32]) {
    assert!(
        x.cs == 1 && x.holds(rows, cols) && y.len() == rows * cols,
        "transpose: x ({rows}x{cols}, row stride {}) and y must hold their elements, got {} and {}",
        x.rs,
        x.data.len(),
        y.len()
    );
    let (ldx, x) = (x.rs, x.data);
    #[cfg(target_arch = "x86_64")]
    let blocked = has_avx2_fma();
    #[cfg(not(target_arch = "x86_64"))]
    let blocked = false;
    let (full_r, full_c) = if blocked {
        (rows - rows % 8, cols - cols % 8)
    } else {
        (0, 0)
    };
    #[cfg(target_arch = "x86_64")]
    for i in (0..full_r).step_by(8) {
        for j in (0..full_c).step_by(8) {
            // SAFETY: the CPU supports AVX2 (blocks only then); rows i..i+8 and columns j..j+8
            // lie inside both matrices (full blocks only).
            unsafe { transpose8_avx2(x[i * ldx + j..].as_ptr(), ldx, y[j * rows + i..].as_mut_ptr(), rows) };
        }
    }
    // The edges (or everything), an element at a time.
    for i in 0..rows {
        let from = if i < full_r { full_c } else { 0 };
        for j in from..cols {
            y[j * rows + i] = x[i * ldx + j];
        }
    }
}

/// One 8x8 block of [`transpose`]: rows of `x` `ldx` apart, rows of `y` `ldy` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose8_avx2(x: *const f32, ldx: usize, y: *mut f32, ldy: usize) {
    use core::arch::x86_64::*;
    // SAFETY: the caller guarantees 8 rows of 8 elements at x (stride ldx) and at y (stride ldy).
    unsafe {
        let r: [__m256; 8] = core::array::from_fn(|i| _mm256_loadu_ps(x.add(i * ldx)));
        let t = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        let u = [
            _mm256_shuffle_ps(t[0], t[2], 0b01_00_01_00),
            _mm256_shuffle_ps(t[0], t[2], 0b11_10_11_10),
            _mm256_shuffle_ps(t[1], t[3], 0b01_00_01_00),
            _mm256_shuffle_ps(t[1], t[3], 0b11_10_11_10),
            _mm256_shuffle_ps(t[4], t[6], 0b01_00_01_00),
            _mm256_shuffle_ps(t[4], t[6], 0b11_10_11_10),
            _mm256_shuffle_ps(t[5], t[7], 0b01_00_01_00),
            _mm256_shuffle_ps(t[5], t[7], 0b11_10_11_10),
        ];
        for k in 0..4 {
            _mm256_storeu_ps(y.add(k * ldy), _mm256_permute2f128_ps(u[k], u[k + 4], 0x20));
            _mm256_storeu_ps(y.add((k + 4) * ldy), _mm256_permute2f128_ps(u[k], u[k + 4], 0x31));
        }
    }
}

/// A matrix operand: `data[i * rs + j * cs]` is element `(i, j)`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Distance between rows.
    pub rs: usize,
    /// Distance between columns.
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns (or any row stride `cols`).
    pub const fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat { data, rs: cols, cs: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub const fn transposed(data: &'a [f32], cols: usize) -> Self {
        Mat { data, rs: 1, cs: cols }
    }

    /// Whether elements `(0..m, 0..n)` lie inside `data`.
    fn holds(&self, m: usize, n: usize) -> bool {
        m == 0 || n == 0 || (m - 1) * self.rs + (n - 1) * self.cs < self.data.len()
    }
}

/// A matrix whose rows are gathered from one slice: row `p` is `data[offsets[p]..]`. The kernel
/// taps of a stride-1 convolution are such rows, each a shifted view of one padded image, so the
/// convolution needs no unfolded copy of its input.
///
/// ```
/// use cnn_runtime::simd::{gather_gemm, Gathered, Mat};
/// let image = [1.0, 2.0, 3.0, 4.0];
/// // B = [[1, 2, 3], [2, 3, 4]]: two overlapping windows of `image`.
/// let b = Gathered::new(&image, &[0, 1]);
/// let mut c = [0.0; 3];
/// gather_gemm(1, 2, 3, Mat::rows(&[1.0, 10.0], 2), b, &mut c, 3, false);
/// assert_eq!(c, [21.0, 32.0, 43.0]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Gathered<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Where each gathered vector starts in `data`.
    pub offsets: &'a [usize],
    /// How a vector's elements lie from its start, `[width, stride]`: element `e` at
    /// `(e / width) * stride + e % width`, the pixels of an image `width` wide whose rows are
    /// `stride` apart. [`Gathered::new`] makes vectors contiguous.
    pub image: [usize; 2],
}

impl<'a> Gathered<'a> {
    /// Contiguous vectors starting at `offsets` in `data`.
    pub const fn new(data: &'a [f32], offsets: &'a [usize]) -> Self {
        Gathered {
            data,
            offsets,
            image: [usize::MAX, 0],
        }
    }

    /// The same vectors read as images `width` wide (`width > 0`) whose rows are `stride`
    /// apart: the output pixels of a convolution on a padded image, whose rows are wider.
    ///
    /// ```
    /// use cnn_runtime::simd::{gather_gemm, Gathered, Mat};
    /// // A 2x3 image padded to rows of 4; B's one row is its 6 pixels, skipping the padding.
    /// let padded = [1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0, 0.0];
    /// let b = Gathered::new(&padded, &[0]).image(3, 4);
    /// let mut c = [0.0; 6];
    /// gather_gemm(1, 1, 6, Mat::rows(&[2.0], 1), b, &mut c, 6, false);
    /// assert_eq!(c, [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
    /// ```
    pub const fn image(self, width: usize, stride: usize) -> Self {
        assert!(width > 0, "Gathered::image: the width must not be zero");
        Gathered {
            image: [width, stride],
            ..self
        }
    }

    /// Whether `count` vectors of `len` elements lie inside `data`.
    fn holds(&self, count: usize, len: usize) -> bool {
        let [width, stride] = self.image;
        let reach = match len.checked_sub(1) {
            None => Some(0),
            Some(last) => (last / width)
                .checked_mul(stride)
                .and_then(|r| r.checked_add(last % width + 1)),
        };
        self.offsets.len() >= count
            && reach.is_some_and(|reach| {
                reach == 0
                    || self.offsets[..count]
                        .iter()
                        .all(|&o| o.checked_add(reach).is_some_and(|end| end <= self.data.len()))
            })
    }

    /// Whether vectors of `len` elements are whole image rows: one row, or several of `width`.
    fn whole_rows(&self, len: usize) -> bool {
        self.image[0] >= len || len.is_multiple_of(self.image[0])
    }
}

/// Panics unless `C` (`m x n`, row stride `ldc`) fits `c`; `what` names the caller.
#[track_caller]
fn check_c(what: &str, m: usize, n: usize, c: &[f32], ldc: usize) {
    assert!(
        ldc >= n && Mat::rows(c, ldc).holds(m, n),
        "{what}: C ({m}x{n}, row stride {ldc}) does not fit its {} elements",
        c.len()
    );
}

/// Panics unless `A` (`m x k`, any strides) fits its elements.
#[track_caller]
fn check_a(what: &str, a: Mat, m: usize, k: usize) {
    assert!(
        a.holds(m, k),
        "{what}: A ({m}x{k}, strides {}, {}) does not fit its {} elements",
        a.rs,
        a.cs,
        a.data.len()
    );
}

/// Panics unless `x`, operand `name` (`rows x cols`), has unit column stride and fits.
#[track_caller]
fn check_rows(what: &str, name: &str, x: Mat, rows: usize, cols: usize) {
    assert!(
        x.cs == 1 && x.holds(rows, cols),
        "{what}: {name} ({rows}x{cols}, row stride {}) does not fit its {} elements",
        x.rs,
        x.data.len()
    );
}

/// Where row `p` of a `B` operand starts: at a fixed stride, or from a table.
trait RowAt: Copy {
    fn at(&self, p: usize) -> usize;
}

#[derive(Clone, Copy)]
struct Strided(usize);

impl RowAt for Strided {
    #[inline(always)]
    fn at(&self, p: usize) -> usize {
        p * self.0
    }
}

#[derive(Clone, Copy)]
struct Table<'a>(&'a [usize]);

impl RowAt for Table<'_> {
    #[inline(always)]
    fn at(&self, p: usize) -> usize {
        self.0[p]
    }
}

/// Rows laid out as the pixels of an image `.0` wide with rows `.1` apart.
#[derive(Clone, Copy)]
struct Pixels(usize, usize);

impl RowAt for Pixels {
    #[inline(always)]
    fn at(&self, i: usize) -> usize {
        (i / self.0) * self.1 + i % self.0
    }
}

/// The `A` operand of the broadcast kernels: element `(i, p)` is
/// `data[row.at(i) + col.at(p)]`.
#[derive(Clone, Copy)]
struct Lhs<'a, R, C> {
    data: &'a [f32],
    row: R,
    col: C,
}

impl<'a> Lhs<'a, Strided, Strided> {
    fn of(a: Mat<'a>) -> Self {
        Lhs {
            data: a.data,
            row: Strided(a.rs),
            col: Strided(a.cs),
        }
    }
}

/// `C (+)= A x B` for `A: m x k` (any strides), `B: k x n` with unit column stride and row
/// stride `b.rs`, and `C: m x n` row-major with row stride `ldc`; with `accumulate` false `C` is
/// overwritten.
///
/// Tuned for the small matrices of one sample's convolution (few output channels, hundreds of
/// pixels), where a general sgemm spends its time packing; the strides let one sample's slice
/// of a channel-major batch be read and written in place.
///
/// # Panics
///
/// If an operand does not hold the elements its sizes and strides reach, or `b.cs != 1`.
///
/// ```
/// use cnn_runtime::simd::{small_gemm, Mat};
/// let mut c = [0.0; 2];
/// small_gemm(1, 2, 2, Mat::rows(&[1.0, 2.0], 2), Mat::rows(&[1.0, 2.0, 3.0, 4.0], 2), &mut c, 2, false);
/// assert_eq!(c, [7.0, 10.0]);
/// ```
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn small_gemm(m: usize, k: usize, n: usize, a: Mat, b: Mat, c: &mut [f32], ldc: usize, accumulate: bool) {
    check_a("small_gemm", a, m, k);
    check_rows("small_gemm", "B", b, k, n);
    check_c("small_gemm", m, n, c, ldc);
    gemm_dispatch(
        m,
        k,
        n,
        Lhs::of(a),
        b.data,
        Strided(b.rs),
        [usize::MAX, 0],
        c,
        [ldc, 1],
        accumulate,
    )
}

/// `C (+)= A x B` as [`small_gemm`], with the rows of `B` (`k x n`) gathered: row `p` starts at
/// `b.data[b.offsets[p]]` and, read as images, holds `n` pixels (whole image rows).
///
/// # Panics
///
/// If an operand does not hold the elements its sizes, strides and offsets reach.
#[allow(clippy::too_many_arguments)]
pub fn gather_gemm(m: usize, k: usize, n: usize, a: Mat, b: Gathered, c: &mut [f32], ldc: usize, accumulate: bool) {
    check_a("gather_gemm", a, m, k);
    assert!(
        b.holds(k, n) && b.whole_rows(n),
        "gather_gemm: B needs {k} row offsets, each with {n} elements (as images [width, stride] \
         {:?}) after it in its {} elements",
        b.image,
        b.data.len()
    );
    check_c("gather_gemm", m, n, c, ldc);
    gemm_dispatch(
        m,
        k,
        n,
        Lhs::of(a),
        b.data,
        Table(b.offsets),
        b.image,
        c,
        [ldc, 1],
        accumulate,
    )
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
///
/// ```
/// use cnn_runtime::simd::{gather_cols_gemm, Gathered, Mat};
/// let image = [1.0, 2.0, 3.0, 4.0];
/// // A = [[1, 2], [2, 3], [3, 4]]: pixels 0..3 (rows), taps at offsets 0 and 1 (columns).
/// let a = Gathered::new(&image, &[0, 1]);
/// let mut c = [0.0; 3];
/// gather_cols_gemm(3, 2, 1, a, Mat::rows(&[1.0, 10.0], 1), &mut c, [1, 3], false);
/// assert_eq!(c, [21.0, 32.0, 43.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gather_cols_gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Gathered,
    b: Mat,
    c: &mut [f32],
    cs: [usize; 2],
    accumulate: bool,
) {
    let reach = |count: usize, stride: usize| count.checked_sub(1).map_or(Some(0), |last| last.checked_mul(stride));
    assert!(
        a.holds(k, m),
        "gather_cols_gemm: A needs {k} column offsets, each with {m} elements (as images [width, \
         stride] {:?}) after it in its {} elements",
        a.image,
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
    let a = Lhs {
        data: a.data,
        row: Pixels(a.image[0], a.image[1]),
        col: Table(a.offsets),
    };
    gemm_dispatch(m, k, n, a, b.data, Strided(b.rs), [usize::MAX, 0], c, cs, accumulate)
}

/// `C (+)= A x B` with the rows of `A` gathered: row `i` starts at `a.data[a.offsets[i]]` and,
/// read as an image (`a.image`), holds `k` pixels; `B` (`k x n`) has unit column stride and `C`
/// is row-major with row stride `ldc`. The weight gradient of a stride-1 convolution, transposed:
/// each kernel tap's view of the padded input times the output gradient, pixel-major.
///
/// # Panics
///
/// If an operand does not hold the elements its sizes, strides and offsets reach, or
/// `b.cs != 1`.
///
/// ```
/// use cnn_runtime::simd::{gather_rows_gemm, Gathered, Mat};
/// // A 2x2 image in rows of 3; A's two rows are its pixels seen from offsets 0 and 1.
/// let padded = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let a = Gathered::new(&padded, &[0, 1]).image(2, 3);
/// let mut c = [0.0; 2];
/// gather_rows_gemm(2, 4, 1, a, Mat::rows(&[1.0; 4], 1), &mut c, 1, false);
/// assert_eq!(c, [1.0 + 2.0 + 4.0 + 5.0, 2.0 + 3.0 + 5.0 + 6.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gather_rows_gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Gathered,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    assert!(
        a.holds(m, k),
        "gather_rows_gemm: A needs {m} row offsets, each with {k} elements (as images [width, \
         stride] {:?}) after it in its {} elements",
        a.image,
        a.data.len()
    );
    check_rows("gather_rows_gemm", "B", b, k, n);
    check_c("gather_rows_gemm", m, n, c, ldc);
    // The pixels' offsets, a table of them at a time (no division in the kernel's loop).
    const PIXELS: usize = 512;
    let pixels = Pixels(a.image[0], a.image[1]);
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
        let rows = &b.data[(p0 * b.rs).min(b.data.len())..];
        gemm_dispatch(
            m,
            kc,
            n,
            lhs,
            rows,
            Strided(b.rs),
            [usize::MAX, 0],
            c,
            [ldc, 1],
            accumulate || p0 > 0,
        );
        p0 += kc;
        if p0 >= k {
            return;
        }
    }
}

/// The checked operands of [`small_gemm`], [`gather_gemm`] or [`gather_cols_gemm`] to the
/// fastest path this CPU has. Columns `j` of `B` lie at `(j / w) * s + j % w` for
/// `bimage = [w, s]`, in whole rows of `w`; `C(i, j)` is `c[i * cs[0] + j * cs[1]]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_dispatch(
    m: usize,
    k: usize,
    n: usize,
    a: Lhs<impl RowAt, impl RowAt>,
    b: &[f32],
    brow: impl RowAt,
    bimage: [usize; 2],
    c: &mut [f32],
    cs: [usize; 2],
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above); the operands were checked.
        return unsafe { small_gemm_avx2(m, k, n, a, b, brow, bimage, c, cs, accumulate) };
    }
    small_gemm_body::<false>(m, k, n, a, b, brow, bimage, c, cs, accumulate)
}

/// `C (+)= A x B^T` where `A: m x k` and `B: n x k` are row-major with row strides `a.rs` and
/// `b.rs` (unit column strides), and `C: m x n` has row stride `ldc`: every entry a dot product
/// of a row of `A` with a row of `B`. The weight gradient of a convolution, `dy x cols^T`.
///
/// # Panics
///
/// If an operand does not hold the elements its sizes and strides reach, or a column stride
/// is not 1.
///
/// ```
/// use cnn_runtime::simd::{small_gemm_nt, Mat};
/// let mut c = [0.0; 1];
/// small_gemm_nt(1, 1, 3, Mat::rows(&[1.0, 2.0, 3.0], 3), Mat::rows(&[1.0, 1.0, 1.0], 3), &mut c, 1, false);
/// assert_eq!(c, [6.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn small_gemm_nt(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], ldc: usize, accumulate: bool) {
    check_rows("small_gemm_nt", "A", a, m, k);
    check_rows("small_gemm_nt", "B", b, n, k);
    check_c("small_gemm_nt", m, n, c, ldc);
    gemm_nt_dispatch(m, n, k, a, b.data, Strided(b.rs), c, ldc, accumulate)
}

/// `C (+)= A x B^T` as [`small_gemm_nt`], with the rows of `B` (`n x k`) gathered: row `j` is
/// `b.data[b.offsets[j]..][..k]`. The weight gradient of a stride-1 convolution: output
/// gradient times shifted views of the input.
///
/// # Panics
///
/// If an operand does not hold the elements its sizes, strides and offsets reach, or `a.cs != 1`.
///
/// ```
/// use cnn_runtime::simd::{gather_gemm_nt, Gathered, Mat};
/// let image = [1.0, 2.0, 3.0, 4.0];
/// let b = Gathered::new(&image, &[0, 1]); // rows [1, 2, 3] and [2, 3, 4]
/// let mut c = [0.0; 2];
/// gather_gemm_nt(1, 2, 3, Mat::rows(&[1.0, 1.0, 1.0], 3), b, &mut c, 2, false);
/// assert_eq!(c, [6.0, 9.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gather_gemm_nt(m: usize, n: usize, k: usize, a: Mat, b: Gathered, c: &mut [f32], ldc: usize, accumulate: bool) {
    check_rows("gather_gemm_nt", "A", a, m, k);
    assert!(
        b.holds(n, k),
        "gather_gemm_nt: B needs {n} row offsets, each with {k} contiguous elements after it in its {} \
         elements",
        b.data.len()
    );
    assert!(
        b.image[0] >= k,
        "gather_gemm_nt: the rows of B must be contiguous, got images {:?}",
        b.image
    );
    check_c("gather_gemm_nt", m, n, c, ldc);
    gemm_nt_dispatch(m, n, k, a, b.data, Table(b.offsets), c, ldc, accumulate)
}

/// The checked operands of [`small_gemm_nt`] or [`gather_gemm_nt`] to the fastest path.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_nt_dispatch(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: &[f32],
    brow: impl RowAt,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // C or, when its blocks tile better, C^T = B x A^T.
        let blocks = |m: usize, n: usize| m.div_ceil(NT_ROWS) * n.div_ceil(NT_COLS);
        // SAFETY: the CPU supports AVX2 and FMA (checked just above); the operands were
        // checked, in either orientation.
        return unsafe {
            if blocks(n, m) < blocks(m, n) {
                small_gemm_nt_avx2(n, m, k, b, brow, a.data, Strided(a.rs), c, [1, ldc], accumulate)
            } else {
                small_gemm_nt_avx2(m, n, k, a.data, Strided(a.rs), b, brow, c, [ldc, 1], accumulate)
            }
        };
    }
    small_gemm_nt_body(m, n, k, a, b, brow, c, ldc, accumulate)
}

/// The portable path of [`small_gemm_nt`] and [`gather_gemm_nt`]: one dot product per entry.
#[allow(clippy::too_many_arguments)]
fn small_gemm_nt_body(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: &[f32],
    brow: impl RowAt,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    for i in 0..m {
        let arow = &a.data[i * a.rs..][..k];
        for j in 0..n {
            let d = dot_body::<false>(arow, &b[brow.at(j)..][..k]);
            let out = &mut c[i * ldc + j];
            *out = if accumulate { *out + d } else { d };
        }
    }
}

/// Rows and columns of C in a block of [`small_gemm_nt_avx2`]: 12 accumulators, 3 rows of A and
/// a row of B in flight, all 16 AVX registers and no spills.
const NT_ROWS: usize = 3;
const NT_COLS: usize = 4;

/// [`small_gemm_nt`] in blocks of up to 3 x 4 entries of C: each step loads a row segment of 8
/// from each of the block's rows of A and of B, for up to 12 FMAs; the accumulators are summed
/// across lanes at the end, and the last step of a row is masked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_gemm_nt_avx2(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    arow: impl RowAt,
    b: &[f32],
    brow: impl RowAt,
    c: &mut [f32],
    cstride: [usize; 2],
    accumulate: bool,
) {
    /// The `R x S` block function for the `(rows, cols)` given at run time.
    macro_rules! block {
        ($rows:expr, $cols:expr, $($r:literal)+ ; $($s:literal)+) => {
            block!(@rows $rows, $cols, [$($s)+], $($r)+)
        };
        (@rows $rows:expr, $cols:expr, $ss:tt, $($r:literal)+) => {
            match $rows {
                $($r => block!(@cols $r, $cols, $ss),)+
                _ => unreachable!(),
            }
        };
        (@cols $r:literal, $cols:expr, [$($s:literal)+]) => {
            match $cols {
                $($s => nt_block_avx2::<$r, $s>,)+
                _ => unreachable!(),
            }
        };
    }
    let mut i = 0;
    while i < m {
        let rows = NT_ROWS.min(m - i);
        let mut j = 0;
        while j < n {
            let cols = NT_COLS.min(n - j);
            let run = block!(rows, cols, 1 2 3; 1 2 3 4);
            // The block's rows of A and of B; past the block's size, repeats of its last row.
            let arows = core::array::from_fn(|r| a[arow.at(i + r.min(rows - 1))..].as_ptr());
            let brows = core::array::from_fn(|s| b[brow.at(j + s.min(cols - 1))..].as_ptr());
            let out = &mut c[i * cstride[0] + j * cstride[1]..];
            // SAFETY: the rows of A and B hold k elements, C holds the block (the caller's
            // checks); the CPU has AVX2 and FMA (this function's contract).
            unsafe { run(k, arows, brows, out, cstride, accumulate) };
            j += cols;
        }
        i += rows;
    }
}

/// One `R x S` block of [`small_gemm_nt_avx2`]: `out[r * cstride[0] + s * cstride[1]]` (+)= the
/// dot product of `k` elements from `arows[r]` and from `brows[s]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn nt_block_avx2<const R: usize, const S: usize>(
    k: usize,
    arows: [*const f32; NT_ROWS],
    brows: [*const f32; NT_COLS],
    out: &mut [f32],
    cstride: [usize; 2],
    accumulate: bool,
) {
    use core::arch::x86_64::*;
    let full_k = k - k % 8;
    let tail = k - full_k;
    let mask = {
        let on = |l: usize| if l < tail { -1i32 } else { 0 };
        _mm256_setr_epi32(on(0), on(1), on(2), on(3), on(4), on(5), on(6), on(7))
    };
    let arows: [*const f32; R] = core::array::from_fn(|r| arows[r]);
    let brows: [*const f32; S] = core::array::from_fn(|s| brows[s]);
    let mut acc = [[_mm256_setzero_ps(); S]; R];
    let mut p = 0;
    // The rows of B are loaded one at a time so that 12 accumulators, 3 rows of A and one of B
    // fit the registers.
    while p < full_k {
        // SAFETY: the rows hold k elements from their starts (the caller's checks) and a full
        // step reads p..p+8 <= k.
        unsafe {
            let av = arows.map(|ptr| _mm256_loadu_ps(ptr.add(p)));
            for s in 0..S {
                let bv = _mm256_loadu_ps(brows[s].add(p));
                for r in 0..R {
                    acc[r][s] = _mm256_fmadd_ps(av[r], bv, acc[r][s]);
                }
            }
        }
        p += 8;
    }
    if tail > 0 {
        // SAFETY: as above; the mask keeps the last step below k.
        unsafe {
            let av = arows.map(|ptr| _mm256_maskload_ps(ptr.add(p), mask));
            for s in 0..S {
                let bv = _mm256_maskload_ps(brows[s].add(p), mask);
                for r in 0..R {
                    acc[r][s] = _mm256_fmadd_ps(av[r], bv, acc[r][s]);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (s, v) in acc.iter().enumerate() {
            // Lanes summed pairwise: (0+4, 1+5, 2+6, 3+7), then within the quad.
            let quad = _mm_add_ps(_mm256_castps256_ps128(*v), _mm256_extractf128_ps(*v, 1));
            let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
            let sum = _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)));
            let out = &mut out[r * cstride[0] + s * cstride[1]];
            *out = if accumulate { *out + sum } else { sum };
        }
    }
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
#[inline]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Without std there is no run-time detection: the AVX2 path runs when the build enables it.
#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
#[inline]
fn has_avx2_fma() -> bool {
    cfg!(all(target_feature = "avx2", target_feature = "fma"))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use core::arch::x86_64::*;
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 32 <= n and both slices hold n elements, so lanes i+8r..i+8r+8 exist.
            let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i + 8 * r)), _mm256_loadu_ps(pb.add(i + 8 * r))) };
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n and both slices hold n elements.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += 8;
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
    let mut sum = lanes.iter().sum::<f32>();
    for j in i..n {
        sum = crate::math::mul_add(a[j], b[j], sum);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_gemm_avx2(
    m: usize,
    k: usize,
    n: usize,
    a: Lhs<impl RowAt, impl RowAt>,
    b: &[f32],
    brow: impl RowAt,
    bimage: [usize; 2],
    c: &mut [f32],
    cs: [usize; 2],
    accumulate: bool,
) {
    if k == 0 {
        return small_gemm_body::<true>(m, k, n, a, b, brow, bimage, c, cs, accumulate);
    }
    // Masked loads are slow: a block short of 16 columns reads all 16 when every row of B has
    // them inside `b` (the extra lanes, past the block, are never stored).
    let last_row = (0..k).map(|p| brow.at(p)).max().unwrap_or(0);
    // Blocks of at most MR rows, as even as can be: 10 rows as 5 + 5 rather than 6 + 4.
    let mut blocks = m.div_ceil(MR);
    let mut i = 0;
    while i < m {
        let rows = (m - i).div_ceil(blocks);
        blocks -= 1;
        let c = &mut c[i * cs[0]..];
        // SAFETY: A holds rows i..i+rows at each of its k columns, C `rows` rows of n at strides
        // cs from here, every row of B n columns (checked by the caller); the CPU has AVX2 and
        // FMA (this function's contract).
        unsafe {
            match rows {
                6 => gemm_rows_avx2::<6>(k, n, a, i, b, brow, last_row, bimage, c, cs, accumulate),
                5 => gemm_rows_avx2::<5>(k, n, a, i, b, brow, last_row, bimage, c, cs, accumulate),
                4 => gemm_rows_avx2::<4>(k, n, a, i, b, brow, last_row, bimage, c, cs, accumulate),
                3 => gemm_rows_avx2::<3>(k, n, a, i, b, brow, last_row, bimage, c, cs, accumulate),
                2 => gemm_rows_avx2::<2>(k, n, a, i, b, brow, last_row, bimage, c, cs, accumulate),
                _ => gemm_rows_avx2::<1>(k, n, a, i, b, brow, last_row, bimage, c, cs, accumulate),
            }
        }
        i += rows;
    }
}

/// Rows `i0..i0 + R` of C (`c` starts at row `i0`), in blocks of up to 16 columns within each
/// image row of B's columns; a block short of 16 is masked. `last_row` is the largest offset of
/// a row of B. With a column stride of C other
/// than 1 the results are scattered element by element.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_rows_avx2<const R: usize>(
    k: usize,
    n: usize,
    a: Lhs<impl RowAt, impl RowAt>,
    i0: usize,
    b: &[f32],
    brow: impl RowAt,
    last_row: usize,
    bimage: [usize; 2],
    c: &mut [f32],
    cs: [usize; 2],
    accumulate: bool,
) {
    use core::arch::x86_64::*;
    let arows: [*const f32; R] = core::array::from_fn(|r| a.data[a.row.at(i0 + r)..].as_ptr());
    let width = bimage[0].min(n).max(1);
    for (jb, jc) in (0..n / width).map(|g| (g * bimage[1], g * width)) {
        let mut jj = 0;
        while jj < width {
            let cols = NR.min(width - jj);
            // B's columns from jb + jj, C's from j.
            let j = jc + jj;
            // Lane l of mask v is on when column j + 8v + l exists.
            let lane = |v: usize| {
                let on = |l: usize| if 8 * v + l < cols { -1i32 } else { 0 };
                _mm256_setr_epi32(on(0), on(1), on(2), on(3), on(4), on(5), on(6), on(7))
            };
            let (m0, m1) = (lane(0), lane(1));
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            let bj = b[jb + jj..].as_ptr();
            if cols == NR || last_row + jb + jj + NR <= b.len() {
                for p in 0..k {
                    // SAFETY: A holds R rows at each of its k columns and every row of B its n
                    // columns (the caller's checks), so these 16 columns of row p exist, or
                    // lie inside `b` (checked just above).
                    unsafe {
                        let row = bj.add(brow.at(p));
                        let (b0, b1) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)));
                        let ap = a.col.at(p);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let av = _mm256_broadcast_ss(&*arows[r].add(ap));
                            acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                            acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                        }
                    }
                }
            } else {
                for p in 0..k {
                    // SAFETY: as above; the masks keep the loads inside the block's columns.
                    unsafe {
                        let row = bj.add(brow.at(p));
                        let b0 = _mm256_maskload_ps(row, m0);
                        let b1 = if cols > 8 {
                            _mm256_maskload_ps(row.add(8), m1)
                        } else {
                            _mm256_setzero_ps()
                        };
                        let ap = a.col.at(p);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let av = _mm256_broadcast_ss(&*arows[r].add(ap));
                            acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                            acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                        }
                    }
                }
            }
            if cs[1] != 1 {
                for (r, acc) in acc.iter().enumerate() {
                    let mut lanes = [0.0f32; NR];
                    // SAFETY: `lanes` holds two vectors.
                    unsafe {
                        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[0]);
                        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc[1]);
                    }
                    for (l, v) in lanes[..cols].iter().enumerate() {
                        let out = &mut c[r * cs[0] + (j + l) * cs[1]];
                        *out = if accumulate { *out + v } else { *v };
                    }
                }
            } else {
                for (r, acc) in acc.iter().enumerate() {
                    // SAFETY: row r of C has n columns from r * cs[0]; the masks keep the
                    // accesses to j..j+cols.
                    unsafe {
                        let out = c.as_mut_ptr().add(r * cs[0] + j);
                        let (mut v0, mut v1) = (acc[0], acc[1]);
                        if cols == NR {
                            if accumulate {
                                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(out));
                                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(out.add(8)));
                            }
                            _mm256_storeu_ps(out, v0);
                            _mm256_storeu_ps(out.add(8), v1);
                        } else {
                            // Masked stores are slower still: through an array.
                            let mut lanes = [0.0f32; NR];
                            _mm256_storeu_ps(lanes.as_mut_ptr(), v0);
                            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), v1);
                            let out = core::slice::from_raw_parts_mut(out, cols);
                            for (o, v) in out.iter_mut().zip(&lanes) {
                                *o = if accumulate { *o + v } else { *v };
                            }
                        }
                    }
                }
            }
            jj += cols;
        }
    }
}

/// `a * b + c`, fused where the CPU has FMA (without it, `mul_add` is a slow library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        crate::math::mul_add(a, b, c)
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

/// Rows of C per register block: with two vectors a row, 12 of the 16 AVX registers.
const MR: usize = 6;
/// Columns of C per register block: two 8-lane vectors.
const NR: usize = 16;

/// The portable path of [`small_gemm`], [`gather_gemm`] and [`gather_cols_gemm`]: the same
/// blocking, in plain Rust.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn small_gemm_body<const FMA: bool>(
    m: usize,
    k: usize,
    n: usize,
    a: Lhs<impl RowAt, impl RowAt>,
    b: &[f32],
    brow: impl RowAt,
    bimage: [usize; 2],
    c: &mut [f32],
    cs: [usize; 2],
    accumulate: bool,
) {
    let width = bimage[0].min(n).max(1);
    let mut i = 0;
    while i < m {
        let rows = MR.min(m - i);
        for (jb, jc) in (0..n / width).map(|g| (g * bimage[1], g * width)) {
            let mut jj = 0;
            while jj < width {
                let cols = NR.min(width - jj);
                let mut acc = [[0.0f32; NR]; MR];
                for p in 0..k {
                    let brow = &b[brow.at(p) + jb + jj..][..cols];
                    let ap = a.col.at(p);
                    for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                        let av = a.data[a.row.at(i + r) + ap];
                        for (l, &bv) in brow.iter().enumerate() {
                            acc[l] = madd::<FMA>(av, bv, acc[l]);
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate().take(rows) {
                    for (l, v) in acc[..cols].iter().enumerate() {
                        let out = &mut c[(i + r) * cs[0] + (jc + jj + l) * cs[1]];
                        *out = if accumulate { *out + v } else { *v };
                    }
                }
                jj += cols;
            }
        }
        i += rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_all_close, seq};

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
                        small_gemm(m, k, n, Mat::rows(&a, k), Mat::rows(&b, n), &mut fast, n, accumulate);
                        let mut portable = init.clone();
                        let lhs = Lhs::of(Mat::rows(&a, k));
                        let whole = [usize::MAX, 0];
                        small_gemm_body::<false>(
                            m,
                            k,
                            n,
                            lhs,
                            &b,
                            Strided(n),
                            whole,
                            &mut portable,
                            [n, 1],
                            accumulate,
                        );
                        assert_all_close(&format!("{m}x{k}x{n}"), &want, &[&fast, &portable], 1e-4);
                    }
                }
            }
        }
    }

    #[test]
    fn strided_operands_read_and_write_in_place() {
        // A transposed (strides 1, m), B and C with padded rows: the same numbers as packed.
        let (m, k, n) = (5, 7, 19);
        let a = seq(m * k, 0.3); // row-major m x k
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect(); // k x m
        let b = seq(k * n, 0.6);
        let ldb = n + 3;
        let mut bpad = vec![f32::NAN; k * ldb];
        for p in 0..k {
            bpad[p * ldb..][..n].copy_from_slice(&b[p * n..][..n]);
        }
        let mut packed = vec![0.0; m * n];
        small_gemm(m, k, n, Mat::rows(&a, k), Mat::rows(&b, n), &mut packed, n, false);
        let ldc = n + 5;
        let mut strided = vec![-7.0; (m - 1) * ldc + n];
        small_gemm(
            m,
            k,
            n,
            Mat::transposed(&at, m),
            Mat::rows(&bpad, ldb),
            &mut strided,
            ldc,
            false,
        );
        for i in 0..m {
            assert_eq!(&strided[i * ldc..][..n], &packed[i * n..][..n]);
            if i + 1 < m {
                assert!(
                    strided[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == -7.0),
                    "padding untouched"
                );
            }
        }
        // And A x B^T: C = A x (B^T)^T with B^T given row-major as n x k.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut nt = vec![0.0; m * n];
        small_gemm_nt(m, n, k, Mat::rows(&a, k), Mat::rows(&bt, k), &mut nt, n, false);
        for (x, y) in nt.iter().zip(&packed) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    #[test]
    fn small_gemm_nt_agrees_with_the_definition() {
        for m in [1, 3, 4, 5, 9] {
            for n in [1, 4, 6, 13] {
                for k in [0, 1, 7, 8, 9, 31, 100] {
                    let (a, b) = (seq(m * k, 0.4), seq(n * k, 1.1));
                    let mut got = seq(m * n, 2.0);
                    let mut want = got.clone();
                    small_gemm_nt(m, n, k, Mat::rows(&a, k), Mat::rows(&b, k), &mut got, n, true);
                    for i in 0..m {
                        for j in 0..n {
                            want[i * n + j] += (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum::<f32>();
                        }
                    }
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() < 1e-4, "{m}x{n}x{k}: {g} vs {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn gathered_rows_agree_with_the_definition() {
        // Rows of B are overlapping windows of one slice, at irregular offsets, as the taps of
        // a convolution read them: contiguous, or images [width, stride] (n a whole number of
        // rows, among them rows of one full and one masked block).
        let data = seq(400, 0.8);
        let shapes = [1, 4, 15, 16, 33].map(|n| (n, [usize::MAX, 0])).into_iter().chain([
            (12, [4, 7]),
            (84, [28, 32]),
            (30, [10, 14]),
        ]);
        for (n, image) in shapes {
            let at = |j: usize| (j / image[0]) * image[1] + j % image[0];
            for m in [1, 2, 5, 6, 7, 13] {
                for k in [1, 3, 8, 9, 25] {
                    let offsets: Vec<usize> = (0..k).map(|p| (p * 37 + p * p) % 200).collect();
                    let a = seq(m * k, 0.25);
                    let init = seq(m * n, 1.5);
                    // C = A x B, B: k x n with row p at offsets[p].
                    let b = Gathered::new(&data, &offsets).image(image[0], image[1]);
                    let mut want = init.clone();
                    for i in 0..m {
                        for j in 0..n {
                            want[i * n + j] += (0..k).map(|p| a[i * k + p] * data[offsets[p] + at(j)]).sum::<f32>();
                        }
                    }
                    let mut fast = init.clone();
                    gather_gemm(m, k, n, Mat::rows(&a, k), b, &mut fast, n, true);
                    let mut portable = init.clone();
                    let lhs = Lhs::of(Mat::rows(&a, k));
                    small_gemm_body::<false>(m, k, n, lhs, &data, Table(&offsets), image, &mut portable, [n, 1], true);
                    assert_all_close(&format!("{m}x{k}x{n} {image:?}"), &want, &[&fast, &portable], 1e-3);
                }
            }
        }
        // C = A x B^T, B: n x k with row j at offsets[j], contiguous.
        for m in [1, 2, 5, 6, 7, 13] {
            for k in [1, 3, 8, 9, 25] {
                for n in [1, 4, 15, 16, 33] {
                    let offsets: Vec<usize> = (0..n).map(|p| (p * 37 + p * p) % 300).collect();
                    let a = seq(m * k, 0.25);
                    let init = seq(m * n, 1.5);
                    let b = Gathered::new(&data, &offsets);
                    let mut want = init.clone();
                    for i in 0..m {
                        for j in 0..n {
                            want[i * n + j] += (0..k).map(|p| a[i * k + p] * data[offsets[j] + p]).sum::<f32>();
                        }
                    }
                    let mut fast = init.clone();
                    gather_gemm_nt(m, n, k, Mat::rows(&a, k), b, &mut fast, n, true);
                    let mut portable = init.clone();
                    let a = Mat::rows(&a, k);
                    small_gemm_nt_body(m, n, k, a, &data, Table(&offsets), &mut portable, n, true);
                    assert_all_close(&format!("nt {m}x{n}x{k}"), &want, &[&fast, &portable], 1e-3);
                }
            }
        }
    }

    #[test]
    fn gathered_columns_and_strided_output_agree_with_the_definition() {
        // Column p of A at offsets[p], its m rows the pixels of an image [width, stride];
        // written into C transposed (column stride ldc).
        let data = seq(400, 0.45);
        for (m, image) in [
            (1, [1, 1]),
            (5, [5, 9]),
            (6, [7, 9]),
            (10, [100, 0]),
            (20, [10, 14]),
            (7, [3, 5]),
        ] {
            let at = |i: usize| (i / image[0]) * image[1] + i % image[0];
            for k in [1, 4, 25, 150] {
                for n in [1, 8, 16, 21] {
                    let offsets: Vec<usize> = (0..k).map(|p| (p * 13 + p * p * 7) % 300).collect();
                    let b = seq(k * n, 0.15);
                    let ldc = m + 2;
                    let init = seq(n * ldc, 0.5);
                    let mut want = init.clone();
                    for i in 0..m {
                        for j in 0..n {
                            want[i + j * ldc] += (0..k).map(|p| data[offsets[p] + at(i)] * b[p * n + j]).sum::<f32>();
                        }
                    }
                    let a = Gathered::new(&data, &offsets).image(image[0], image[1]);
                    let mut fast = init.clone();
                    gather_cols_gemm(m, k, n, a, Mat::rows(&b, n), &mut fast, [1, ldc], true);
                    let lhs = Lhs {
                        data: &data,
                        row: Pixels(image[0], image[1]),
                        col: Table(&offsets),
                    };
                    let mut portable = init.clone();
                    let whole = [usize::MAX, 0];
                    small_gemm_body::<false>(m, k, n, lhs, &b, Strided(n), whole, &mut portable, [1, ldc], true);
                    assert_all_close(&format!("{m}x{k}x{n} {image:?}"), &want, &[&fast, &portable], 1e-3);
                }
            }
        }
    }

    #[test]
    fn gathered_image_rows_agree_with_the_definition() {
        // A(i, p) = data[offsets[i] + pixel p of an image [width, stride]]; k past one table of
        // pixel offsets (512) too.
        let data = seq(1400, 0.65);
        for (k, image) in [
            (0, [1, 1]),
            (1, [1, 1]),
            (100, [10, 14]),
            (600, [30, 33]),
            (37, [usize::MAX, 0]),
        ] {
            let at = |p: usize| (p / image[0]) * image[1] + p % image[0];
            for m in [1, 6, 25] {
                for n in [6, 16] {
                    let offsets: Vec<usize> = (0..m).map(|i| (i * 7) % 60).collect();
                    let b = seq(k * n, 0.95);
                    for accumulate in [false, true] {
                        let init = seq(m * n, 0.05);
                        let mut want = init.clone();
                        for i in 0..m {
                            for j in 0..n {
                                let s: f32 = (0..k).map(|p| data[offsets[i] + at(p)] * b[p * n + j]).sum();
                                want[i * n + j] = if accumulate { want[i * n + j] + s } else { s };
                            }
                        }
                        let mut got = init.clone();
                        let a = Gathered::new(&data, &offsets).image(image[0], image[1]);
                        gather_rows_gemm(m, k, n, a, Mat::rows(&b, n), &mut got, n, accumulate);
                        for (g, w) in got.iter().zip(&want) {
                            assert!(
                                (g - w).abs() < 1e-2 * w.abs().max(1.0),
                                "{m}x{k}x{n} {image:?}: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn transpose_matches_the_definition() {
        for (rows, cols) in [(0, 3), (1, 1), (8, 8), (16, 150), (9, 17), (3, 20), (24, 7)] {
            // Rows 3 further apart than their length.
            let ldx = cols + 3;
            let x = seq(rows * ldx, 0.2);
            let mut y = vec![f32::NAN; rows * cols];
            transpose(rows, cols, Mat::rows(&x, ldx), &mut y);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(y[j * rows + i], x[i * ldx + j], "{rows}x{cols} at ({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn shifted_windows_sum_as_defined() {
        let rows = seq(300, 0.55);
        for n in [0, 1, 8, 31, 32, 33, 100] {
            for starts in [vec![], vec![5], vec![0, 7, 3, 150, 199]] {
                let mut out = vec![f32::NAN; n];
                sum_shifted(&rows, &starts, &mut out);
                for (q, got) in out.iter().enumerate() {
                    let want: f32 = starts.iter().map(|&s| rows[s + q]).sum();
                    assert!((got - want).abs() < 1e-5, "n={n} {starts:?} [{q}]: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "sum_shifted: every window of 3 elements must lie inside the 4 rows elements")]
    fn sum_shifted_rejects_a_window_past_the_end() {
        sum_shifted(&[0.0; 4], &[0, 2], &mut [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "gather_cols_gemm: C (2x2, strides 1, 3) does not fit its 4 elements")]
    fn gather_cols_gemm_rejects_a_short_output() {
        let a = Gathered::new(&[0.0; 4], &[0]);
        gather_cols_gemm(2, 1, 2, a, Mat::rows(&[0.0; 2], 2), &mut [0.0; 4], [1, 3], false);
    }

    #[test]
    #[should_panic(expected = "gather_gemm: B needs 2 row offsets, each with 3 elements")]
    fn gather_gemm_rejects_an_offset_past_the_end() {
        let b = Gathered::new(&[0.0; 4], &[0, 2]);
        gather_gemm(1, 2, 3, Mat::rows(&[0.0; 2], 2), b, &mut [0.0; 3], 3, false);
    }

    #[test]
    #[should_panic(
        expected = "gather_gemm: B needs 1 row offsets, each with 6 elements (as images [width, stride] [4, 4])"
    )]
    fn gather_gemm_rejects_rows_that_are_not_whole_image_rows() {
        let b = Gathered::new(&[0.0; 8], &[0]).image(4, 4);
        gather_gemm(1, 1, 6, Mat::rows(&[0.0; 1], 1), b, &mut [0.0; 6], 6, false);
    }

    #[test]
    #[should_panic(expected = "small_gemm: C (2x3, row stride 3) does not fit its 5 elements")]
    fn small_gemm_rejects_a_short_output() {
        small_gemm(
            2,
            1,
            3,
            Mat::rows(&[0.0; 2], 1),
            Mat::rows(&[0.0; 3], 3),
            &mut [0.0; 5],
            3,
            false,
        );
    }

    #[test]
    #[should_panic(expected = "dot: the vectors differ in length, 2 and 3")]
    fn dot_rejects_different_lengths() {
        dot(&[0.0; 2], &[0.0; 3]);
    }
}
