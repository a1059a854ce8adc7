//! The AVX-512 path: 16-lane vectors, 32 registers, masked loads and stores.
//!
//! Every function here is `unsafe` for one reason, stated once: it is compiled with
//! `#[target_feature(enable = "avx512f,avx2,fma")]`, so the CPU must have AVX-512F (an
//! [`Isa`](super::Isa) of this path says so; every such CPU also has AVX2 and FMA). What each
//! one reads and writes is checked by the safe entry points in `simd/mod.rs` before the call;
//! each `# Safety` section says what those checks must guarantee. Masked loads read nothing
//! past the lanes their mask turns on, so the edges of a block need no copies.

use core::arch::x86_64::*;

use super::blocks;
use super::operands::{Finish, Lhs, Rhs, RowAt, Store, Strides, Unit};
use super::portable;

/// Rows of C per register block of [`gemm`]: with two vectors a row, 24 of the 32 registers
/// hold sums, and two hold the row of B.
const MR: usize = 12;
/// Lanes of a vector.
const L: usize = 16;

/// Rows and columns of C in a block of [`gemm_nt`]: 16 accumulators, 4 rows of A and a row of
/// B in flight.
pub const NT_ROWS: usize = 4;
pub const NT_COLS: usize = 4;

/// The lanes below `n` (at most 16) on.
#[inline(always)]
fn first(n: usize) -> __mmask16 {
    if n >= L {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// `C (+)= A x B`, each entry finished as `finish` says (as it is stored, in registers):
/// element `(i, p)` of A broadcast against 16 or 32 columns of row `p` of B,
/// in blocks of up to 12 rows within each image row of B's columns (one vector a row when the
/// image rows are at most 16 wide, two otherwise). Where A's rows are the pixels of image rows
/// of at most 12 (the product by pixels of an 8x8 layer), a block is one such row, which the
/// kernel reaches from one pointer: ResNet-8's batch-1 inference 459 -> 437 us, batch 64
/// 2,638 -> 2,706 img/s (`CNN_BENCH_CPU_TIME=1 bench --json --net resnet8 --threads 1
/// --only b1|b64`, medians of 6 and 5 interleaved runs, Intel Xeon with AVX-512).
///
/// # Safety
///
/// The CPU has AVX-512F; A holds `(m, k)` at its row and column positions; each of the `k`
/// rows of B holds its `n` columns (whole image rows as `b.spread` says) inside `b.data`; `C`
/// reaches `(m, n)` at strides `cs` inside `c`, and so does `finish`'s residual; its bias
/// holds `m` entries.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
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
    if k == 0 {
        return portable::gemm(m, k, n, a, b, c, cs, store, finish);
    }
    // One vector a block when a block is one short image row; narrow rows otherwise go two to
    // a block (see `gemm_rows`), so that each broadcast of A feeds two multiply-adds.
    let (width, _) = b.spread.rows(n);
    let one_vector = width <= L && n <= width;
    // Blocks of at most MR rows, as even as can be: 16 rows as 8 + 8 rather than 12 + 4; or,
    // where A's rows come in runs of at most MR (the pixels of an image row), a run a block.
    let run = a.row.run().filter(|&run| run <= MR && m.is_multiple_of(run));
    let mut blocks = m.div_ceil(MR);
    let mut i = 0;
    while i < m {
        let rows = match run {
            Some(run) => run,
            None => (m - i).div_ceil(blocks),
        };
        blocks = blocks.saturating_sub(1);
        let (c, f) = (&mut c[i * cs[0]..], finish.rows_on(i, cs[0]));
        /// `gemm_rows::<rows, vectors>` for the rows of this block.
        macro_rules! rows {
            ($v:literal) => {
                match rows {
                    12 => gemm_rows::<12, $v>(k, n, a, i, b, c, cs, store, f),
                    11 => gemm_rows::<11, $v>(k, n, a, i, b, c, cs, store, f),
                    10 => gemm_rows::<10, $v>(k, n, a, i, b, c, cs, store, f),
                    9 => gemm_rows::<9, $v>(k, n, a, i, b, c, cs, store, f),
                    8 => gemm_rows::<8, $v>(k, n, a, i, b, c, cs, store, f),
                    7 => gemm_rows::<7, $v>(k, n, a, i, b, c, cs, store, f),
                    6 => gemm_rows::<6, $v>(k, n, a, i, b, c, cs, store, f),
                    5 => gemm_rows::<5, $v>(k, n, a, i, b, c, cs, store, f),
                    4 => gemm_rows::<4, $v>(k, n, a, i, b, c, cs, store, f),
                    3 => gemm_rows::<3, $v>(k, n, a, i, b, c, cs, store, f),
                    2 => gemm_rows::<2, $v>(k, n, a, i, b, c, cs, store, f),
                    _ => gemm_rows::<1, $v>(k, n, a, i, b, c, cs, store, f),
                }
            };
        }
        // SAFETY: A holds rows i..i+rows at each of its k columns, C `rows` rows of n at strides
        // cs from here, every row of B n columns (the contract); the CPU has AVX-512F.
        unsafe {
            if one_vector {
                rows!(1)
            } else {
                rows!(2)
            }
        }
        i += rows;
    }
}

/// Rows `i0..i0 + R` of C (`c` starts at row `i0`), in blocks of up to `16 V` columns within
/// each image row of B's columns, or, with two vectors and image rows of at most 16 columns,
/// of two image rows (a vector each); the last block of a row is masked. With a column stride
/// of C other than 1 the results are scattered element by element.
///
/// # Safety
///
/// As [`gemm`], for rows `i0..i0 + R` of A and the rows of C from `c`'s start.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_rows<const R: usize, const V: usize>(
    k: usize,
    n: usize,
    a: Lhs<impl RowAt, impl RowAt>,
    i0: usize,
    b: Rhs<impl RowAt>,
    c: &mut [f32],
    cs: Strides,
    store: Store,
    finish: Finish,
) {
    let arows: [*const f32; R] = core::array::from_fn(|r| a.data[a.row.at(i0 + r)..].as_ptr());
    if R > 1 && a.row.consecutive(i0, R) {
        // Rows one element apart: reached from the first at constant offsets.
        let a = Lhs {
            data: a.data,
            row: Unit,
            col: a.col,
        };
        // SAFETY: as this function's contract; the rows of A are the same ones.
        return unsafe { gemm_cols::<R, V>(k, n, a, arows, b, c, cs, store, finish) };
    }
    // SAFETY: as this function's contract.
    unsafe { gemm_cols::<R, V>(k, n, a, arows, b, c, cs, store, finish) }
}

