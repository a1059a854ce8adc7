//! Winograd's minimal filtering, F(2x2, 3x3), for stride-1 3x3 convolutions: each 2x2 tile
//! of the output from a 4x4 tile of the padded input with 16 multiplications per input and
//! output channel instead of 36 (Lavin and Gray, "Fast Algorithms for Convolutional Neural
//! Networks", 2015; the transforms oneDNN and NNPACK use).
//!
//! With `B^T`, `G` and `A^T` the matrices of the algorithm, the output tile is
//! `Y = A^T [(G g G^T) . (B^T d B)] A` for a 3x3 kernel `g` and a 4x4 input tile `d`, summed
//! over the input channels. Over whole images: transform the weight once into `U [16, OC, C]`;
//! then, a block of tiles at a time (so that the transformed tiles stay in cache), transform
//! the input tiles into `V [16, C, tiles]`, multiply `M_xi [OC, tiles] = U_xi [OC, C] x
//! V_xi [C, tiles]` for each of the 16 positions `xi` of a transformed tile (the matrix kernels
//! of `simd`), and transform the products back into output tiles ([`forward_sample`]). The
//! backward pass reuses the pieces: the input gradient is the same convolution of the output
//! gradient with the kernels flipped and transposed ([`weights`] with `Flip::Yes`), and the
//! weight gradient is `G^T [sum over tiles of (A dY A^T) . V] G` ([`output_grads`],
//! [`multiply_grads`], then [`finish_weight_grad`]).
//!
//! Tile `(i, j)` reads rows `2i..2i+4` and columns `2j..2j+4` of the padded image, so the
//! padded image is split into its four phases (even and odd rows and columns, as a stride-2
//! convolution's input), `[4, C, TH+1, TW+1]`: pixel `(2i + r, 2j + c)` of the tile is pixel
//! `(i + r/2, j + c/2)` of phase `(r % 2, c % 2)`. Numbering the tiles `i * (TW+1) + j`
//! ("wide" tiles, one past each row's last, whose results are dropped), each of the 16 pixels
//! of 16 consecutive tiles is one contiguous load. The output tiles are written the same way,
//! as four phases of the output, interleaved when the rows are written out. The transforms are
//! plain loops over 16 lanes, compiled once per instruction set: only additions and constant
//! multiplications, so every path gives the same bits.

use core::ops::{Add, Neg, Sub};

use crate::simd::{small_gemm, small_gemm_nt, Isa, Mat, Path, Store};

/// Positions of a transformed 4x4 tile.
pub(crate) const XI: usize = 16;
/// Tiles transformed at once.
const L: usize = 16;
/// Tiles multiplied at once in the forward pass: two vectors of the matrix kernel's columns.
const BLOCK: usize = 4096;

/// The tiling of one stride-1 3x3 convolution, padding 1, of `[C, OH, OW]` (`OH`, `OW` even)
/// into `[OC, OH, OW]`, and the sizes of its buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tiles {
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub oc: usize,
    /// Tile rows, `OH / 2`.
    pub th: usize,
    /// Tiles in a row, `OW / 2`.
    pub tw: usize,
}

impl Tiles {
    /// Width of a phase of the padded image, and tiles in a wide row, `TW + 1`.
    pub const fn gw(&self) -> usize {
        self.tw + 1
    }

    /// Elements of one phase of one channel, `(TH + 1) * (TW + 1)`.
    const fn plane(&self) -> usize {
        (self.th + 1) * self.gw()
    }

    /// Wide tiles, `TH * (TW + 1)`.
    pub const fn wide(&self) -> usize {
        self.th * self.gw()
    }

    /// Distance between the rows of whole-image buffers of tiles: the wide tiles, rounded up
    /// to whole vectors.
    pub const fn stride(&self) -> usize {
        self.wide().next_multiple_of(L)
    }

    /// Elements of the phases of one padded sample, `[4, C, TH+1, TW+1]`, and room for the
    /// lanes past the last tile that a 16-tile load reads.
    pub const fn phases_len(&self) -> usize {
        4 * self.c * self.plane() + L
    }

    /// Elements of a transformed weight, `[16, OC, C]`.
    pub const fn u_len(&self) -> usize {
        XI * self.oc * self.c
    }

