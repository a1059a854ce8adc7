//! Labelled image data sets: images of any shape `[C, H, W]` as `u8`, any number of classes,
//! read from the three formats users have on disk, and augmented on the fly.
//!
//! - [`Mnist`]: IDX files (MNIST, Fashion-MNIST, KMNIST), gzipped or not;
//! - [`Cifar10`]: CIFAR-10's binary version (`data_batch_1.bin` .. `data_batch_5.bin`,
//!   `test_batch.bin`);
//! - [`ImageFolder`]: `DIR/train/<class>/*` and `DIR/test/<class>/*`, PNG and JPEG, with
//!   torchvision's conventions;
//! - [`load_any`]: whichever of the three a folder holds, detected from its contents.
//!
//! Each gives a training and a test [`Dataset`]. Pixels stay `u8` in memory (a quarter of
//! `f32`): CIFAR-10 takes 50,000 x 3,072 + 10,000 x 3,072 bytes = 184 MB, MNIST 55 MB.
//! [`Dataset::gather`] turns samples into the `f32` batch a network takes; [`Augment`] changes
//! them on the way (random crop, flip, shift), per sample and epoch, never storing a copy.
//!
//! Loaders treat files as untrusted: whatever the bytes, they return an [`Error`](crate::Error) naming the
//! file (or the class folder) and never panic; memory is bounded by what the files hold.
//!
//! ```
//! use cnn_runtime::data::Mnist;
//!
//! let mnist = Mnist::load("../data/mnist")?;
//! let test = &mnist.test;
//! assert_eq!((test.len(), test.shape(), test.classes()), (10_000, [1, 28, 28], 10));
//! assert_eq!(test.label(0), 7);
//! # Ok::<(), cnn_runtime::Error>(())
//! ```
//!
//! # IDX files
//!
//! An IDX file is a big-endian header, then raw bytes:
//!
//! - images: magic `0x00000803` (2051: unsigned bytes, three dimensions), then `count`,
//!   `rows`, `cols` as `u32` (16 bytes in all), then `count * rows * cols` pixels, row-major,
//!   0 = background, 255 = ink;
//! - labels: magic `0x00000801` (2049: unsigned bytes, one dimension), then `count` (8 bytes
//!   in all), then `count` label bytes.
//!
//! Each file may be gzip-compressed as a whole; that is detected from its first two bytes
//! (`1f 8b`), not from its name. Files are checked strictly: the magic number, a length that
//! is exactly header plus data, labels in `0..10`, and image and label counts that agree.
//!
//! ## Untrusted IDX files
//!
//! Whatever the bytes, loading never panics and every failure is an [`Error`](crate::Error) naming the
//! file. In particular:
//!
//! - the magic number must be two zero bytes, type code `0x08` (unsigned byte; the other IDX
//!   types are refused by name) and the dimension count of the file's kind;
//! - sizes from the header are multiplied with overflow checks; a product this machine cannot
//!   address is an error, and so is an image of zero rows or columns;
//! - a plain file's length is compared with its header before its data is read, so a header
//!   claiming more than the file holds allocates nothing;
//! - a gzipped file is inflated at most to the size its header declares plus one byte: one
//!   byte more means trailing data (an error), and a gzip bomb is never inflated past that.
//!   The buffer starts at 64 KiB and doubles as data really arrives, so memory is bounded by
//!   both the declared size plus one and twice what the stream actually holds;
//! - labels are checked to be below 10, reporting the first one that is not and its index.

mod augment;
mod cifar;
mod detect;
mod folder;
mod idx;

use std::fmt;

pub use augment::{Augment, Draw};
pub use cifar::Cifar10;
pub use detect::{load_any, Format, Splits};
pub use folder::ImageFolder;
pub use idx::Mnist;

/// One split of a data set: `len()` images of `shape() = [C, H, W]` pixels (`u8`, channel
/// planes, each row-major), each with a label below `classes()`.
///
/// ```
/// use cnn_runtime::data::Dataset;
///
/// // Two 1x2x2 images of 3 classes.
/// let set = Dataset::new([1, 2, 2], 3, vec![0, 1, 2, 3, 255, 0, 0, 255], vec![2, 0]);
/// assert_eq!((set.len(), set.shape(), set.classes()), (2, [1, 2, 2], 3));
/// assert_eq!(set.image(1), [255, 0, 0, 255]);
/// assert_eq!(set.label(0), 2);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Dataset {
    /// `len * C * H * W` pixels, image after image, each in channel planes, each row-major.
    images: Vec<u8>,
    /// One label per image, each below `classes`.
    labels: Vec<u32>,
    /// `[C, H, W]`, each at least 1.
    shape: [usize; 3],
    /// Number of classes: labels are `0..classes`.
    classes: usize,
}