/// The blocks of [`gemm_rows`] along C's columns, A's rows starting at `arows`.
///
/// # Safety
///
/// As [`gemm_rows`]; `arows` are the starts of its rows of A.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn gemm_cols<const R: usize, const V: usize>(
    k: usize,
    n: usize,
    a: Lhs<impl RowAt, impl RowAt>,
    arows: [*const f32; R],
    b: Rhs<impl RowAt>,
    c: &mut [f32],
    cs: Strides,
    store: Store,
    finish: Finish,
) {
    let (width, stride) = b.spread.rows(n);
    let rows = n / width;
    // Plain counted loops: the iterator adaptors here were calls that the compiler did not
    // inline into this AVX-512 code, returning their items through the stack (where reading
    // them back as one vector waited on the two stores: 1.6% of ResNet-8's batch 1 in perf).
    if V == 2 && width <= L {
        let mut g = 0;
        while g < rows {
            // The second vector is the next image row, if there is one (else masked off, and
            // reading where the first does).
            let next = if g + 1 < rows { 1 } else { 0 };
            let at = core::array::from_fn(|v| [(g + v * next) * stride, (g + v * next) * width]);
            let cols = core::array::from_fn(|v| if v == 0 { width } else { next * width });
            // SAFETY: as this function's contract; the blocks lie inside B's rows and C's.
            unsafe { gemm_block::<R, V>(k, a, arows, &b, c, cs, store, finish, at, cols) };
            g += 2;
        }
        return;
    }
    for g in 0..rows {
        let (jb, jc) = (g * stride, g * width);
        let mut jj = 0;
        while jj < width {
            let cols = (V * L).min(width - jj);
            let at = core::array::from_fn(|v| [jb + jj + v * L, jc + jj + v * L]);
            let cols = core::array::from_fn(|v| cols.saturating_sub(v * L).min(L));
            // SAFETY: as this function's contract; the blocks lie inside B's rows and C's.
            unsafe { gemm_block::<R, V>(k, a, arows, &b, c, cs, store, finish, at, cols) };
            jj += V * L;
        }
    }
}