    /// Tiles multiplied at once in the forward pass.
    pub const fn block(&self) -> usize {
        if BLOCK < self.stride() {
            BLOCK
        } else {
            self.stride()
        }
    }

    /// Elements of a block of transformed input tiles, `[16, C, BLOCK]`.
    pub const fn v_block_len(&self) -> usize {
        XI * self.c * self.block()
    }

    /// Elements of a block of products, `[16, OC, BLOCK]`.
    pub const fn m_block_len(&self) -> usize {
        XI * self.oc * self.block()
    }

    /// Elements of a whole sample's transformed input tiles, `[16, C, stride]`.
    pub const fn v_len(&self) -> usize {
        XI * self.c * self.stride()
    }

    /// Elements of a whole sample's transformed output gradient tiles, `[16, OC, stride]`.
    pub const fn m_len(&self) -> usize {
        XI * self.oc * self.stride()
    }

    /// Elements of the four phases of one output sample (or output gradient), `[4, OC, stride]`.
    pub const fn q_len(&self) -> usize {
        4 * self.oc * self.stride()
    }

    /// Scratch [`forward_sample`] needs besides the phases and `U`: its buffers, and room to
    /// start them on a cache line ([`aligned`]).
    pub const fn forward_len(&self) -> usize {
        self.v_block_len() + self.m_block_len() + self.q_len() + L
    }

    /// The same tiling with input and output channels swapped: the input gradient's.
    pub const fn transposed(&self) -> Tiles {
        Tiles { c: self.oc, oc: self.c, ..*self }
    }
}

/// Whether [`weights`] transforms the kernels as they are or flipped, with input and output
/// channels swapped (the convolution the input gradient is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flip {
    No,
    Yes,
}

/// Defines `$name`, which runs `$body` on the vectors of the path [`Isa::current`] chose,
/// compiled for that path.
macro_rules! per_path {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) = $body:ident) => {
        $(#[$m])*
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512($($arg: $ty),*) {
                // SAFETY: this function runs only where the CPU has AVX-512F.
                unsafe { $body::<x86::Zmm>($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                // SAFETY: this function runs only where the CPU has AVX2.
                unsafe { $body::<x86::Ymm2>($($arg),*) }
            }
            match Isa::current().path() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the path is only chosen on CPUs with AVX-512F.
                Path::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the path is only chosen on CPUs with AVX2 and FMA.
                Path::Avx2 => unsafe { avx2($($arg),*) },
                // SAFETY: plain arrays run anywhere.
                _ => unsafe { $body::<Lanes>($($arg),*) },
            }
        }
    };
}

per_path! {
    /// `U [16, rows, cols]` from 3x3 kernels, `u_xi(r, c) = (G g G^T)_xi * scale[r]`: for
    /// `Flip::No` the weight `[OC, C, 3, 3]` with `rows = OC` (the forward pass; `scale` a
    /// folded BatchNorm's, one per output channel), for `Flip::Yes` kernel `(c, o)` is kernel
    /// `(o, c)` turned by 180 degrees, `rows = C` (the input gradient's convolution).
    ///
    /// # Panics
    ///
    /// If `weight` is not `rows * cols * 9` long, `u` is shorter than `16 * rows * cols`, or
    /// `scale` is not `rows` long.
    fn weights(rows: usize, cols: usize, weight: &[f32], flip: Flip, scale: Option<&[f32]>, u: &mut [f32]) = weights_body
}

