//! How a batch is split into contiguous parts, one per thread.

use core::ops::Range;

/// The rows of chunk `i` when `0..batch` is split into `chunks` contiguous parts whose sizes
/// differ by at most one (the first `batch % chunks` are the longer ones).
///
/// ```
/// use cnn_runtime::parts::chunk_range;
/// assert_eq!(chunk_range(10, 3, 0), 0..4);
/// assert_eq!(chunk_range(10, 3, 1), 4..7);
/// assert_eq!(chunk_range(10, 3, 2), 7..10);
/// ```
pub fn chunk_range(batch: usize, chunks: usize, i: usize) -> Range<usize> {
    let (base, extra) = (batch / chunks, batch % chunks);
    let start = i * base + i.min(extra);
    start..start + base + usize::from(i < extra)
}
