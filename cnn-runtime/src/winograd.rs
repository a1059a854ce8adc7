//! Winograd's minimal filtering F(2x2, 3x3) for the inference of stride-1 3x3 convolutions
//! with padding 1 (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
//! 2015): each 2x2 tile of the output from a 4x4 tile of the padded input, with 16
//! multiplications per input and output channel instead of 36.
//!
//! With `B^T`, `G` and `A^T` the matrices of the algorithm, an output tile is
//! `Y = A^T [(G g G^T) . (B^T d B)] A` for a 3x3 kernel `g` and an input tile `d`, summed over
//! the input channels. The weight is transformed once, into `U [16, OC, C]` ([`weights`],
//! kept with a network's prepared parameters); then, per sample, the input tiles into
//! `V [16, C, T]` ([`Tiles`]: `T` tiles numbered row by row), the 16 products
//! `M_xi [OC, T] = U_xi [OC, C] x V_xi [C, T]`, and the products back into output tiles,
//! written to the output planes with the bias, the residual and the ReLU
//! ([`forward_sample`]). Where one sample splits across two threads, each takes half of its
//! tiles (or, where they make one vector, of its output channels), with phases, `V` and `M`
//! of its own.
//!
//! Tile `(i, j)` reads rows `2i..2i+4` and columns `2j..2j+4` of the padded image, which is
//! therefore split into its four phases (even and odd rows and columns, as a stride-2
//! convolution's input: `Conv2d::pad_sample`), `[4, C, TH+1, TW+1]`: pixel `(2i + r, 2j + c)`
//! is pixel `(i + r/2, j + c/2)` of phase `(r % 2, c % 2)`. Along a row of tiles the 16
//! pixels of 16 tiles are then each one contiguous run; where a vector of 16 tiles spans
//! several rows of tiles (rows of 1 to 8 tiles), one masked load a row. The transforms and
//! products are written for AVX-512 (masked loads and stores, a two-register permute to
//! interleave a tile's columns) and for AVX2 (a vector of tiles in two registers, each taken
//! on its own, runs of tiles pieced together from narrower loads), behind one
//! [`Transforms`] trait; on the portable path layers keep the direct convolution
//! ([`available`]). Inference takes this route with `U` prepared once; a call of the forward
//! pass from the declared weight with at least `conv::WINOGRAD_BATCH` samples (a training
//! step's forward pass and its stride-1 input gradients) with `U` made on each call.
//!
//! The 16 products have their own kernel ([`Transforms::product`]): they are only `C` long, and the
//! general one's set-up and finish of each block of sums cost a third of them at 16 channels.
//! An earlier version (see the README) lost to the direct path everywhere: its transformed
//! weight was recomputed on every call (60 us for 64 x 64 kernels), its tiles were numbered
//! with a spare one a row (an 8x8 output used 32 lanes for 16 tiles), and its 16 positions of
//! a tile lay a multiple of 4 KB apart in `V` and `M`, in the same few sets of the cache.

use core::ops::Range;

use crate::conv::Then;
use crate::simd::{from_line, LINE};
#[cfg(target_arch = "x86_64")]
use crate::simd::{Isa, Path};
use crate::split;

/// Positions of a transformed 4x4 tile.
const XI: usize = 16;
/// Tiles a vector holds.
const L: usize = 16;

/// The tiling of one stride-1 3x3 convolution with padding 1 of `[C, OH, OW]` (`OH`, `OW`
/// even) into `[OC, OH, OW]`, and the sizes of its buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tiles {
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub oc: usize,
    /// Rows of tiles, `OH / 2`.
    pub th: usize,
    /// Tiles a row, `OW / 2`.
    pub tw: usize,
}

impl Tiles {
    /// Whether an output of `oh x ow` tiles this way: even sides, and rows of tiles that
    /// either fill whole vectors or divide one (1, 2, 4, 8, or a multiple of 16 tiles).
    pub const fn fit(oh: usize, ow: usize) -> bool {
        let tw = ow / 2;
        oh.is_multiple_of(2)
            && ow.is_multiple_of(2)
            && oh > 0
            && tw > 0
            && (tw.is_multiple_of(L) || L.is_multiple_of(tw))
    }

    /// Tiles, `TH * TW`.
    const fn count(&self) -> usize {
        self.th * self.tw
    }

    /// Tiles rounded up to whole vectors: the row length of `V` and `M`.
    const fn padded(&self) -> usize {
        self.count().next_multiple_of(L)
    }

    /// Width of a phase, `TW + 1`.
    const fn gw(&self) -> usize {
        self.tw + 1
    }

    /// Elements of one channel's phase, `(TH + 1) * (TW + 1)`.
    const fn plane(&self) -> usize {
        (self.th + 1) * self.gw()
    }

    /// Elements of the phases of one padded sample, `[4, C, TH+1, TW+1]`.
    pub const fn phases_len(&self) -> usize {
        4 * self.c * self.plane()
    }

    /// Elements of a transformed weight, `[16, OC, C]`.
    pub const fn u_len(&self) -> usize {
        XI * self.oc * self.c
    }

