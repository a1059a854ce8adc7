//! The AVX2 + FMA path: 8-lane vectors, 16 registers.
//!
//! Every function here is `unsafe` for one reason, stated once: it is compiled with
//! `#[target_feature(enable = "avx2,fma")]`, so the CPU must have AVX2 and FMA (an
//! [`Isa`](super::Isa) of that path, or AVX-512's, says so). What each one reads and writes is
//! checked by the safe entry points in `simd/mod.rs` before the call; each `# Safety` section
//! says what those checks must guarantee.

use core::arch::x86_64::*;

use super::blocks;
use super::operands::{Finish, Lhs, Rhs, RowAt, Store, Strides};
use super::portable;

/// Rows of C per register block of [`gemm`]: with two vectors a row, 12 of the 16 registers.
const MR: usize = 6;
/// Columns of C per register block of [`gemm`]: two 8-lane vectors.
const NR: usize = 16;

/// Rows and columns of C in a block of [`gemm_nt`]: 12 accumulators, 3 rows of A and a row of
/// B in flight, all 16 registers and no spills.
pub const NT_ROWS: usize = 3;
pub const NT_COLS: usize = 4;

/// `out[q] = sum over t of rows[starts[t] + q]`, 32 outputs at a time in four independent sums.
///
/// # Safety
///
/// The CPU has AVX2 and FMA; every window `starts[t]..starts[t] + out.len()` lies inside `rows`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_shifted(rows: &[f32], starts: &[usize], out: &mut [f32]) {
    let n = out.len();
    let (full, rest) = (n - n % 32, n % 32);
    for q in (0..full).step_by(32) {
        let mut acc = [_mm256_setzero_ps(); 4];
        for &s in starts {
            // SAFETY: the window s..s+n lies inside rows (the contract) and q+32 <= n.
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
        portable::sum_shifted(&rows[full..], starts, &mut out[full..]);
    }
}

/// One 8x8 block of a transpose: `y[j * ldy + i] = x[i * ldx + j]` for `i, j < 8`.
///
/// # Safety
///
/// The CPU has AVX2; `x` points to 8 rows of 8 readable elements, `ldx` apart, and `y` to 8
/// rows of 8 writable ones, `ldy` apart.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn transpose8(x: *const f32, ldx: usize, y: *mut f32, ldy: usize) {
    // SAFETY: the contract: 8 rows of 8 elements at x (stride ldx) and at y (stride ldy).
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

/// `C (+)= A x B^T` in blocks of up to 3 x 4 entries of C: each step loads a row segment of 8
/// from each of the block's rows of A and of B, for up to 12 FMAs; the accumulators are summed
/// across lanes at the end, and the last step of a row is masked. Rows of A start at
/// `a[arow.at(i)]`, rows of B at `b[brow.at(j)]`; `C(i, j)` is
/// `c[i * cstride[0] + j * cstride[1]]`.
///
/// # Safety
///
/// The CPU has AVX2 and FMA; the `m` rows of A and `n` rows of B hold `k` elements each inside
/// `a` and `b`; `C` reaches `(m, n)` inside `c`.
#[target_feature(enable = "avx2,fma")]
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
            |rows, cols| blocks::pick_block!(nt_block, rows, cols, 1 2 3; 1 2 3 4),
        )
    }
}

/// One `R x S` block of [`gemm_nt`]: `out[r * cstride[0] + s * cstride[1]]` (+)= the dot
/// product of `k` elements from `arows[r]` and from `brows[s]`.
///
/// # Safety
///
/// The CPU has AVX2 and FMA; the first `R` of `arows` and `S` of `brows` point to `k` readable
/// elements each; `out` holds the block's entries at `cstride`.
#[target_feature(enable = "avx2,fma")]
unsafe fn nt_block<const R: usize, const S: usize>(
    k: usize,
    arows: [*const f32; NT_ROWS],
    brows: [*const f32; NT_COLS],
    out: &mut [f32],
    cstride: Strides,
    store: Store,
) {
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
        // SAFETY: the rows hold k elements from their starts (the contract) and a full step
        // reads p..p+8 <= k.
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
            *out = store.apply(*out, sum);
        }
    }
}