impl Dataset {
    /// A data set from its pixels (`labels.len()` images of `shape`, one after another, each in
    /// channel planes, each plane row-major) and labels, each below `classes`.
    ///
    /// ```
    /// use cnn_runtime::data::Dataset;
    /// let set = Dataset::new([3, 1, 1], 2, vec![10, 20, 30], vec![1]);
    /// assert_eq!(set.image(0), [10, 20, 30]);
    /// ```
    ///
    /// # Panics
    ///
    /// If a dimension of `shape` is 0, `images.len()` is not `labels.len()` times the image
    /// size, or a label is not below `classes` (the message says which).
    pub fn new(shape: [usize; 3], classes: usize, images: Vec<u8>, labels: Vec<u32>) -> Dataset {
        assert!(
            shape.iter().all(|&d| d > 0),
            "Dataset::new: shape {shape:?} holds no pixel"
        );
        let size = shape.iter().product::<usize>();
        assert_eq!(
            Some(images.len()),
            labels.len().checked_mul(size),
            "Dataset::new: {} labels need {} images of {shape:?} ({size} pixels each), but there are {} pixels",
            labels.len(),
            labels.len(),
            images.len()
        );
        if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
            panic!(
                "Dataset::new: label {} of sample {i} is not below the {classes} classes",
                labels[i]
            );
        }
        Dataset {
            images,
            labels,
            shape,
            classes,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the data set holds no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of every image, `[C, H, W]`: `[1, 28, 28]` for MNIST, `[3, 32, 32]` for CIFAR-10.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Channels of each image (1 for grayscale, 3 for RGB).
    pub fn channels(&self) -> usize {
        self.shape[0]
    }

    /// Height of each image in pixels (28 for MNIST).
    pub fn rows(&self) -> usize {
        self.shape[1]
    }

    /// Width of each image in pixels (28 for MNIST).
    pub fn cols(&self) -> usize {
        self.shape[2]
    }

    /// Number of classes: every label is below it.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Pixels of one image, `C * H * W`.
    fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of image `i`: `C * H * W` bytes, channel planes (R, G, B for color), each
    /// row-major; 0 is black (for MNIST: background), 255 white (ink).
    ///
    /// # Panics
    ///
    /// If `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        self.check_index(i);
        let size = self.image_len();
        &self.images[i * size..(i + 1) * size]
    }

    /// The label of sample `i`: its class index, below [`Dataset::classes`].
    ///
    /// # Panics
    ///
    /// If `i >= len()`.
    pub fn label(&self, i: usize) -> u32 {
        self.check_index(i);
        self.labels[i]
    }

    /// All labels, one per sample, each below [`Dataset::classes`].
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Bytes of memory the pixels and labels take.
    ///
    /// ```
    /// use cnn_runtime::data::Mnist;
    /// let mnist = Mnist::load("../data/mnist")?;
    /// assert_eq!(mnist.train.memory_bytes(), 60_000 * (784 + 4));
    /// # Ok::<(), cnn_runtime::Error>(())
    /// ```
    pub fn memory_bytes(&self) -> usize {
        self.images.len() + self.labels.len() * std::mem::size_of::<u32>()
    }

    /// Writes the samples `indices` into a batch: their pixels as `f32` in `[0, 1]` into
    /// `images`, one image after another, and their labels into `labels`.
    ///
    /// A pixel `p` becomes `p as f32 / 255.0`, as torchvision's `ToTensor` computes it, so
    /// inputs are bit-identical to PyTorch's.
    ///
    /// ```
    /// use cnn_runtime::data::Dataset;
    ///
    /// let test = Dataset::load(
    ///     "../data/mnist/t10k-images-idx3-ubyte.gz",
    ///     "../data/mnist/t10k-labels-idx1-ubyte.gz",
    /// )?;
    /// let batch = [3, 1, 4];
    /// let mut images = vec![0.0; batch.len() * 28 * 28];
    /// let mut labels = vec![0; batch.len()];
    /// test.gather(&batch, &mut images, &mut labels);
    /// assert_eq!(labels, [0, 2, 4]);
    /// assert!(images.iter().all(|&x| (0.0..=1.0).contains(&x)));
    /// # Ok::<(), cnn_runtime::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If `images.len() != indices.len() * C * H * W` or `labels.len() != indices.len()`
    /// (the message gives the expected and the actual length), or if an index is not below
    /// `len()`.
    pub fn gather(&self, indices: &[usize], images: &mut [f32], labels: &mut [u32]) {
        let size = self.image_len();
        let [c, h, w] = self.shape;
        let dims = if c == 1 {
            format!("{h}x{w}")
        } else {
            format!("{c}x{h}x{w}")
        };
        assert_eq!(
            images.len(),
            indices.len() * size,
            "gather: `images` must hold {} samples of {dims} pixels ({} f32s), but holds {}",
            indices.len(),
            indices.len() * size,
            images.len()
        );
        assert_eq!(
            labels.len(),
            indices.len(),
            "gather: `labels` must hold one label per index ({}), but holds {}",
            indices.len(),
            labels.len()
        );
        for ((&i, dst), label) in indices.iter().zip(images.chunks_exact_mut(size)).zip(labels) {
            for (x, &p) in dst.iter_mut().zip(self.image(i)) {
                *x = f32::from(p) / 255.0;
            }
            *label = self.labels[i];
        }
    }