    /// Distance between the positions `xi` of `V` (`rows` = C) or `M` (`rows` = OC): `rows`
    /// rows of [`padded`](Self::padded) tiles and one vector more, so that the 16 positions
    /// of a tile, written (and read) together, do not lie a multiple of 4 KB apart, in the
    /// same few sets of the cache (which made the input transform of a 16-channel 32x32 layer
    /// take 20 us instead of 3).
    const fn xi_stride(&self, rows: usize) -> usize {
        rows * self.padded() + L
    }

    /// Scratch [`forward_sample`] needs: the phases, `V [16, C, T]` and `M [16, OC, T]`, and
    /// up to a vector more to start `V` at a cache line.
    pub const fn work_len(&self) -> usize {
        self.phases_len() + LINE + XI * (self.xi_stride(self.c) + self.xi_stride(self.oc))
    }
}

/// `U [16, OC, C]` from the 3x3 kernels `weight [OC, C, 3, 3]`: `u_xi(o, c) = (G g G^T)_xi`.
///
/// # Panics
///
/// If `weight` or `u` does not hold what `t` says.
pub(crate) fn weights(t: Tiles, weight: &[f32], u: &mut [f32]) {
    assert!(
        weight.len() == t.oc * t.c * 9 && u.len() == t.u_len(),
        "winograd: {}x{} 3x3 kernels into U of {}, got {} and {} elements",
        t.oc,
        t.c,
        t.u_len(),
        weight.len(),
        u.len()
    );
    for (k, g) in weight.chunks_exact(9).enumerate() {
        // h = G g (4x3), then U = h G^T (4x4).
        let mut h = [[0.0f32; 3]; 4];
        for j in 0..3 {
            let (a, b, c) = (g[j], g[3 + j], g[6 + j]);
            h[0][j] = a;
            h[1][j] = 0.5 * (a + b + c);
            h[2][j] = 0.5 * (a - b + c);
            h[3][j] = c;
        }
        for (i, &[a, b, c]) in h.iter().enumerate() {
            let row = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
            for (j, value) in row.into_iter().enumerate() {
                u[(4 * i + j) * t.oc * t.c + k] = value;
            }
        }
    }
}

/// `$f::<S>(args)` with `S = min(TW, 16)` as a constant: the tiles of a vector come in runs
/// of `S` from one row of tiles (a row of 16 or more tiles holds whole vectors).
macro_rules! by_runs {
    ($tw:expr, $($f:ident)::+($($arg:expr),*)) => {
        match $tw.min(L) {
            16 => $($f)::+::<16>($($arg),*),
            8 => $($f)::+::<8>($($arg),*),
            4 => $($f)::+::<4>($($arg),*),
            2 => $($f)::+::<2>($($arg),*),
            _ => $($f)::+::<1>($($arg),*),
        }
    };
}