/// # Safety
///
/// The CPU runs `V`'s instructions (the body does not use them).
#[inline(always)]
unsafe fn weights_body<V: Vector>(rows: usize, cols: usize, weight: &[f32], flip: Flip, scale: Option<&[f32]>, u: &mut [f32]) {
    assert_eq!(
        weight.len(),
        rows * cols * 9,
        "winograd: a weight of {rows}x{cols} 3x3 kernels, got {} elements",
        weight.len()
    );
    assert!(u.len() >= XI * rows * cols, "winograd: U holds {} elements", u.len());
    assert!(scale.is_none_or(|s| s.len() == rows), "winograd: one scale a row");
    for r in 0..rows {
        let sc = scale.map_or(1.0, |s| s[r]);
        for c0 in (0..cols).step_by(L) {
            let n = L.min(cols - c0);
            // g[k][lane]: tap k of kernel (r, c0 + lane).
            let mut g = [[0.0f32; L]; 9];
            for l in 0..n {
                let (kernel, taps) = match flip {
                    Flip::No => ((r * cols + c0 + l) * 9, [0, 1, 2, 3, 4, 5, 6, 7, 8]),
                    Flip::Yes => (((c0 + l) * rows + r) * 9, [8, 7, 6, 5, 4, 3, 2, 1, 0]),
                };
                let k: &[f32; 9] = weight[kernel..kernel + 9].try_into().unwrap();
                for (gk, t) in g.iter_mut().zip(taps) {
                    gk[l] = k[t] * sc;
                }
            }
            // h = G g (4x3), then U = h G^T (4x4).
            let mut out = [[0.0f32; L]; XI];
            for l in 0..L {
                let gg = |i: usize, j: usize| g[3 * i + j][l];
                let mut h = [[0.0f32; 3]; 4];
                for j in 0..3 {
                    let (a, b, c) = (gg(0, j), gg(1, j), gg(2, j));
                    h[0][j] = a;
                    h[1][j] = 0.5 * (a + b + c);
                    h[2][j] = 0.5 * (a - b + c);
                    h[3][j] = c;
                }
                for (i, h) in h.iter().enumerate() {
                    let [a, b, c] = *h;
                    out[4 * i][l] = a;
                    out[4 * i + 1][l] = 0.5 * (a + b + c);
                    out[4 * i + 2][l] = 0.5 * (a - b + c);
                    out[4 * i + 3][l] = c;
                }
            }
            for (xi, lanes) in out.iter().enumerate() {
                u[(xi * rows + r) * cols + c0..][..n].copy_from_slice(&lanes[..n]);
            }
        }
    }
}

/// 16 lanes of `f32` (16 tiles) in registers, as one instruction set holds them. A value
/// exists only on a CPU that runs its instructions: [`read`](Vector::read) is its one
/// constructor, and its callers promise that; so the arithmetic is safe.
trait Vector: Copy + Add<Output = Self> + Sub<Output = Self> + Neg<Output = Self> {
    /// The 16 elements at `p`.
    ///
    /// # Safety
    ///
    /// `p..p + 16` lies inside one slice, and the CPU runs this type's instructions.
    unsafe fn read(p: *const f32) -> Self;

    /// Writes the 16 lanes at `p`.
    ///
    /// # Safety
    ///
    /// `p..p + 16` lies inside one mutable slice.
    unsafe fn write(self, p: *mut f32);
}

/// The portable lanes: an array, which the compiler vectorizes as it can.
#[derive(Clone, Copy)]
struct Lanes([f32; L]);

impl Vector for Lanes {
    #[inline(always)]
    unsafe fn read(p: *const f32) -> Lanes {
        // SAFETY: as the caller promises; `read_unaligned` needs no alignment.
        Lanes(unsafe { p.cast::<[f32; L]>().read_unaligned() })
    }

    #[inline(always)]
    unsafe fn write(self, p: *mut f32) {
        // SAFETY: as the caller promises.
        unsafe { p.cast::<[f32; L]>().write_unaligned(self.0) }
    }
}

impl Add for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn add(mut self, b: Lanes) -> Lanes {
        self.0.iter_mut().zip(b.0).for_each(|(a, b)| *a += b);
        self
    }
}

impl Sub for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn sub(mut self, b: Lanes) -> Lanes {
        self.0.iter_mut().zip(b.0).for_each(|(a, b)| *a -= b);
        self
    }
}

impl Neg for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn neg(mut self) -> Lanes {
        self.0.iter_mut().for_each(|a| *a = -*a);
        self
    }
}

