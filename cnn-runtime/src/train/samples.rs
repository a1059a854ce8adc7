//! What a run trains and evaluates on: anything that can gather labelled samples by index.

use crate::data::Dataset;

/// A labelled data set the trainer can read batches from.
///
/// Implemented for [`Dataset`] (pixels scaled to 0..1, any `[C, H, W]`) and for [`Subset`], a part of another
/// set. Implement it for your own data to train on it.
///
/// ```
/// use cnn_runtime::train::Samples;
/// /// Four 2-element samples: label 1 where the first element is larger.
/// struct Pairs;
/// impl Samples for Pairs {
///     fn len(&self) -> usize { 4 }
///     fn input_len(&self) -> usize { 2 }
///     fn gather(&self, indices: &[usize], inputs: &mut [f32], labels: &mut [u32]) {
///         for (k, &i) in indices.iter().enumerate() {
///             inputs[2 * k] = i as f32;
///             inputs[2 * k + 1] = 1.5;
///             labels[k] = u32::from(i as f32 > 1.5);
///         }
///     }
/// }
/// assert_eq!(Pairs.len(), 4);
/// ```
pub trait Samples {
    /// Number of samples.
    fn len(&self) -> usize;

    /// Whether there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `f32`s per sample; must equal the network's `INPUT_LEN`.
    fn input_len(&self) -> usize;

    /// The shape `[C, H, W]` of each sample, if samples are images: what augmentation
    /// ([`TrainConfig::augment`](super::TrainConfig::augment)) needs. `None` by default.
    fn shape(&self) -> Option<[usize; 3]> {
        None
    }

    /// Writes samples `indices` into `inputs` (`indices.len() * input_len()` long) and their
    /// labels into `labels` (`indices.len()` long).
    fn gather(&self, indices: &[usize], inputs: &mut [f32], labels: &mut [u32]);
}

impl Samples for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }

    fn input_len(&self) -> usize {
        self.shape().iter().product()
    }

    fn shape(&self) -> Option<[usize; 3]> {
        Some(Dataset::shape(self))
    }

    fn gather(&self, indices: &[usize], inputs: &mut [f32], labels: &mut [u32]) {
        Dataset::gather(self, indices, inputs, labels)
    }
}

/// Some samples of another set, by index: for quick runs and tests on part of a data set.
///
/// ```
/// use cnn_runtime::data::Mnist;
/// use cnn_runtime::train::{Samples, Subset};
/// let mnist = Mnist::load("../data/mnist")?;
/// let first = Subset::new(&mnist.train, 0..256);
/// assert_eq!(first.len(), 256);
/// # Ok::<(), cnn_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Subset<'a, S: ?Sized> {
    set: &'a S,
    indices: Vec<usize>,
}

impl<'a, S: Samples + ?Sized> Subset<'a, S> {
    /// The samples of `set` at `indices`, in that order.
    ///
    /// # Panics
    ///
    /// If an index is not below `set.len()`.
    pub fn new(set: &'a S, indices: impl IntoIterator<Item = usize>) -> Self {
        let indices: Vec<usize> = indices.into_iter().collect();
        if let Some(&bad) = indices.iter().find(|&&i| i >= set.len()) {
            panic!(
                "Subset::new: index {bad} is out of range for a set of {} samples",
                set.len()
            );
        }
        Subset { set, indices }
    }
}

impl<S: Samples + ?Sized> Samples for Subset<'_, S> {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn input_len(&self) -> usize {
        self.set.input_len()
    }

    fn shape(&self) -> Option<[usize; 3]> {
        self.set.shape()
    }

    fn gather(&self, indices: &[usize], inputs: &mut [f32], labels: &mut [u32]) {
        let mapped: Vec<usize> = indices.iter().map(|&i| self.indices[i]).collect();
        self.set.gather(&mapped, inputs, labels)
    }
}
