//! How a batch of images is laid out in memory, and the transposes between the two layouts.
//!
//! Inputs arrive sample-major, `[batch, C, H, W]` (PyTorch's NCHW). Convolutions produce
//! channel-major `[C, batch, H, W]`, which lets one matrix product cover the whole batch;
//! pooling and activations keep whichever layout they are given, and a flattening step
//! transposes back to sample-major for the dense layers.

/// The order of the batch and channel axes of an image tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[batch, C, H, W]`.
    SampleMajor,
    /// `[C, batch, H, W]`.
    ChannelMajor,
}

impl Layout {
    /// Index of the `H x W` plane of channel `c` of sample `b`.
    ///
    /// ```
    /// use cnn_runtime::layout::Layout;
    /// assert_eq!(Layout::SampleMajor.plane(1, 2, 3, 4), 2 * 3 + 1);
    /// assert_eq!(Layout::ChannelMajor.plane(1, 2, 3, 4), 1 * 4 + 2);
    /// ```
    #[inline]
    pub const fn plane(self, c: usize, b: usize, channels: usize, batch: usize) -> usize {
        match self {
            Layout::SampleMajor => b * channels + c,
            Layout::ChannelMajor => c * batch + b,
        }
    }
}

/// `y[b, c, :] = x[c, b, :]`: channel-major to sample-major, planes of `plane` elements.
///
/// # Panics
///
/// If `x` or `y` does not hold `channels * batch * plane` elements.
///
/// ```
/// use cnn_runtime::layout::{to_channel_major, to_sample_major};
/// let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [C=3, batch=2, plane=1]
/// let mut y = [0.0; 6];
/// to_sample_major(3, 2, 1, &x, &mut y);
/// assert_eq!(y, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
/// let mut back = [0.0; 6];
/// to_channel_major(3, 2, 1, &y, &mut back);
/// assert_eq!(back, x);
/// ```
pub fn to_sample_major(channels: usize, batch: usize, plane: usize, x: &[f32], y: &mut [f32]) {
    transpose_planes(channels, batch, plane, x, y);
}

/// `y[c, b, :] = x[b, c, :]`: sample-major to channel-major, the inverse of [`to_sample_major`].
///
/// # Panics
///
/// If `x` or `y` does not hold `channels * batch * plane` elements.
pub fn to_channel_major(channels: usize, batch: usize, plane: usize, x: &[f32], y: &mut [f32]) {
    transpose_planes(batch, channels, plane, x, y);
}

/// `y[j, i, :] = x[i, j, :]` for `x: [rows, cols, plane]`.
fn transpose_planes(rows: usize, cols: usize, plane: usize, x: &[f32], y: &mut [f32]) {
    let n = rows * cols * plane;
    assert!(
        x.len() == n && y.len() == n,
        "transpose: x and y must hold {rows}*{cols}*{plane} = {n} elements, got {} and {}",
        x.len(),
        y.len()
    );
    for i in 0..rows {
        for j in 0..cols {
            y[(j * rows + i) * plane..][..plane].copy_from_slice(&x[(i * cols + j) * plane..][..plane]);
        }
    }
}