/// The lanes in AVX2 and AVX-512 registers: explicit loads and stores, which the compiler
/// keeps (it turns overlapping loads of plain arrays into shuffles).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Vector, L};
    use core::arch::x86_64::*;
    use core::ops::{Add, Neg, Sub};

    /// One AVX-512 register; exists only on a CPU with AVX-512F (see [`Vector`]).
    #[derive(Clone, Copy)]
    pub struct Zmm(__m512);

    impl Vector for Zmm {
        #[inline(always)]
        unsafe fn read(p: *const f32) -> Zmm {
            // SAFETY: as the caller promises.
            Zmm(unsafe { _mm512_loadu_ps(p) })
        }

        #[inline(always)]
        unsafe fn write(self, p: *mut f32) {
            // SAFETY: as the caller promises; a value exists only with AVX-512F.
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
    }

    impl Add for Zmm {
        type Output = Zmm;
        #[inline(always)]
        fn add(self, b: Zmm) -> Zmm {
            // SAFETY: a value exists only on a CPU with AVX-512F.
            Zmm(unsafe { _mm512_add_ps(self.0, b.0) })
        }
    }

    impl Sub for Zmm {
        type Output = Zmm;
        #[inline(always)]
        fn sub(self, b: Zmm) -> Zmm {
            // SAFETY: a value exists only on a CPU with AVX-512F.
            Zmm(unsafe { _mm512_sub_ps(self.0, b.0) })
        }
    }

    impl Neg for Zmm {
        type Output = Zmm;
        #[inline(always)]
        fn neg(self) -> Zmm {
            // The sign bit flipped, as `-x` on the portable path (zero becomes minus zero).
            // SAFETY: a value exists only on a CPU with AVX-512F.
            Zmm(unsafe { _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(self.0), _mm512_set1_epi32(i32::MIN))) })
        }
    }

    /// Two AVX2 registers; exists only on a CPU with AVX2 (see [`Vector`]).
    #[derive(Clone, Copy)]
    pub struct Ymm2(__m256, __m256);

    impl Vector for Ymm2 {
        #[inline(always)]
        unsafe fn read(p: *const f32) -> Ymm2 {
            // SAFETY: as the caller promises.
            unsafe { Ymm2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(L / 2))) }
        }

        #[inline(always)]
        unsafe fn write(self, p: *mut f32) {
            // SAFETY: as the caller promises; a value exists only with AVX2.
            unsafe {
                _mm256_storeu_ps(p, self.0);
                _mm256_storeu_ps(p.add(L / 2), self.1);
            }
        }
    }

    impl Add for Ymm2 {
        type Output = Ymm2;
        #[inline(always)]
        fn add(self, b: Ymm2) -> Ymm2 {
            // SAFETY: a value exists only on a CPU with AVX2.
            unsafe { Ymm2(_mm256_add_ps(self.0, b.0), _mm256_add_ps(self.1, b.1)) }
        }
    }

    impl Sub for Ymm2 {
        type Output = Ymm2;
        #[inline(always)]
        fn sub(self, b: Ymm2) -> Ymm2 {
            // SAFETY: a value exists only on a CPU with AVX2.
            unsafe { Ymm2(_mm256_sub_ps(self.0, b.0), _mm256_sub_ps(self.1, b.1)) }
        }
    }

    impl Neg for Ymm2 {
        type Output = Ymm2;
        #[inline(always)]
        fn neg(self) -> Ymm2 {
            // SAFETY: a value exists only on a CPU with AVX2.
            unsafe {
                let sign = _mm256_set1_ps(-0.0);
                Ymm2(_mm256_xor_ps(self.0, sign), _mm256_xor_ps(self.1, sign))
            }
        }
    }
}

/// `B^T [a, b, c, d]`: the input transform along one axis.
#[inline(always)]
fn b_t<V: Vector>([a, b, c, d]: [V; 4]) -> [V; 4] {
    [a - c, b + c, c - b, b - d]
}

per_path! {
    /// `V [16, C, block]`: the tiles `t0..t0 + block` (wide numbering, see the module doc) of
    /// the padded sample, `B^T d B`, from its phases `[4, C, TH+1, TW+1]`. Tiles past the
    /// last are transformed from whatever the phases hold there.
    ///
    /// # Panics
    ///
    /// If `phases` or `v` is shorter than `t` and `block` need.
    fn inputs(t: Tiles, phases: &[f32], t0: usize, block: usize, v: &mut [f32]) = inputs_body
}

