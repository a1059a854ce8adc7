//! The walk over `C` in register blocks that the vector paths' `A x B^T` share: each path
//! brings its block function, one per block size, and this module the loop around them.

use super::operands::{RowAt, Store, Strides};

/// One `R x S` block of dot products on some path: `block(k, arows, brows, out, cstride,
/// store)` stores into `out[r * cstride[0] + s * cstride[1]]` the dot product of `k` elements
/// from `arows[r]` and `brows[s]`.
pub type NtBlock<const R: usize, const S: usize> =
    unsafe fn(usize, [*const f32; R], [*const f32; S], &mut [f32], Strides, Store);

/// The block function `$f::<r, s>` for the `(rows, cols)` given at run time, out of the sizes
/// listed (`rows` among `$r`, `cols` among `$s`).
macro_rules! pick_block {
    ($f:ident, $rows:expr, $cols:expr, $($r:literal)+ ; $($s:literal)+) => {
        $crate::simd::blocks::pick_block!(@rows $f, $rows, $cols, [$($s)+], $($r)+)
    };
    (@rows $f:ident, $rows:expr, $cols:expr, $ss:tt, $($r:literal)+) => {
        match $rows {
            $($r => $crate::simd::blocks::pick_block!(@cols $f, $r, $cols, $ss),)+
            _ => unreachable!(),
        }
    };
    (@cols $f:ident, $r:literal, $cols:expr, [$($s:literal)+]) => {
        match $cols {
            $($s => $f::<$r, $s> as $crate::simd::blocks::NtBlock<_, _>,)+
            _ => unreachable!(),
        }
    };
}
pub(super) use pick_block;

/// `C (+)= A x B^T` in blocks of up to `R x S` entries, each computed by the function `block`
/// gives for its size; a block's rows of A and of B past its size repeat its last row. Rows of
/// A start at `a[arow.at(i)]`, rows of B at `b[brow.at(j)]`; `C(i, j)` is
/// `c[i * cstride[0] + j * cstride[1]]`.
///
/// # Safety
///
/// Every function `block` returns may be called (the CPU has its path's instructions); the `m`
/// rows of A and `n` rows of B hold `k` elements each inside `a` and `b`; `C` reaches `(m, n)`
/// inside `c`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn nt_blocks<const R: usize, const S: usize>(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    arow: impl RowAt,
    b: &[f32],
    brow: impl RowAt,
    c: &mut [f32],
    cstride: Strides,
    store: Store,
    block: impl Fn(usize, usize) -> NtBlock<R, S>,
) {
    let mut i = 0;
    while i < m {
        let rows = R.min(m - i);
        let mut j = 0;
        while j < n {
            let cols = S.min(n - j);
            let run = block(rows, cols);
            let arows = core::array::from_fn(|r| a[arow.at(i + r.min(rows - 1))..].as_ptr());
            let brows = core::array::from_fn(|s| b[brow.at(j + s.min(cols - 1))..].as_ptr());
            let out = &mut c[i * cstride[0] + j * cstride[1]..];
            // SAFETY: the rows of A and B hold k elements, C holds the block, and `run` may be
            // called (this function's contract).
            unsafe { run(k, arows, brows, out, cstride, store) };
            j += cols;
        }
        i += rows;
    }
}