/// One block of [`gemm_rows`]: `R` rows of C (A's rows start at `arows`, found once per
/// block row) by `V` vectors, vector `v` reading B's columns from `at[v][0]` and writing C's
/// from `at[v][1]`, its first `cols[v]` lanes (none: skipped).
///
/// # Safety
///
/// As [`gemm`]; for each vector with lanes, `at[v][0] + cols[v]` lies inside every row of B
/// and `at[v][1] + cols[v]` inside C's columns; `at[v][0]` inside B's rows in any case.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn gemm_block<const R: usize, const V: usize>(
    k: usize,
    a: Lhs<impl RowAt, impl RowAt>,
    arows: [*const f32; R],
    b: &Rhs<impl RowAt>,
    c: &mut [f32],
    cs: Strides,
    store: Store,
    finish: Finish,
    at: [[usize; 2]; V],
    cols: [usize; V],
) {
    let masks: [__mmask16; V] = core::array::from_fn(|v| first(cols[v]));
    let arows = a.row.block(arows);
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    let bj = b.data.as_ptr();
    for (brow, ap) in b.row.first(k).zip(a.col.first(k)) {
        // SAFETY: A holds R rows at each of its k columns and every row of B its columns (the
        // contract); the masks keep the loads to the block's columns (a full mask loads as fast
        // as an unmasked load, so there is one loop).
        unsafe {
            let row = bj.add(brow);
            let bv: [__m512; V] = core::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], row.add(at[v][0])));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*arows[r].add(ap));
                for v in 0..V {
                    acc[v] = _mm512_fmadd_ps(av, bv[v], acc[v]);
                }
            }
        }
    }
    if cs[1] != 1 {
        for (r, acc) in acc.iter().enumerate() {
            for v in 0..V {
                let mut lanes = [0.0f32; L];
                // SAFETY: `lanes` holds one vector.
                unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc[v]) };
                for (l, value) in lanes[..cols[v]].iter().enumerate() {
                    let at = r * cs[0] + (at[v][1] + l) * cs[1];
                    c[at] = finish.scalar(r, at, store.apply(c[at], *value));
                }
            }
        }
        return;
    }
    for (r, acc) in acc.iter().enumerate() {
        for v in 0..V {
            if masks[v] == 0 {
                continue;
            }
            // SAFETY: row r of C has its columns from r * cs[0] (the contract); the mask keeps
            // the accesses to the vector's columns.
            unsafe {
                let out = c.as_mut_ptr().add(r * cs[0] + at[v][1]);
                let mut sum = match store {
                    Store::Overwrite => acc[v],
                    Store::Accumulate => _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(masks[v], out)),
                };
                if finish.any() {
                    sum = finished(&finish, r, r * cs[0] + at[v][1], cols[v], sum);
                }
                _mm512_mask_storeu_ps(out, masks[v], sum);
            }
        }
    }
}

/// The first `cols` lanes of `v`, entries `at..at + cols` of row `row` of C, finished as
/// `finish` says (the other lanes are not stored).
///
/// # Safety
///
/// The CPU has AVX-512F; `finish`'s bias has entry `row` and its residual entries
/// `at..at + cols`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn finished(finish: &Finish, row: usize, at: usize, cols: usize, mut v: __m512) -> __m512 {
    if let Some(bias) = finish.bias {
        v = _mm512_add_ps(v, _mm512_set1_ps(bias[row]));
    }
    if let Some(residual) = finish.residual {
        let r = &residual[at..at + cols];
        // SAFETY: the mask reads the `cols` entries of `r`.
        v = _mm512_add_ps(v, unsafe { _mm512_maskz_loadu_ps(first(cols), r.as_ptr()) });
    }
    if finish.relu {
        // `max(v, 0)` is 0 for a NaN, as `f32::max(v, 0.0)`.
        v = _mm512_max_ps(v, _mm512_setzero_ps());
    }
    v
}