/// `C (+)= A x B`, each entry finished as `finish` says: element `(i, p)` of A broadcast
/// against 16 columns of row `p` of B, in blocks of up to 6 rows by 16 columns within each
/// image row of B's columns.
///
/// # Safety
///
/// The CPU has AVX2 and FMA; A holds `(m, k)` at its row and column positions; each of the `k`
/// rows of B holds its `n` columns (whole image rows as `b.spread` says) inside `b.data`; `C`
/// reaches `(m, n)` at strides `cs` inside `c`, and so does `finish`'s residual; its bias
/// holds `m` entries.
#[target_feature(enable = "avx2,fma")]
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
    // Masked loads are slow: a block short of 16 columns reads all 16 when every row of B has
    // them inside `b` (the extra lanes, past the block, are never stored).
    let last_row = (0..k).map(|p| b.row.at(p)).max().unwrap_or(0);
    // Blocks of at most MR rows, as even as can be: 10 rows as 5 + 5 rather than 6 + 4.
    let mut blocks = m.div_ceil(MR);
    let mut i = 0;
    while i < m {
        let rows = (m - i).div_ceil(blocks);
        blocks -= 1;
        let (c, f) = (&mut c[i * cs[0]..], finish.rows_on(i, cs[0]));
        // SAFETY: A holds rows i..i+rows at each of its k columns, C `rows` rows of n at strides
        // cs from here, every row of B n columns (the contract); the CPU has AVX2 and FMA.
        unsafe {
            match rows {
                6 => gemm_rows::<6>(k, n, a, i, b, last_row, c, cs, store, f),
                5 => gemm_rows::<5>(k, n, a, i, b, last_row, c, cs, store, f),
                4 => gemm_rows::<4>(k, n, a, i, b, last_row, c, cs, store, f),
                3 => gemm_rows::<3>(k, n, a, i, b, last_row, c, cs, store, f),
                2 => gemm_rows::<2>(k, n, a, i, b, last_row, c, cs, store, f),
                _ => gemm_rows::<1>(k, n, a, i, b, last_row, c, cs, store, f),
            }
        }
        i += rows;
    }
}

/// Two vectors of row `row` of C, its entries `at..at + 16`, finished as `finish` says.
///
/// # Safety
///
/// The CPU has AVX2; `finish`'s bias has entry `row` and its residual entries `at..at + 16`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn finished(finish: &Finish, row: usize, at: usize, mut v: [__m256; 2]) -> [__m256; 2] {
    if let Some(bias) = finish.bias {
        let b = _mm256_set1_ps(bias[row]);
        v = v.map(|v| _mm256_add_ps(v, b));
    }
    if let Some(residual) = finish.residual {
        let r = &residual[at..at + 16];
        // SAFETY: `r` holds 16 entries.
        v = unsafe {
            [
                _mm256_add_ps(v[0], _mm256_loadu_ps(r.as_ptr())),
                _mm256_add_ps(v[1], _mm256_loadu_ps(r.as_ptr().add(8))),
            ]
        };
    }
    if finish.relu {
        // `max(v, 0)` is 0 for a NaN, as `f32::max(v, 0.0)`.
        v = v.map(|v| _mm256_max_ps(v, _mm256_setzero_ps()));
    }
    v
}

/// Stores the first `part.len()` (at most 8) lanes of `v` into `part`, entries `at..` of row
/// `row` of C, as `store` and `finish` say: what [`finished`] does to a whole vector, through
/// arrays (the same operations in the same order, so the same bits).
///
/// # Safety
///
/// The CPU has AVX2; `finish`'s bias has entry `row` and its residual entries
/// `at..at + part.len()`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn part_finished(part: &mut [f32], v: __m256, store: Store, finish: &Finish, row: usize, at: usize) {
    let n = part.len();
    let mut lanes = [0.0f32; 8];
    let mut v = v;
    if store == Store::Accumulate {
        lanes[..n].copy_from_slice(part);
        // SAFETY: `lanes` holds 8 elements.
        v = _mm256_add_ps(v, unsafe { _mm256_loadu_ps(lanes.as_ptr()) });
    }
    if let Some(bias) = finish.bias {
        v = _mm256_add_ps(v, _mm256_set1_ps(bias[row]));
    }
    if let Some(residual) = finish.residual {
        let mut extra = [0.0f32; 8];
        extra[..n].copy_from_slice(&residual[at..at + n]);
        // SAFETY: `extra` holds 8 elements.
        v = _mm256_add_ps(v, unsafe { _mm256_loadu_ps(extra.as_ptr()) });
    }
    if finish.relu {
        v = _mm256_max_ps(v, _mm256_setzero_ps());
    }
    // SAFETY: `lanes` holds 8 elements.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
    part.copy_from_slice(&lanes[..n]);
}