/// # Safety
///
/// The CPU runs `V`'s instructions.
#[inline(always)]
unsafe fn inputs_body<V: Vector>(t: Tiles, phases: &[f32], t0: usize, block: usize, v: &mut [f32]) {
    assert!(
        phases.len() >= t.phases_len()
            && v.len() >= XI * t.c * block
            && block.is_multiple_of(L)
            && t0 + block <= t.stride(),
        "winograd: phases and V must hold {} and {} elements, got {} and {}",
        t.phases_len(),
        XI * t.c * block,
        phases.len(),
        v.len()
    );
    let (plane, gw) = (t.plane(), t.gw());
    // Where pixel (r, c) of tile 0 lies, for each pixel of a tile.
    let mut first = [0; XI];
    for (rc, at) in first.iter_mut().enumerate() {
        let (r, c) = (rc / 4, rc % 4);
        *at = ((r % 2) * 2 + c % 2) * t.c * plane + (r / 2) * gw + c / 2;
    }
    // The loads reach `first[15] + (C - 1) * plane + t0 + block`, inside the phases (the
    // stride's last vector ends at most 15 past the last wide tile, the phases have 16 to
    // spare); the stores `((15 * C + C - 1) * block + block`, inside V: both checked above.
    let (src, dst) = (phases.as_ptr(), v.as_mut_ptr());
    for ch in 0..t.c {
        for l0 in (0..block).step_by(L) {
            let at = ch * plane + t0 + l0;
            // SAFETY: inside the phases, as said above.
            let d = |r: usize, c: usize| unsafe { V::read(src.add(first[4 * r + c] + at)) };
            // Each row of the tiles along the columns (d B), then each column along the rows.
            let rows = [
                b_t([d(0, 0), d(0, 1), d(0, 2), d(0, 3)]),
                b_t([d(1, 0), d(1, 1), d(1, 2), d(1, 3)]),
                b_t([d(2, 0), d(2, 1), d(2, 2), d(2, 3)]),
                b_t([d(3, 0), d(3, 1), d(3, 2), d(3, 3)]),
            ];
            for k in 0..4 {
                let col = b_t([rows[0][k], rows[1][k], rows[2][k], rows[3][k]]);
                for (r, lanes) in col.into_iter().enumerate() {
                    // SAFETY: inside V, as said above.
                    unsafe { lanes.write(dst.add(((4 * r + k) * t.c + ch) * block + l0)) };
                }
            }
        }
    }
}

/// `M_xi [OC, n] = U_xi [OC, C] x V_xi [C, n]` for each position `xi`, the rows of `V` and
/// `M` `block` apart.
fn multiply(t: Tiles, u: &[f32], v: &[f32], block: usize, n: usize, m: &mut [f32]) {
    for xi in 0..XI {
        small_gemm(
            t.oc,
            t.c,
            n,
            Mat::rows(&u[xi * t.oc * t.c..], t.c),
            Mat::rows(&v[xi * t.c * block..], block),
            &mut m[xi * t.oc * block..],
            block,
            Store::Overwrite,
        );
    }
}

/// `A^T [a, b, c, d]`: the output transform along one axis.
#[inline(always)]
fn a_t<V: Vector>([a, b, c, d]: [V; 4]) -> [V; 2] {
    [a + b + c, b - c - d]
}

per_path! {
    /// The output tiles `t0..t0 + block`, `A^T m A`, from their products `M [16, OC, block]`,
    /// into the four phases of the output, `q [4, OC, stride]`.
    ///
    /// # Panics
    ///
    /// If `m` or `q` is shorter than `t` and `block` need.
    fn outputs(t: Tiles, m: &[f32], t0: usize, block: usize, q: &mut [f32]) = outputs_body
}