/// `C (+)= A x B^T` in blocks of up to 4 x 4 entries of C: each step loads 16 elements of
/// each of the block's rows of A and of B, for up to 16 FMAs; the accumulators are summed
/// across lanes at the end, and the last step of a row is masked. Rows of A start at
/// `a[arow.at(i)]`, rows of B at `b[brow.at(j)]`; `C(i, j)` is
/// `c[i * cstride[0] + j * cstride[1]]`.
///
/// # Safety
///
/// The CPU has AVX-512F; the `m` rows of A and `n` rows of B hold `k` elements each inside
/// `a` and `b`; `C` reaches `(m, n)` inside `c`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_nt(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    arow: impl RowAt,
    b: &[f32],
    brow: impl RowAt,
    c: &mut [f32],
    cstride: Strides,
    store: Store,
) {
    let shape = (m, n, k);
    // SAFETY: nt_block is compiled for this path, whose instructions the CPU has; the operands
    // are as nt_blocks needs (this function's contract).
    unsafe {
        blocks::nt_blocks::<NT_ROWS, NT_COLS>(
            shape,
            a,
            arow,
            b,
            brow,
            c,
            cstride,
            store,
            |rows, cols| blocks::pick_block!(nt_block, rows, cols, 1 2 3 4; 1 2 3 4),
        )
    }
}

/// One `R x S` block of [`gemm_nt`]: `out[r * cstride[0] + s * cstride[1]]` (+)= the dot
/// product of `k` elements from `arows[r]` and from `brows[s]`.
///
/// # Safety
///
/// The CPU has AVX-512F; the first `R` of `arows` and `S` of `brows` point to `k` readable
/// elements each; `out` holds the block's entries at `cstride`.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn nt_block<const R: usize, const S: usize>(
    k: usize,
    arows: [*const f32; NT_ROWS],
    brows: [*const f32; NT_COLS],
    out: &mut [f32],
    cstride: Strides,
    store: Store,
) {
    let arows: [*const f32; R] = core::array::from_fn(|r| arows[r]);
    let brows: [*const f32; S] = core::array::from_fn(|s| brows[s]);
    let mut acc = [[_mm512_setzero_ps(); S]; R];
    let mut p = 0;
    while p < k {
        let mask = first(k - p);
        // SAFETY: the rows hold k elements from their starts (the contract); the mask keeps
        // each step below k.
        unsafe {
            let av = arows.map(|ptr| _mm512_maskz_loadu_ps(mask, ptr.add(p)));
            for s in 0..S {
                let bv = _mm512_maskz_loadu_ps(mask, brows[s].add(p));
                for r in 0..R {
                    acc[r][s] = _mm512_fmadd_ps(av[r], bv, acc[r][s]);
                }
            }
        }
        p += L;
    }
    for (r, acc) in acc.iter().enumerate() {
        for (s, v) in acc.iter().enumerate() {
            let out = &mut out[r * cstride[0] + s * cstride[1]];
            *out = store.apply(*out, _mm512_reduce_add_ps(*v));
        }
    }
}

/// Vectors of 8 `f64` lanes each that the sums keep, `portable::F64_LANES` lanes in all: four
/// independent chains of additions, where one would wait on each addition's latency.
const F64_VECTORS: usize = 4;

/// Floats of one step of the sums: one per lane.
const F64_STEP: usize = 8 * F64_VECTORS;

/// Lanes of `f64` sums, as `portable::F64_LANES`: lane `l` (lane `l % 8` of vector `l / 8`)
/// sums elements `l, l + 32, ...`, then the lanes are summed in order and the rest added, so
/// the bits are the portable path's. Compiled for AVX-512 like its callers, so that it is
/// inlined into them: as a plain function each store was a call, the vectors passed through
/// memory (8% of ResNet-8's training step in perf, BatchNorm's sums running plane by plane).
///
/// # Safety
///
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn finish(acc: [__m512d; F64_VECTORS], rest: f64) -> f64 {
    let mut lanes = [0.0f64; F64_STEP];
    for (v, acc) in acc.iter().enumerate() {
        // SAFETY: `lanes` holds 8 doubles from 8 * v.
        unsafe { _mm512_storeu_pd(lanes.as_mut_ptr().add(8 * v), *acc) };
    }
    lanes.iter().sum::<f64>() + rest
}