    /// The mean and the standard deviation of each channel over every pixel of the set, of
    /// pixel / 255 as [`Dataset::gather`] gives it: what `Normalize` is usually given.
    /// Computed exactly in integers, then in `f64`; an empty set gives means 0 and deviations 1.
    ///
    /// ```
    /// use cnn_runtime::data::Dataset;
    /// let set = Dataset::new([2, 1, 2], 1, vec![0, 255, 51, 51], vec![0]);
    /// let (mean, std) = set.channel_mean_std();
    /// assert_eq!(mean, [0.5, 0.2]);
    /// assert_eq!(std, [0.5, 0.0]);
    /// ```
    pub fn channel_mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let [c, h, w] = self.shape;
        let plane = h * w;
        let mut sums = vec![(0u64, 0u64); c];
        for image in self.images.chunks_exact(c * plane) {
            for (sum, pixels) in sums.iter_mut().zip(image.chunks_exact(plane)) {
                for &p in pixels {
                    sum.0 += u64::from(p);
                    sum.1 += u64::from(p) * u64::from(p);
                }
            }
        }
        let n = (self.len() * plane) as f64;
        if n == 0.0 {
            return (vec![0.0; c], vec![1.0; c]);
        }
        sums.iter()
            .map(|&(s, s2)| {
                let mean = s as f64 / n;
                let var = (s2 as f64 / n - mean * mean).max(0.0);
                ((mean / 255.0) as f32, (var.sqrt() / 255.0) as f32)
            })
            .unzip()
    }

    fn check_index(&self, i: usize) {
        assert!(
            i < self.len(),
            "sample index {i} is out of range for a data set of {} samples",
            self.len()
        );
    }
}

/// Shows the sizes, not the pixels.
impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len())
            .field("shape", &self.shape)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

/// An [`Error::Data`](crate::Error::Data) about `path`.
fn data_error(path: impl Into<std::path::PathBuf>, reason: impl Into<String>) -> crate::Error {
    crate::Error::Data {
        path: path.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "label 3 of sample 1 is not below the 3 classes")]
    fn new_checks_labels() {
        Dataset::new([1, 1, 1], 3, vec![0, 0], vec![0, 3]);
    }

    #[test]
    #[should_panic(expected = "2 labels need 2 images of [1, 2, 1] (2 pixels each), but there are 3 pixels")]
    fn new_checks_lengths() {
        Dataset::new([1, 2, 1], 3, vec![0, 0, 0], vec![0, 1]);
    }

    #[test]
    fn gather_keeps_channel_planes() {
        let set = Dataset::new([2, 1, 2], 5, (0..8).collect(), vec![4, 1]);
        let mut x = vec![0.0; 4];
        let mut y = vec![0; 1];
        set.gather(&[1], &mut x, &mut y);
        assert_eq!(x, [4.0 / 255.0, 5.0 / 255.0, 6.0 / 255.0, 7.0 / 255.0]);
        assert_eq!(y, [1]);
        assert_eq!(set.memory_bytes(), 8 + 8);
    }

    #[test]
    fn channel_statistics_are_exact() {
        // Channel 0: 0 and 255 (mean 0.5, std 0.5); channel 1: all 255.
        let set = Dataset::new([2, 1, 1], 1, vec![0, 255, 255, 255], vec![0, 0]);
        let (mean, std) = set.channel_mean_std();
        assert_eq!((mean, std), (vec![0.5, 1.0], vec![0.5, 0.0]));
        let empty = Dataset::new([3, 2, 2], 1, vec![], vec![]);
        assert_eq!(empty.channel_mean_std(), (vec![0.0; 3], vec![1.0; 3]));
    }
}