/// Whether the kernels' path runs [`forward_sample`]: its transforms are written for AVX2 and
/// AVX-512 (the portable path keeps the direct convolution).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return matches!(Isa::current().path(), Path::Avx2 | Path::Avx512);
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// One sample: its phases, which `fill(phases, rows)` writes (every element of rows `rows` of
/// `[4, C, TH+1, TW+1]`, as `Conv2d::pad_sample` at stride 2 lays them out), through `U` into
/// output planes `y[(o * batch + b) * OH*OW..]`, each `then(conv + bias[o])`; `work` holds
/// [`Tiles::work_len`] elements; so does `spare`, if given, for a helper thread's half where
/// the sample splits (`split::halves`), whose phases that thread fills itself.
///
/// # Panics
///
/// On the portable path ([`available`]), or if a slice is shorter than `t`, `batch` and `b`
/// need.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_sample(
    t: Tiles,
    u: &[f32],
    fill: impl Fn(&mut [f32], Range<usize>) + Sync,
    work: &mut [f32],
    spare: Option<&mut [f32]>,
    bias: &[f32],
    then: Then,
    batch: usize,
    b: usize,
    y: &mut [f32],
) {
    let ohw = 4 * t.count();
    let finish = then.finish(None, 0);
    assert!(
        u.len() == t.u_len()
            && work.len() >= t.work_len()
            && spare.as_ref().is_none_or(|s| s.len() >= t.work_len())
            && bias.len() == t.oc
            && y.len() >= ((t.oc - 1) * batch + b + 1) * ohw
            && finish.residual.is_none_or(|r| r.len() == y.len()),
        "winograd: a sample of {t:?} with buffers too short"
    );
    assert!(available(), "winograd: the transforms need AVX2 or AVX-512");
    #[cfg(target_arch = "x86_64")]
    let path = Isa::current().path();
    let (tp, vs, ms) = (t.padded(), t.xi_stride(t.c), t.xi_stride(t.oc));
    let out = split::Shared(y.as_mut_ptr());
    // The output channels `outs` of the sample's tiles `tiles` (whole vectors) in `work`:
    // the sample's phases, the tiles' V, the channels' products, their output pixels.
    let part = |tiles: Range<usize>, outs: Range<usize>, work: &mut [f32]| {
        let (phases, work) = work.split_at_mut(t.phases_len());
        // The rows of tiles of `tiles` read the phases' rows from their first to the row
        // after their last.
        let last = tiles.end.min(t.count()) - 1;
        fill(phases, tiles.start / t.tw..last / t.tw + 2);
        let phases = &*phases;
        // V and M from a cache line's start, so that each of their rows is whole lines: the
        // network's workspace starts anywhere, and each store of the input transform wrote
        // parts of two lines (ResNet-8's batch 1 at one thread: 243.1 -> 218.9 us CPU time,
        // 6 interleaved rounds, AMD Zen 4; the transform of a 16-channel 32x32 layer took 7.1
        // us, 1.2 with its stores sent to two rows only, a throwaway timer).
        let (v, m) = from_line(work).split_at_mut(XI * vs);
        let m = &mut m[..XI * ms];
        let rows = Tiles { oc: outs.len(), ..t };
        // SAFETY: the CPU runs `path` (`Isa::current`, checked by `available` above); the
        // phases hold `t`'s (filled in the rows the tiles read, the only ones `inputs` reads),
        // V and M their 16 x C and 16 x OC rows of `tp` tiles (asserted above), `tiles` lies
        // within `tp` and `outs` within OC; y holds the sample's planes and the residual as
        // many elements (asserted above), and the output pixels of `tiles` in channels `outs`
        // are written by this part alone.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match path {
                Path::Avx512 => transform::<avx512::Kernels>(
                    t,
                    rows,
                    u,
                    phases,
                    v,
                    m,
                    bias,
                    finish,
                    batch,
                    b,
                    out.get(),
                    tiles,
                    outs,
                ),
                _ => {
                    transform::<avx2::Kernels>(t, rows, u, phases, v, m, bias, finish, batch, b, out.get(), tiles, outs)
                }
            }
        }
    };
    // Two threads (where the sample splits: `split`) take half the tiles each, each with its
    // own V and M; or, where the tiles make one vector, half the output channels each, each
    // transforming the whole input. The 16 products split by positions instead, the helper
    // reading half of V and writing half of M through the other core's cache, took 207-238
    // us for ResNet-8's batch 1 at two threads (against 181-214 with these layers split
    // directly), and 600 us where the two cores were far apart.
    // Each side's tiles and output channels; channels split at a multiple of 8, the
    // product's blocks.
    let (half, half_oc) = ((tp / L / 2) * L, (t.oc / 16) * 8);
    let sides = if half > 0 {
        [(0..half, 0..t.oc), (half..tp, 0..t.oc)]
    } else {
        [(0..tp, 0..half_oc), (0..tp, half_oc..t.oc)]
    };
    match spare {
        Some(spare) if half > 0 || half_oc > 0 => split::halves(2, 0, &mut [], [work, spare], |side, _, work| {
            let (tiles, outs) = sides[side.start].clone();
            part(tiles, outs, work)
        }),
        _ => part(0..tp, 0..t.oc, work),
    }
}

/// One instruction set's transforms and products, each with the contract of its `# Safety`
/// section, plus: the CPU has the instruction set.
#[cfg(target_arch = "x86_64")]
trait Transforms {
    /// `V [16, C, T]` for the tiles `tiles` (whole vectors), their `B^T d B`, from the
    /// phases, the tiles of a row in runs of `S` (`min(TW, 16)`, see [`by_runs`]); lanes past
    /// the last tile zero.
    ///
    /// # Safety
    ///
    /// The CPU has the instruction set; `phases` holds `t.phases_len()` elements, `v` `16 C`
    /// rows of `t.padded()` (at `t.xi_stride(C)` from one position to the next), `tiles` lies
    /// within `t.padded()`.
    unsafe fn inputs<const S: usize>(t: Tiles, phases: &[f32], v: &mut [f32], tiles: Range<usize>);

    /// `M_xi [OC, T] = U_xi [OC, C] x V_xi [C, T]` for one position, the tiles `tiles`.
    ///
    /// # Safety
    ///
    /// The CPU has the instruction set; `u` holds `OC x C`, `v` `C` rows of `t.padded()`, `m`
    /// `OC` rows of `t.padded()`; `tiles` lies within `t.padded()`.
    unsafe fn product(t: Tiles, u: &[f32], v: &[f32], m: &mut [f32], tiles: Range<usize>);

    /// The output planes `outs` from `M [16, OC, T]` for the tiles `tiles`: each tile's
    /// `A^T m A` plus `bias[o]`, plus the residual where given, ReLU'd where `relu`, in runs of
    /// `2 S` pixels of an output row (`S = min(TW, 16)`, see [`by_runs`]).
    ///
    /// # Safety
    ///
    /// The CPU has the instruction set; `m` holds `16 OC` rows of `t.padded()` (at
    /// `t.xi_stride(OC)` from one position to the next), `y` sample `b`'s planes
    /// `(o * batch + b) * OH*OW`, `residual` as many elements as `y`, `outs` lies within OC;
    /// no one else reads or writes the output pixels of `tiles` in `outs` meanwhile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn outputs<const S: usize>(
        t: Tiles,
        m: &[f32],
        bias: &[f32],
        residual: Option<&[f32]>,
        relu: bool,
        batch: usize,
        b: usize,
        y: *mut f32,
        tiles: Range<usize>,
        outs: Range<usize>,
    );
}