/// Rows `i0..i0 + R` of C (`c` starts at row `i0`), in blocks of up to 16 columns within each
/// image row of B's columns; a block short of 16 is masked. `last_row` is the largest offset of
/// a row of B. With a column stride of C other than 1 the results are scattered element by
/// element.
///
/// # Safety
///
/// As [`gemm`], for rows `i0..i0 + R` of A and the rows of C from `c`'s start.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_rows<const R: usize>(
    k: usize,
    n: usize,
    a: Lhs<impl RowAt, impl RowAt>,
    i0: usize,
    b: Rhs<impl RowAt>,
    last_row: usize,
    c: &mut [f32],
    cs: Strides,
    store: Store,
    finish: Finish,
) {
    let arows: [*const f32; R] = core::array::from_fn(|r| a.data[a.row.at(i0 + r)..].as_ptr());
    let (width, stride) = b.spread.rows(n);
    // A counted loop, not an iterator adaptor: see `avx512::gemm_cols`.
    for g in 0..n / width {
        let (jb, jc) = (g * stride, g * width);
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
            let bj = b.data[jb + jj..].as_ptr();
            if cols == NR || last_row + jb + jj + NR <= b.data.len() {
                for (brow, ap) in b.row.first(k).zip(a.col.first(k)) {
                    // SAFETY: A holds R rows at each of its k columns and every row of B its n
                    // columns (the contract), so these 16 columns of row p exist, or lie inside
                    // `b` (checked just above).
                    unsafe {
                        let row = bj.add(brow);
                        let (b0, b1) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)));
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let av = _mm256_broadcast_ss(&*arows[r].add(ap));
                            acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                            acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                        }
                    }
                }
            } else {
                for (brow, ap) in b.row.first(k).zip(a.col.first(k)) {
                    // SAFETY: as above; the masks keep the loads inside the block's columns.
                    unsafe {
                        let row = bj.add(brow);
                        let b0 = _mm256_maskload_ps(row, m0);
                        let b1 = if cols > 8 {
                            _mm256_maskload_ps(row.add(8), m1)
                        } else {
                            _mm256_setzero_ps()
                        };
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
                        let at = r * cs[0] + (j + l) * cs[1];
                        c[at] = finish.scalar(r, at, store.apply(c[at], *v));
                    }
                }
            } else {
                for (r, acc) in acc.iter().enumerate() {
                    // SAFETY: row r of C has n columns from r * cs[0] (the contract); the
                    // masks keep the accesses to j..j+cols.
                    unsafe {
                        let at = r * cs[0] + j;
                        let out = c.as_mut_ptr().add(at);
                        let (mut v0, mut v1) = (acc[0], acc[1]);
                        if cols == NR {
                            if store == Store::Accumulate {
                                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(out));
                                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(out.add(8)));
                            }
                            if finish.any() {
                                [v0, v1] = finished(&finish, r, at, [v0, v1]);
                            }
                            _mm256_storeu_ps(out, v0);
                            _mm256_storeu_ps(out.add(8), v1);
                        } else {
                            // Masked stores are slower still: each vector's columns through an
                            // array, finished as vectors (entry by entry, LeNet-5's conv1, rows
                            // of 28 as a block of 16 and one of 12, took 5.38 us against 3.91:
                            // `CNN_KERNELS=avx2 cargo run --release --example bench -- --net
                            // lenet5 --layers`, AMD EPYC Zen 4).
                            let out = core::slice::from_raw_parts_mut(out, cols);
                            for (v, (lanes, part)) in [v0, v1].into_iter().zip(out.chunks_mut(8)).enumerate() {
                                part_finished(part, lanes, store, &finish, r, at + 8 * v);
                            }
                        }
                    }
                }
            }
            jj += cols;
        }
    }
}

/// `simd::sum_f64` compiled for this path.
///
/// # Safety
///
/// The CPU has the path's instructions.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_f64(x: &[f32]) -> f64 {
    portable::sum_f64(x)
}

/// `simd::sum_sq_dev_f64` compiled for this path.
///
/// # Safety
///
/// The CPU has the path's instructions.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_sq_dev_f64(x: &[f32], mean: f64) -> f64 {
    portable::sum_sq_dev_f64(x, mean)
}

/// `simd::sums_dy_f64` compiled for this path.
///
/// # Safety
///
/// The CPU has the path's instructions.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sums_dy_f64(x: &[f32], dy: &[f32], mean: f64) -> (f64, f64) {
    portable::sums_dy_f64(x, dy, mean)
}

/// `simd::split_columns` compiled for this path.
///
/// # Safety
///
/// The CPU has the path's instructions.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn split_columns(src: &[f32], even: &mut [f32], odd: &mut [f32], at: super::Columns) {
    portable::split_columns(src, even, odd, at)
}