/// # Safety
///
/// The CPU runs `V`'s instructions.
#[inline(always)]
unsafe fn outputs_body<V: Vector>(t: Tiles, m: &[f32], t0: usize, block: usize, q: &mut [f32]) {
    let s = t.stride();
    assert!(
        m.len() >= XI * t.oc * block && q.len() >= t.q_len() && block.is_multiple_of(L) && t0 + block <= s,
        "winograd: M and the output phases must hold {} and {} elements, got {} and {}",
        XI * t.oc * block,
        t.q_len(),
        m.len(),
        q.len()
    );
    let xi = t.oc * block;
    // The loads reach `15 * xi + (OC - 1) * block + block` inside M, the stores
    // `(3 * OC + OC - 1) * s + t0 + block` inside q: both checked above.
    let (src, dst) = (m.as_ptr(), q.as_mut_ptr());
    for o in 0..t.oc {
        for l0 in (0..block).step_by(L) {
            let at = o * block + l0;
            // SAFETY: inside M, as said above.
            let mm = |k: usize| unsafe { V::read(src.add(k * xi + at)) };
            // A^T m along the rows, for each column, then along the columns.
            let cols = [
                a_t([mm(0), mm(4), mm(8), mm(12)]),
                a_t([mm(1), mm(5), mm(9), mm(13)]),
                a_t([mm(2), mm(6), mm(10), mm(14)]),
                a_t([mm(3), mm(7), mm(11), mm(15)]),
            ];
            for r in 0..2 {
                let y = a_t([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]);
                for (c, lanes) in y.into_iter().enumerate() {
                    // SAFETY: inside q, as said above.
                    unsafe { lanes.write(dst.add(((2 * r + c) * t.oc + o) * s + t0 + l0)) };
                }
            }
        }
    }
}

/// Output row `y` of channel `o` from the output phases `q`: its even and odd pixels, `TW`
/// each.
pub(crate) fn output_row(t: Tiles, q: &[f32], o: usize, y: usize) -> (&[f32], &[f32]) {
    let (s, r, i) = (t.stride(), y % 2, y / 2);
    let at = |c: usize| ((2 * r + c) * t.oc + o) * s + i * t.gw();
    (&q[at(0)..][..t.tw], &q[at(1)..][..t.tw])
}

/// `out[2j] = even[j]`, `out[2j + 1] = odd[j]`.
///
/// # Panics
///
/// If `out` is not twice as long as `even` and `odd`.
pub(crate) fn interleave(even: &[f32], odd: &[f32], out: &mut [f32]) {
    assert!(
        even.len() == odd.len() && out.len() == 2 * even.len(),
        "winograd: interleave {} and {} into {}",
        even.len(),
        odd.len(),
        out.len()
    );
    for (pair, (&e, &o)) in out.chunks_exact_mut(2).zip(even.iter().zip(odd)) {
        pair[0] = e;
        pair[1] = o;
    }
}

/// `work` from its first element on a 64-byte boundary (at most 15 elements in): stores of
/// whole vectors there do not straddle cache lines, which costs the transforms half their
/// speed.
pub(crate) fn aligned(work: &mut [f32]) -> &mut [f32] {
    let skip = work.as_ptr().align_offset(4 * L).min(L - 1).min(work.len());
    &mut work[skip..]
}

/// One sample through the forward pass, its padded input already split into `phases`: the
/// tiles a block at a time, then `emit(o, y, row)` for each output row `y` of each output
/// channel `o`. `work` holds [`Tiles::forward_len`] elements; `row` `OW`.
pub(crate) fn forward_sample(
    t: Tiles,
    u: &[f32],
    phases: &[f32],
    work: &mut [f32],
    row: &mut [f32],
    mut emit: impl FnMut(usize, usize, &[f32]),
) {
    let (v, rest) = aligned(work).split_at_mut(t.v_block_len());
    let (m, rest) = rest.split_at_mut(t.m_block_len());
    let q = &mut rest[..t.q_len()];
    for t0 in (0..t.wide()).step_by(t.block()) {
        let n = t.block().min(t.wide() - t0);
        let block = n.next_multiple_of(L);
        inputs(t, phases, t0, block, v);
        multiply(t, u, v, block, n, m);
        outputs(t, m, t0, block, q);
    }
    let row = &mut row[..2 * t.tw];
    for o in 0..t.oc {
        for y in 0..2 * t.th {
            let (even, odd) = output_row(t, q, o, y);
            interleave(even, odd, row);
            emit(o, y, row);
        }
    }
}