/// The output channels `outs` of the tiles `tiles` of one sample, on `K`'s instruction set:
/// `V` from the phases, the 16 products into `M` (`rows`: `t` with `outs.len()` output
/// channels), `M` into the output planes.
///
/// # Safety
///
/// That of each of [`Transforms`]' functions, for these arguments.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn transform<K: Transforms>(
    t: Tiles,
    rows: Tiles,
    u: &[f32],
    phases: &[f32],
    v: &mut [f32],
    m: &mut [f32],
    bias: &[f32],
    finish: crate::simd::Finish,
    batch: usize,
    b: usize,
    y: *mut f32,
    tiles: Range<usize>,
    outs: Range<usize>,
) {
    let (tp, vs, ms) = (t.padded(), t.xi_stride(t.c), t.xi_stride(t.oc));
    // SAFETY: the caller's contract.
    unsafe {
        by_runs!(t.tw, K::inputs(t, phases, v, tiles.clone()));
        for xi in 0..XI {
            let u = &u[(xi * t.oc + outs.start) * t.c..][..outs.len() * t.c];
            let m = &mut m[xi * ms + outs.start * tp..][..outs.len() * tp];
            K::product(rows, u, &v[xi * vs..][..t.c * tp], m, tiles.clone());
        }
        by_runs!(
            t.tw,
            K::outputs(t, m, bias, finish.residual, finish.relu, batch, b, y, tiles, outs)
        )
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Range, Tiles, Transforms, L};
    use core::arch::x86_64::*;

    /// The lanes `q S..(q + 1) S` on: run `q` of a vector of tiles.
    #[inline(always)]
    fn run_mask<const S: usize>(q: usize) -> __mmask16 {
        (((1u32 << S) - 1) << (q * S)) as __mmask16
    }

    /// `B^T [a, b, c, d]`: the input transform along one axis.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    fn b_t([a, b, c, d]: [__m512; 4]) -> [__m512; 4] {
        [
            _mm512_sub_ps(a, c),
            _mm512_add_ps(b, c),
            _mm512_sub_ps(c, b),
            _mm512_sub_ps(b, d),
        ]
    }

    /// `A^T [a, b, c, d]`: the output transform along one axis.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    fn a_t([a, b, c, d]: [__m512; 4]) -> [__m512; 2] {
        [
            _mm512_add_ps(_mm512_add_ps(a, b), c),
            _mm512_sub_ps(_mm512_sub_ps(b, c), d),
        ]
    }

    /// The transforms on AVX-512F.
    pub(super) struct Kernels;

    impl Transforms for Kernels {
        /// One masked load a run of `S` tiles; a vector of 16 tiles a register.
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn inputs<const S: usize>(t: Tiles, phases: &[f32], v: &mut [f32], tiles: Range<usize>) {
            let (tp, vs, plane, gw, count) = (t.padded(), t.xi_stride(t.c), t.plane(), t.gw(), t.count());
            let (src, dst) = (phases.as_ptr(), v.as_mut_ptr());
            for ch in 0..t.c {
                for vector in tiles.start / L..tiles.end.min(count).div_ceil(L) {
                    let t0 = vector * L;
                    // Pixel (r, c) of the vector's tiles: run q of S tiles from tile t0 + q S lies
                    // at that tile's number plus its row of tiles (the phases' rows are TW + 1
                    // long) from the pixel's start in its phase.
                    // SAFETY: the run's S pixels lie inside the phase's row (tile / TW + r / 2 <= TH,
                    // tile % TW + c / 2 + S <= TW + 1), inside `phases`; the mask reads only them
                    // (from the pointer of the vector's lane 0, `tile - t0` lanes before the run).
                    let d = |r: usize, c: usize| unsafe {
                        let base = ((r % 2) * 2 + c % 2) * t.c * plane + ch * plane + (r / 2) * gw + c / 2;
                        let mut lanes = _mm512_setzero_ps();
                        for q in 0..L / S {
                            let tile = t0 + q * S;
                            if tile < count {
                                let at = src.add(base + tile + tile / t.tw).wrapping_sub(q * S);
                                lanes = _mm512_mask_loadu_ps(lanes, run_mask::<S>(q), at);
                            }
                        }
                        lanes
                    };
                    let rows = [
                        b_t([d(0, 0), d(0, 1), d(0, 2), d(0, 3)]),
                        b_t([d(1, 0), d(1, 1), d(1, 2), d(1, 3)]),
                        b_t([d(2, 0), d(2, 1), d(2, 2), d(2, 3)]),
                        b_t([d(3, 0), d(3, 1), d(3, 2), d(3, 3)]),
                    ];
                    let cols: [[__m512; 4]; 4] =
                        core::array::from_fn(|k| b_t([rows[0][k], rows[1][k], rows[2][k], rows[3][k]]));
                    for (k, col) in cols.into_iter().enumerate() {
                        for (r, lanes) in col.into_iter().enumerate() {
                            // SAFETY: row (4 r + k, ch) of V has `tp` >= t0 + 16 entries.
                            unsafe { _mm512_storeu_ps(dst.add((4 * r + k) * vs + ch * tp + t0), lanes) };
                        }
                    }
                }
            }
        }

        /// Blocks of 8 output channels by 32 tiles (16 sums in registers), or of 16 channels by
        /// the 16 tiles of a last vector alone; each channel of U broadcast against the block's
        /// vectors of V, the sums stored once at the end; all inline, where the general kernel's
        /// set-up and finish of a block cost a third of products only `C` long.
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn product(t: Tiles, u: &[f32], v: &[f32], m: &mut [f32], tiles: Range<usize>) {
            let (tp, c) = (t.padded(), t.c);
            assert!(u.len() >= t.oc * c && v.len() >= c * tp && m.len() >= t.oc * tp);
            // Pairs of vectors of tiles, then the last one alone.
            let pairs = tiles.start..tiles.start + (tiles.len() / (2 * L)) * 2 * L;
            let last = pairs.end..tiles.end;
            let mut o = 0;
            while o < t.oc {
                let rows = [16, 8, 4, 2, 1].into_iter().find(|&r| r <= t.oc - o).unwrap_or(1);
                let (u, m) = (&u[o * c..], &mut m[o * tp..]);
                // SAFETY: rows o..o + rows of U and M exist (asserted above), the tiles lie
                // within `tp`.
                unsafe {
                    match rows {
                        16 => {
                            product_rows::<8, 2>(c, tp, u, v, m, pairs.clone());
                            product_rows::<8, 2>(c, tp, &u[8 * c..], v, &mut m[8 * tp..], pairs.clone());
                            product_rows::<16, 1>(c, tp, u, v, m, last.clone());
                        }
                        8 => {
                            product_rows::<8, 2>(c, tp, u, v, m, pairs.clone());
                            product_rows::<8, 1>(c, tp, u, v, m, last.clone());
                        }
                        4 => {
                            product_rows::<4, 2>(c, tp, u, v, m, pairs.clone());
                            product_rows::<4, 1>(c, tp, u, v, m, last.clone());
                        }
                        2 => {
                            product_rows::<2, 2>(c, tp, u, v, m, pairs.clone());
                            product_rows::<2, 1>(c, tp, u, v, m, last.clone());
                        }
                        _ => {
                            product_rows::<1, 2>(c, tp, u, v, m, pairs.clone());
                            product_rows::<1, 1>(c, tp, u, v, m, last.clone());
                        }
                    }
                }
                o += rows;
            }
        }

        /// A tile's two columns interleaved with a two-register permute; masked stores.
        #[target_feature(enable = "avx512f,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn outputs<const S: usize>(
            t: Tiles,
            m: &[f32],
            bias: &[f32],
            residual: Option<&[f32]>,
            relu: bool,
            batch: usize,
            b: usize,
            y: *mut f32,
            tiles: Range<usize>,
            outs: Range<usize>,
        ) {
            let (tp, ms, count, ow) = (t.padded(), t.xi_stride(t.oc), t.count(), 2 * t.tw);
            let ohw = 2 * t.th * ow;
            // Lane 2l of the first vector of a row is column 0 of tile l, lane 2l + 1 its column
            // 1; the second vector the same for tiles 8..16.
            let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            let (mp, yp) = (m.as_ptr(), y);
            let rp = residual.map(|r| r.as_ptr());
            for o in outs {
                let plane = (o * batch + b) * ohw;
                let bias = _mm512_set1_ps(bias[o]);
                for vector in tiles.start / L..tiles.end.min(count).div_ceil(L) {
                    let t0 = vector * L;
                    // SAFETY: row (xi, o) of M holds `tp` >= t0 + 16 entries (the contract).
                    let mm = |xi: usize| unsafe { _mm512_loadu_ps(mp.add(xi * ms + o * tp + t0)) };
                    let cols: [[__m512; 2]; 4] =
                        core::array::from_fn(|c| a_t([mm(c), mm(4 + c), mm(8 + c), mm(12 + c)]));
                    // Row dr of the output tiles, its columns 0 and 1.
                    let rows: [[__m512; 2]; 2] =
                        core::array::from_fn(|dr| a_t([cols[0][dr], cols[1][dr], cols[2][dr], cols[3][dr]]));
                    for (dr, [y0, y1]) in rows.into_iter().enumerate() {
                        let (y0, y1) = (_mm512_add_ps(y0, bias), _mm512_add_ps(y1, bias));
                        let pair = [
                            _mm512_permutex2var_ps(y0, low, y1),
                            _mm512_permutex2var_ps(y0, high, y1),
                        ];
                        // Run q: the 2 S pixels of tile row (t0 + q S) / TW, in vector 2 q S / 16
                        // from lane 2 q S % 16.
                        for q in 0..L / S {
                            let tile = t0 + q * S;
                            if tile >= count {
                                break;
                            }
                            let (i, j) = (tile / t.tw, tile % t.tw);
                            let at = plane + (2 * i + dr) * ow + 2 * j;
                            let mut done = 0;
                            while done < 2 * S {
                                let lane = 2 * q * S + done;
                                let (vector, from) = (lane / L, lane % L);
                                let n = (2 * S - done).min(L - from);
                                let mask = ((((1u32 << n) - 1) << from) & 0xffff) as __mmask16;
                                // The vector's lane `from` goes to `at + done`: stored from
                                // `at + done - from`, whose lanes outside the mask are not touched.
                                let to = at + done;
                                // SAFETY: the masked lanes are the run's pixels `to..to + n`, inside
                                // the output row (and the residual, as long as y); the pointers
                                // are offset back by `from` lanes that the mask leaves alone.
                                unsafe {
                                    let mut value = pair[vector];
                                    if let Some(rp) = rp {
                                        let r = _mm512_maskz_loadu_ps(mask, rp.add(to).wrapping_sub(from));
                                        value = _mm512_add_ps(value, r);
                                    }
                                    if relu {
                                        value = _mm512_max_ps(value, _mm512_setzero_ps());
                                    }
                                    _mm512_mask_storeu_ps(yp.add(to).wrapping_sub(from), mask, value);
                                }
                                done += n;
                            }
                        }
                    }
                }
            }
        }
    }

    /// `R` rows of [`product`], from `u`'s and `m`'s first, for the tiles `tiles` in blocks
    /// of `N` vectors.
    ///
    /// # Safety
    ///
    /// The CPU has AVX-512F; `u` holds `R x c`, `v` `c` rows of `tp` (a multiple of 16), `m`
    /// `R` rows of `tp`; `tiles` lies within `tp`, a multiple of `16 N` long.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn product_rows<const R: usize, const N: usize>(
        c: usize,
        tp: usize,
        u: &[f32],
        v: &[f32],
        m: &mut [f32],
        tiles: Range<usize>,
    ) {
        let (up, vp, mp) = (u.as_ptr(), v.as_ptr(), m.as_mut_ptr());
        let mut t0 = tiles.start;
        while t0 < tiles.end {
            let mut acc = [[_mm512_setzero_ps(); N]; R];
            for k in 0..c {
                // SAFETY: row k of V holds `tp` tiles, U R rows of c (the contract).
                unsafe {
                    let row = vp.add(k * tp + t0);
                    let b: [__m512; N] = core::array::from_fn(|n| _mm512_loadu_ps(row.add(n * L)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let a = _mm512_set1_ps(*up.add(r * c + k));
                        for (acc, &b) in acc.iter_mut().zip(&b) {
                            *acc = _mm512_fmadd_ps(a, b, *acc);
                        }
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (n, &acc) in acc.iter().enumerate() {
                    // SAFETY: row r of M holds `tp` tiles (the contract).
                    unsafe { _mm512_storeu_ps(mp.add(r * tp + t0 + n * L), acc) };
                }
            }
            t0 += N * L;
        }
    }
}

/// The transforms on AVX2 with FMA: a vector of 16 tiles in two registers of 8, each taken
/// on its own.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Range, Tiles, Transforms, L};
    use core::arch::x86_64::*;

    /// Tiles a register holds.
    const H: usize = 8;

    /// `B^T [a, b, c, d]`: the input transform along one axis.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn b_t([a, b, c, d]: [__m256; 4]) -> [__m256; 4] {
        [
            _mm256_sub_ps(a, c),
            _mm256_add_ps(b, c),
            _mm256_sub_ps(c, b),
            _mm256_sub_ps(b, d),
        ]
    }

    /// `A^T [a, b, c, d]`: the output transform along one axis.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn a_t([a, b, c, d]: [__m256; 4]) -> [__m256; 2] {
        [
            _mm256_add_ps(_mm256_add_ps(a, b), c),
            _mm256_sub_ps(_mm256_sub_ps(b, c), d),
        ]
    }

    /// The 8 lanes of runs of `S` (1, 2 or 4) pixels, run `q` from `at(q)`; runs `valid` on
    /// zero.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2; `at(q)` points to `S` readable pixels for each `q < valid`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn runs<const S: usize>(at: impl Fn(usize) -> *const f32, valid: usize) -> __m256 {
        // The 4 lanes of runs q.. (4 / S of them).
        // SAFETY: only runs below `valid` are read, `S` pixels each (the contract).
        let quarter = |q: usize| unsafe {
            match S {
                4 if q < valid => _mm_loadu_ps(at(q)),
                4 => _mm_setzero_ps(),
                2 => {
                    let low = if q < valid {
                        _mm_load_sd(at(q).cast())
                    } else {
                        _mm_setzero_pd()
                    };
                    let both = if q + 1 < valid {
                        _mm_loadh_pd(low, at(q + 1).cast())
                    } else {
                        low
                    };
                    _mm_castpd_ps(both)
                }
                _ => {
                    let s = |k: usize| if q + k < valid { *at(q + k) } else { 0.0 };
                    _mm_setr_ps(s(0), s(1), s(2), s(3))
                }
            }
        };
        _mm256_set_m128(quarter(4 / S), quarter(0))
    }

    /// The transforms on AVX2 and FMA.
    pub(super) struct Kernels;

    impl Transforms for Kernels {
        /// Eight tiles at a time: one load where they lie in one row of tiles (rows of 8 or
        /// more), runs of `S` pieced together otherwise.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn inputs<const S: usize>(t: Tiles, phases: &[f32], v: &mut [f32], tiles: Range<usize>) {
            let (tp, vs, plane, gw, count) = (t.padded(), t.xi_stride(t.c), t.plane(), t.gw(), t.count());
            let (src, dst) = (phases.as_ptr(), v.as_mut_ptr());
            for ch in 0..t.c {
                for half in tiles.start / H..tiles.end.min(tp) / H {
                    let t0 = half * H;
                    // Pixel (r, c) of the 8 tiles from t0, as in the AVX-512 path: run q of S
                    // tiles from tile t0 + q S at that tile's number plus its row of tiles.
                    // SAFETY: each run's pixels lie inside the phase's row (tile / TW + r / 2
                    // <= TH, tile % TW + c / 2 + min(S, 8) <= TW + 1), inside `phases`;
                    // tiles from `count` on are not read.
                    let d = |r: usize, c: usize| unsafe {
                        let base = ((r % 2) * 2 + c % 2) * t.c * plane + ch * plane + (r / 2) * gw + c / 2;
                        let at = |q: usize| {
                            let tile = t0 + q * S;
                            src.add(base + tile + tile / t.tw)
                        };
                        if S >= H {
                            if t0 < count {
                                _mm256_loadu_ps(at(0))
                            } else {
                                _mm256_setzero_ps()
                            }
                        } else {
                            let valid = count.saturating_sub(t0).div_ceil(S).min(H / S);
                            runs::<S>(at, valid)
                        }
                    };
                    let rows = [
                        b_t([d(0, 0), d(0, 1), d(0, 2), d(0, 3)]),
                        b_t([d(1, 0), d(1, 1), d(1, 2), d(1, 3)]),
                        b_t([d(2, 0), d(2, 1), d(2, 2), d(2, 3)]),
                        b_t([d(3, 0), d(3, 1), d(3, 2), d(3, 3)]),
                    ];
                    let cols: [[__m256; 4]; 4] =
                        core::array::from_fn(|k| b_t([rows[0][k], rows[1][k], rows[2][k], rows[3][k]]));
                    for (k, col) in cols.into_iter().enumerate() {
                        for (r, lanes) in col.into_iter().enumerate() {
                            // SAFETY: row (4 r + k, ch) of V has `tp` >= t0 + 8 entries.
                            unsafe { _mm256_storeu_ps(dst.add((4 * r + k) * vs + ch * tp + t0), lanes) };
                        }
                    }
                }
            }
        }

        /// Blocks of up to 6 output channels by 16 tiles (12 sums in registers); each
        /// channel of U broadcast against the block's two registers of V.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn product(t: Tiles, u: &[f32], v: &[f32], m: &mut [f32], tiles: Range<usize>) {
            let (tp, c) = (t.padded(), t.c);
            assert!(u.len() >= t.oc * c && v.len() >= c * tp && m.len() >= t.oc * tp);
            let mut o = 0;
            while o < t.oc {
                let rows = (t.oc - o).min(6);
                let (u, m) = (&u[o * c..], &mut m[o * tp..]);
                // SAFETY: rows o..o + rows of U and M exist (asserted above), the tiles lie
                // within `tp`.
                unsafe {
                    match rows {
                        6 => product_rows::<6>(c, tp, u, v, m, tiles.clone()),
                        5 => product_rows::<5>(c, tp, u, v, m, tiles.clone()),
                        4 => product_rows::<4>(c, tp, u, v, m, tiles.clone()),
                        3 => product_rows::<3>(c, tp, u, v, m, tiles.clone()),
                        2 => product_rows::<2>(c, tp, u, v, m, tiles.clone()),
                        _ => product_rows::<1>(c, tp, u, v, m, tiles.clone()),
                    }
                }
                o += rows;
            }
        }

        /// Eight tiles at a time, a tile's two columns interleaved by unpacking and swapping
        /// halves; runs of fewer than 8 pixels (rows of 1 or 2 tiles) written one by one.
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn outputs<const S: usize>(
            t: Tiles,
            m: &[f32],
            bias: &[f32],
            residual: Option<&[f32]>,
            relu: bool,
            batch: usize,
            b: usize,
            y: *mut f32,
            tiles: Range<usize>,
            outs: Range<usize>,
        ) {
            let (tp, ms, count, ow) = (t.padded(), t.xi_stride(t.oc), t.count(), 2 * t.tw);
            let ohw = 2 * t.th * ow;
            let (mp, yp) = (m.as_ptr(), y);
            let rp = residual.map(|r| r.as_ptr());
            // The 8 pixels from `to`: plus the residual, ReLU'd, stored.
            // SAFETY: the callers pass runs of pixels inside an output row of sample b's
            // planes in `outs`, which this call alone writes (the contract); the residual is
            // as long as y.
            let store = |to: usize, mut value: __m256| unsafe {
                if let Some(rp) = rp {
                    value = _mm256_add_ps(value, _mm256_loadu_ps(rp.add(to)));
                }
                if relu {
                    value = _mm256_max_ps(value, _mm256_setzero_ps());
                }
                _mm256_storeu_ps(yp.add(to), value);
            };
            for o in outs {
                let plane = (o * batch + b) * ohw;
                let bias = _mm256_set1_ps(bias[o]);
                for half in tiles.start / H..tiles.end.min(count).div_ceil(H) {
                    let t0 = half * H;
                    // SAFETY: row (xi, o) of M holds `tp` >= t0 + 8 entries (the contract).
                    let mm = |xi: usize| unsafe { _mm256_loadu_ps(mp.add(xi * ms + o * tp + t0)) };
                    let cols: [[__m256; 2]; 4] =
                        core::array::from_fn(|c| a_t([mm(c), mm(4 + c), mm(8 + c), mm(12 + c)]));
                    // Row dr of the output tiles, its columns 0 and 1.
                    let rows: [[__m256; 2]; 2] =
                        core::array::from_fn(|dr| a_t([cols[0][dr], cols[1][dr], cols[2][dr], cols[3][dr]]));
                    for (dr, [y0, y1]) in rows.into_iter().enumerate() {
                        let (y0, y1) = (_mm256_add_ps(y0, bias), _mm256_add_ps(y1, bias));
                        // Tiles 0..4 and 4..8, their two columns interleaved.
                        let (low, high) = (_mm256_unpacklo_ps(y0, y1), _mm256_unpackhi_ps(y0, y1));
                        let pair = [
                            _mm256_permute2f128_ps::<0x20>(low, high),
                            _mm256_permute2f128_ps::<0x31>(low, high),
                        ];
                        // Pixel `2 k + column` of the 8 tiles from t0 in the output.
                        let at = |tile: usize| plane + (2 * (tile / t.tw) + dr) * ow + 2 * (tile % t.tw);
                        if S >= 4 {
                            // Tiles t0.. and t0 + 4.. each begin 8 pixels in one output row
                            // (rows of 4 tiles or whole vectors of 16).
                            for (k, &value) in pair.iter().enumerate() {
                                if t0 + 4 * k < count {
                                    store(at(t0 + 4 * k), value);
                                }
                            }
                        } else {
                            let mut lanes = [0.0f32; 16];
                            // SAFETY: 16 floats of stack.
                            unsafe {
                                _mm256_storeu_ps(lanes.as_mut_ptr(), pair[0]);
                                _mm256_storeu_ps(lanes.as_mut_ptr().add(8), pair[1]);
                            }
                            for tile in t0..(t0 + H).min(count) {
                                for column in 0..2 {
                                    let to = at(tile) + column;
                                    // SAFETY: pixel `to` of sample b's planes in `outs` (the
                                    // contract), the residual as long as y.
                                    unsafe {
                                        let mut value = lanes[2 * (tile - t0) + column];
                                        if let Some(rp) = rp {
                                            value += *rp.add(to);
                                        }
                                        if relu {
                                            value = value.max(0.0);
                                        }
                                        *yp.add(to) = value;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `R` rows of [`Kernels::product`], from `u`'s and `m`'s first, for the tiles `tiles`
    /// in blocks of 16.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2 and FMA; `u` holds `R x c`, `v` `c` rows of `tp` (a multiple of 16),
    /// `m` `R` rows of `tp`; `tiles` lies within `tp`, a multiple of 16 long.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn product_rows<const R: usize>(
        c: usize,
        tp: usize,
        u: &[f32],
        v: &[f32],
        m: &mut [f32],
        tiles: Range<usize>,
    ) {
        let (up, vp, mp) = (u.as_ptr(), v.as_ptr(), m.as_mut_ptr());
        for t0 in tiles.step_by(L) {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for k in 0..c {
                // SAFETY: row k of V holds `tp` tiles, U R rows of c (the contract).
                unsafe {
                    let row = vp.add(k * tp + t0);
                    let b = [_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))];
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let a = _mm256_broadcast_ss(&*up.add(r * c + k));
                        acc[0] = _mm256_fmadd_ps(a, b[0], acc[0]);
                        acc[1] = _mm256_fmadd_ps(a, b[1], acc[1]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (n, &acc) in acc.iter().enumerate() {
                    // SAFETY: row r of M holds `tp` tiles (the contract).
                    unsafe { _mm256_storeu_ps(mp.add(r * tp + t0 + 8 * n), acc) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_tile_where_rows_of_tiles_fill_or_divide_a_vector() {
        for (oh, ow) in [(2, 2), (8, 4), (4, 8), (16, 16), (2, 32), (6, 64)] {
            assert!(Tiles::fit(oh, ow), "{oh}x{ow}");
        }
        for (oh, ow) in [(3, 4), (4, 3), (4, 6), (12, 12), (14, 14), (0, 4)] {
            assert!(!Tiles::fit(oh, ow), "{oh}x{ow}");
        }
    }
}