/// Vector `v` of a step of 32 floats, as `f64`s.
///
/// # Safety
///
/// The CPU has AVX-512F; `step` holds 32 floats.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn load_f64(step: &[f32], v: usize) -> __m512d {
    // SAFETY: the contract: 8 floats from 8 * v.
    _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(step.as_ptr().add(8 * v)) })
}

/// `simd::sum_f64` on 32 lanes of `f64` (see [`finish`]).
///
/// # Safety
///
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn sum_f64(x: &[f32]) -> f64 {
    let steps = x.chunks_exact(F64_STEP);
    let rest = steps.remainder().iter().map(|&v| v as f64).sum::<f64>();
    let mut acc = [_mm512_setzero_pd(); F64_VECTORS];
    for step in steps {
        for (v, acc) in acc.iter_mut().enumerate() {
            // SAFETY: a step holds 32 floats.
            *acc = _mm512_add_pd(*acc, unsafe { load_f64(step, v) });
        }
    }
    // SAFETY: the CPU has AVX-512F (the contract).
    unsafe { finish(acc, rest) }
}

/// `simd::sum_sq_dev_f64` on 32 lanes of `f64` (see [`finish`]).
///
/// # Safety
///
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn sum_sq_dev_f64(x: &[f32], mean: f64) -> f64 {
    let steps = x.chunks_exact(F64_STEP);
    let sq = |v: f32| (v as f64 - mean) * (v as f64 - mean);
    let rest = steps.remainder().iter().map(|&v| sq(v)).sum::<f64>();
    let (mut acc, m) = ([_mm512_setzero_pd(); F64_VECTORS], _mm512_set1_pd(mean));
    for step in steps {
        for (v, acc) in acc.iter_mut().enumerate() {
            // SAFETY: a step holds 32 floats.
            let d = _mm512_sub_pd(unsafe { load_f64(step, v) }, m);
            *acc = _mm512_add_pd(*acc, _mm512_mul_pd(d, d));
        }
    }
    // SAFETY: the CPU has AVX-512F (the contract).
    unsafe { finish(acc, rest) }
}

/// `simd::sums_dy_f64` on 32 lanes of `f64` (see [`finish`]).
///
/// # Safety
///
/// The CPU has AVX-512F; `x` and `dy` have the same length.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn sums_dy_f64(x: &[f32], dy: &[f32], mean: f64) -> (f64, f64) {
    let (xc, gc) = (x.chunks_exact(F64_STEP), dy.chunks_exact(F64_STEP));
    let (mut rs, mut rsx) = (0.0f64, 0.0f64);
    for (&x, &g) in xc.remainder().iter().zip(gc.remainder()) {
        rs += g as f64;
        rsx += g as f64 * (x as f64 - mean);
    }
    let m = _mm512_set1_pd(mean);
    let (mut s, mut sx) = ([_mm512_setzero_pd(); F64_VECTORS], [_mm512_setzero_pd(); F64_VECTORS]);
    for (xs, gs) in xc.zip(gc) {
        for v in 0..F64_VECTORS {
            // SAFETY: the steps hold 32 floats each.
            let (xv, gv) = unsafe { (load_f64(xs, v), load_f64(gs, v)) };
            s[v] = _mm512_add_pd(s[v], gv);
            sx[v] = _mm512_add_pd(sx[v], _mm512_mul_pd(gv, _mm512_sub_pd(xv, m)));
        }
    }
    // SAFETY: the CPU has AVX-512F (the contract).
    unsafe { (finish(s, rs), finish(sx, rsx)) }
}

/// `simd::split_columns` compiled for this path.
///
/// # Safety
///
/// The CPU has the path's instructions.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn split_columns(src: &[f32], even: &mut [f32], odd: &mut [f32], at: super::Columns) {
    portable::split_columns(src, even, odd, at)
}