/// Splits one sample's output gradient, `OC` planes of `[OH, OW]` `plane` apart in `dy`, into
/// four phases `[4, OC, stride]` in the wide numbering of [`outputs`]: pixel `(2i + r, 2j + c)`
/// of channel `o` at `q[((2r + c) * OC + o) * stride + i * (TW + 1) + j]`. The wide tiles'
/// extra column and the lanes past the last tile are left as they are (zero, for the weight
/// gradient: the caller zeroes `q` once).
pub(crate) fn split_output(t: Tiles, dy: &[f32], plane: usize, q: &mut [f32]) {
    let (s, ow) = (t.stride(), 2 * t.tw);
    for o in 0..t.oc {
        for (y, px) in dy[o * plane..][..4 * t.th * t.tw].chunks_exact(ow).enumerate() {
            let (r, i) = (y % 2, y / 2);
            let at = |c: usize| ((2 * r + c) * t.oc + o) * s + i * t.gw();
            let (even, odd) = (at(0), at(1));
            for (j, pair) in px.chunks_exact(2).enumerate() {
                q[even + j] = pair[0];
                q[odd + j] = pair[1];
            }
        }
    }
}

/// `A [a, b]`: the transpose of the output transform along one axis.
#[inline(always)]
fn a<V: Vector>([a, b]: [V; 2]) -> [V; 4] {
    [a, a + b, a - b, -b]
}

per_path! {
    /// `dM [16, OC, stride]`: every wide tile of the output gradient, `A dy A^T`, from its
    /// phases `q [4, OC, stride]` ([`split_output`]).
    ///
    /// # Panics
    ///
    /// If `q` or `dm` is shorter than `t` needs.
    fn output_grads(t: Tiles, q: &[f32], dm: &mut [f32]) = output_grads_body
}

/// # Safety
///
/// The CPU runs `V`'s instructions.
#[inline(always)]
unsafe fn output_grads_body<V: Vector>(t: Tiles, q: &[f32], dm: &mut [f32]) {
    let s = t.stride();
    assert!(
        q.len() >= t.q_len() && dm.len() >= t.m_len(),
        "winograd: the output gradient's phases and dM must hold {} and {} elements, got {} and {}",
        t.q_len(),
        t.m_len(),
        q.len(),
        dm.len()
    );
    // Loads and stores reach `(3 * OC + OC - 1) * s + s` in q and `(15 * OC + OC - 1) * s + s`
    // in dM: both checked above.
    let (src, dst) = (q.as_ptr(), dm.as_mut_ptr());
    for o in 0..t.oc {
        for l0 in (0..s).step_by(L) {
            // SAFETY: inside q, as said above.
            let g = |r: usize, c: usize| unsafe { V::read(src.add(((2 * r + c) * t.oc + o) * s + l0)) };
            // Each row of the tiles along the columns, then each column along the rows.
            let rows = [a([g(0, 0), g(0, 1)]), a([g(1, 0), g(1, 1)])];
            for k in 0..4 {
                for (r, lanes) in a([rows[0][k], rows[1][k]]).into_iter().enumerate() {
                    // SAFETY: inside dM, as said above.
                    unsafe { lanes.write(dst.add(((4 * r + k) * t.oc + o) * s + l0)) };
                }
            }
        }
    }
}

/// `dU_xi [OC, C] += dM_xi [OC, tiles] x V_xi [C, tiles]^T` for each position `xi`: one
/// sample's part of the transformed weight gradient (wide tiles past a row's end add nothing:
/// their `dM` is zero).
pub(crate) fn multiply_grads(t: Tiles, dm: &[f32], v: &[f32], du: &mut [f32]) {
    let s = t.stride();
    for xi in 0..XI {
        small_gemm_nt(
            t.oc,
            t.c,
            t.wide(),
            Mat::rows(&dm[xi * t.oc * s..], s),
            Mat::rows(&v[xi * t.c * s..], s),
            &mut du[xi * t.oc * t.c..],
            t.c,
            Store::Accumulate,
        );
    }
}

