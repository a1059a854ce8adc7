//! Weights baked into the binary: `#[weights = "..."]` on a `cnn!` declaration embeds a
//! safetensors file with `include_bytes!`, [`gather`]s its tensors into the network's parameter
//! layout at compile time, and reads them in place as `f32`s through [`f32s`]. Nothing is
//! copied at run time and nothing allocated.

/// Bytes with the alignment of `f32`: the generated code wraps `include_bytes!` in this type, in
/// a `static`, so that the tensor data (at offsets the macro checked to be multiples of 4) can be
/// read as `f32`s where it lies.
///
/// ```
/// use cnn_runtime::embedded::{f32s, Aligned};
/// static BYTES: Aligned<[u8; 8]> = Aligned([0, 0, 128, 63, 0, 0, 0, 64]); // 1.0, 2.0 (LE)
/// # #[cfg(target_endian = "little")]
/// assert_eq!(f32s(&BYTES.0), &[1.0, 2.0]);
/// ```
#[repr(C, align(4))]
pub struct Aligned<T: ?Sized>(pub T);

/// Gathers `N` bytes from `src` at compile time: the `(start, len)` ranges of `moves`, in order,
/// end to end. The generated code uses it to put the tensors of an embedded safetensors file
/// (which stores them in any order, PyTorch's in name order) into the network's parameter
/// layout. Each range is one `copy_from_slice`, so const evaluation costs next to nothing. On a
/// big-endian target the little-endian `f32`s of the file are turned to native order.
///
/// # Panics
///
/// (At compile time, when evaluated in a `static`.) If a range runs past `src` or the ranges do
/// not add up to `N` bytes.
///
/// ```
/// use cnn_runtime::embedded::gather;
/// const OUT: [u8; 3] = gather::<3>(b"abcdef", &[(4, 2), (0, 1)]);
/// assert_eq!(&OUT, b"efa");
/// ```
pub const fn gather<const N: usize>(src: &[u8], moves: &[(usize, usize)]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut done = 0;
    let mut i = 0;
    while i < moves.len() {
        let (start, len) = moves[i];
        assert!(
            start <= src.len() && len <= src.len() - start,
            "gather: a range runs past the source"
        );
        assert!(len <= N - done, "gather: the ranges hold more than N bytes");
        let (_, from) = src.split_at(start);
        let (from, _) = from.split_at(len);
        let (_, to) = out.split_at_mut(done);
        let (to, _) = to.split_at_mut(len);
        to.copy_from_slice(from);
        done += len;
        i += 1;
    }
    assert!(done == N, "gather: the ranges hold fewer than N bytes");
    if cfg!(target_endian = "big") {
        let mut k = 0;
        while k + 4 <= N {
            let (a, b) = (out[k], out[k + 1]);
            (out[k], out[k + 1]) = (out[k + 3], out[k + 2]);
            (out[k + 2], out[k + 3]) = (b, a);
            k += 4;
        }
    }
    out
}

/// `bytes` read in place as native-endian `f32`s: the output of [`gather`] in an [`Aligned`]
/// static.
///
/// # Panics
///
/// If `bytes` does not start at a multiple of 4 or its length is not a multiple of 4. Slices of
/// an [`Aligned`] static at offsets that are multiples of 4 never panic.
///
/// ```
/// use cnn_runtime::embedded::{f32s, Aligned};
/// static BYTES: Aligned<[u8; 8]> = Aligned([0, 0, 192, 63, 0, 0, 0, 192]);
/// # #[cfg(target_endian = "little")]
/// assert_eq!(f32s(&BYTES.0), &[1.5, -2.0]);
/// ```
#[inline]
pub fn f32s(bytes: &'static [u8]) -> &'static [f32] {
    assert!(
        (bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<f32>()),
        "embedded::f32s: the bytes are not 4-byte aligned"
    );
    assert!(
        bytes.len().is_multiple_of(4),
        "embedded::f32s: {} bytes are not a whole number of f32s",
        bytes.len()
    );
    // SAFETY: the pointer is aligned for f32 and the length a multiple of 4 (both asserted
    // above), so `len / 4` f32s lie inside the borrowed bytes, which live for 'static and are
    // never written (a shared borrow). Every bit pattern is a valid f32.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DATA: Aligned<[u8; 12]> = Aligned([0, 0, 128, 63, 0, 0, 0, 192, 0, 0, 0, 0]);

    #[test]
    fn reads_in_place() {
        let v = f32s(&DATA.0);
        assert_eq!(v, &[1.0, -2.0, 0.0]);
        assert_eq!(v.as_ptr() as usize, DATA.0.as_ptr() as usize);
        assert_eq!(f32s(&DATA.0[4..8]), &[-2.0]);
    }

    #[test]
    fn gathers_in_order() {
        static G: Aligned<[u8; 8]> = Aligned(gather::<8>(&[9, 9, 1, 2, 3, 4, 5, 6, 7, 8], &[(6, 4), (2, 4)]));
        #[cfg(target_endian = "little")]
        assert_eq!(G.0, [5, 6, 7, 8, 1, 2, 3, 4]);
        assert_eq!(f32s(&G.0).len(), 2);
    }

    #[test]
    #[should_panic(expected = "not 4-byte aligned")]
    fn refuses_misaligned() {
        f32s(&DATA.0[1..5]);
    }

    #[test]
    #[should_panic(expected = "not a whole number")]
    fn refuses_ragged() {
        f32s(&DATA.0[..6]);
    }
}