/// `dweight [OC, C, 3, 3] += G^T dU G` for each kernel: the weight gradient from the
/// transformed one, `dU [16, OC, C]`.
///
/// # Panics
///
/// If `du` or `dweight` is shorter than `t` needs.
pub(crate) fn finish_weight_grad(t: Tiles, du: &[f32], dweight: &mut [f32]) {
    let pairs = t.oc * t.c;
    assert!(
        du.len() >= XI * pairs && dweight.len() >= 9 * pairs,
        "winograd: dU and dweight must hold {} and {} elements",
        XI * pairs,
        9 * pairs
    );
    for p in 0..pairs {
        let d = |xi: usize| du[xi * pairs + p];
        // G^T dU (3x4), then (G^T dU) G (3x3); G^T's rows: [1, .5, .5, 0], [0, .5, -.5, 0],
        // [0, .5, .5, 1].
        let mut q = [[0.0f32; 4]; 3];
        for k in 0..4 {
            let (a, b, c, e) = (d(k), d(4 + k), d(8 + k), d(12 + k));
            q[0][k] = a + 0.5 * (b + c);
            q[1][k] = 0.5 * (b - c);
            q[2][k] = 0.5 * (b + c) + e;
        }
        let g = &mut dweight[9 * p..][..9];
        for (i, [a, b, c, e]) in q.into_iter().enumerate() {
            g[3 * i] += a + 0.5 * (b + c);
            g[3 * i + 1] += 0.5 * (b - c);
            g[3 * i + 2] += 0.5 * (b + c) + e;
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    #[test]
    #[ignore]
    fn wino_timing() {
        for (c, th) in [(16, 16), (32, 8), (64, 4)] {
            let t = Tiles { c, oc: c, th, tw: th };
            let phases = vec![0.5f32; t.phases_len()];
            let mut work = vec![0.0f32; t.forward_len()];
            let mut row = vec![0.0f32; 2 * th];
            let u = vec![0.1f32; t.u_len()];
            let mut v = vec![0.0f32; t.v_len()];
            let mut dm = vec![0.0f32; t.m_len()];
            let mut du = vec![0.0f32; t.u_len()];
            let q = vec![0.25f32; t.q_len()];
            let n = 2000;
            let time = |f: &mut dyn FnMut()| {
                let now = std::time::Instant::now();
                for _ in 0..n {
                    f();
                }
                now.elapsed().as_secs_f64() / n as f64 * 1e6
            };
            let mut sink = 0.0;
            for misalign in [0usize, 4] {
                let mut big = vec![0.0f32; t.forward_len() + 64];
                let off = (16 - (big.as_ptr() as usize / 4) % 16) % 16 + misalign;
                let work = &mut big[off..];
                let (vb, rest) = work.split_at_mut(t.v_block_len());
                let (m, rest) = rest.split_at_mut(t.m_block_len());
                let q = &mut rest[..t.q_len()];
                let blocks: Vec<(usize, usize, usize)> = (0..t.wide()).step_by(t.block()).map(|t0| { let n = t.block().min(t.wide() - t0); (t0, n, n.next_multiple_of(L)) }).collect();
                let i = time(&mut || for &(t0, _, block) in &blocks { inputs(t, &phases, t0, block, vb) });
                let mu = time(&mut || for &(_, n, block) in &blocks { multiply(t, &u, vb, block, n, m) });
                let o = time(&mut || for &(t0, _, block) in &blocks { outputs(t, m, t0, block, q) });
                let w = time(&mut || for o in 0..t.oc { for y in 0..2 * t.th { let (e, d) = output_row(t, q, o, y); interleave(e, d, &mut row); sink += row[0]; } });
                eprintln!("  misalign {misalign}: inputs {i:.2} multiply {mu:.2} outputs {o:.2} write {w:.2}");
            }
            let a = time(&mut || forward_sample(t, &u, &phases, &mut work, &mut row, |_, _, r| sink += r[0]));
            let b = time(&mut || inputs(t, &phases, 0, t.stride(), &mut v));
            let c2 = time(&mut || output_grads(t, &q, &mut dm));
            let d = time(&mut || multiply_grads(t, &dm, &v, &mut du));
            eprintln!("c {c} th {th}: forward {a:.2} us; backward: inputs {b:.2}, output_grads {c2:.2}, multiply_grads {d:.2} us ({sink})");
        }
    }
}
