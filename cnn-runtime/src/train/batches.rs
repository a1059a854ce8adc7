//! The training batches of an epoch: gathered, augmented and normalized on a thread of their
//! own while the network trains on the previous batch.
//!
//! The thread owns two batch buffers in turn: while the training step reads one, it fills the
//! other, so preparing the data overlaps the computation and never waits on it. What a batch
//! holds depends only on the set, the epoch's order, the seed and the epoch ([`Augment::draw`]),
//! not on that thread or on the threads of the step, so a run is the same with or without it.
//!
//! In a distributed run each process prepares only its [`Share`] of every batch: the batches
//! are cut from the same order on every rank, and a sample's augmentation does not depend on
//! which rank draws it.

use std::sync::mpsc;

use super::distributed::Share;
use super::evaluate::load_batch;
use super::{Normalize, Samples};
use crate::data::Augment;

/// One prepared batch.
#[derive(Default)]
pub(crate) struct Batch {
    /// `len * input_len` inputs, augmented and normalized.
    pub inputs: Vec<f32>,
    /// One label per sample.
    pub labels: Vec<u32>,
}

/// How the training samples of a run become batches.
pub(crate) struct Loader<'a, S: ?Sized> {
    pub set: &'a S,
    pub normalize: Option<&'a Normalize>,
    pub augment: Augment,
    pub seed: u64,
}

impl<S: Samples + ?Sized> Loader<'_, S> {
    /// Fills `batch` with the samples `indices` of epoch `epoch`: gathered (pixels in 0..1),
    /// each transformed by its own draw, then normalized.
    pub fn fill(&self, epoch: usize, indices: &[usize], batch: &mut Batch, scratch: &mut Vec<f32>) {
        let (inputs, labels) = (&mut batch.inputs, &mut batch.labels);
        let shape = self.set.shape().filter(|_| !self.augment.is_none());
        let Some(shape) = shape else {
            return load_batch(self.set, indices, self.normalize, inputs, labels);
        };
        load_batch(self.set, indices, None, inputs, labels);
        let len = self.set.input_len().max(1);
        for (sample, &i) in inputs.chunks_exact_mut(len).zip(indices) {
            let draw = self.augment.draw(self.seed, epoch, i);
            self.augment.apply(&draw, shape, sample, scratch);
            if let Some(normalize) = self.normalize {
                normalize.apply(sample);
            }
        }
    }
}

/// Runs `train` on the batches of one epoch (`order` cut into `batch_size` chunks), each
/// prepared on a second thread while `train` works on the one before. `train` gets the step
/// number, the sample indices of the whole batch and this process's `share` of it, prepared
/// (which may be empty, for a last batch smaller than the number of shares), and may stop the
/// epoch with an error.
pub(crate) fn for_each_batch<S, E>(
    loader: &Loader<'_, S>,
    epoch: usize,
    order: &[usize],
    batch_size: usize,
    share: Share,
    mut train: impl FnMut(usize, &[usize], &Batch) -> Result<(), E>,
) -> Result<(), E>
where
    S: Samples + Sync + ?Sized,
{
    let chunks: Vec<&[usize]> = order.chunks(batch_size).collect();
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(1);
        let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
        for _ in 0..2 {
            // Two buffers: one being trained on, one being filled.
            let _ = empty_tx.send(Batch::default());
        }
        let producer_chunks = &chunks;
        scope.spawn(move || {
            let mut scratch = Vec::new();
            for chunk in producer_chunks {
                // The receiving side hangs up when the epoch stops early: then stop too.
                let Ok(mut batch) = empty_rx.recv() else { return };
                loader.fill(epoch, &chunk[share.of(chunk.len())], &mut batch, &mut scratch);
                if full_tx.send(batch).is_err() {
                    return;
                }
            }
        });
        for (step, chunk) in chunks.iter().enumerate() {
            // A producer that panicked hangs up; the scope then re-raises its panic.
            let Ok(batch) = full_rx.recv() else { break };
            train(step, chunk, &batch)?;
            let _ = empty_tx.send(batch);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    fn set() -> Dataset {
        Dataset::new([1, 4, 4], 3, (0..64).map(|v| (v * 3) as u8).collect(), vec![0, 1, 2, 1])
    }

    #[test]
    fn batches_are_those_of_a_plain_loop() {
        let set = set();
        let normalize = Normalize::new(0.5, 0.25);
        let loader = Loader {
            set: &set,
            normalize: Some(&normalize),
            augment: Augment::none().with_crop(2).with_flip(),
            seed: 4,
        };
        let order = [3, 1, 0, 2];
        let mut seen = Vec::new();
        for_each_batch(&loader, 2, &order, 3, Share::WHOLE, |step, chunk, batch| {
            seen.push((step, chunk.to_vec(), batch.inputs.clone(), batch.labels.clone()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        for (step, chunk, inputs, labels) in seen {
            let mut want = Batch::default();
            loader.fill(2, &chunk, &mut want, &mut Vec::new());
            assert_eq!(chunk, order[step * 3..(step * 3 + 3).min(4)]);
            assert_eq!((inputs, labels), (want.inputs, want.labels));
        }
    }

    /// Two processes prepare the two halves of each batch, as one process prepares it whole.
    #[test]
    fn shares_of_a_batch_are_its_parts() {
        let set = set();
        let loader = Loader {
            set: &set,
            normalize: None,
            augment: Augment::none().with_crop(1).with_flip(),
            seed: 9,
        };
        let order = [2, 0, 3, 1];
        let batches = |share| {
            let mut seen = Vec::new();
            for_each_batch(&loader, 1, &order, 3, share, |_, chunk, batch| {
                seen.push((chunk.to_vec(), batch.inputs.clone(), batch.labels.clone()));
                Ok::<(), ()>(())
            })
            .unwrap();
            seen
        };
        let whole = batches(Share::WHOLE);
        let halves = [0, 1].map(|index| batches(Share { index, count: 2 }));
        for (step, (chunk, inputs, labels)) in whole.iter().enumerate() {
            let (a, b) = (&halves[0][step], &halves[1][step]);
            assert_eq!((&a.0, &b.0), (chunk, chunk));
            assert_eq!([a.2.clone(), b.2.clone()].concat(), *labels);
            assert_eq!([a.1.clone(), b.1.clone()].concat(), *inputs);
        }
        // The last batch holds one sample: the first process's share is empty.
        assert_eq!((halves[0][1].2.len(), halves[1][1].2.len()), (0, 1));
    }

    #[test]
    fn an_error_stops_the_epoch() {
        let set = set();
        let loader = Loader {
            set: &set,
            normalize: None,
            augment: Augment::none(),
            seed: 0,
        };
        let mut steps = 0;
        let result = for_each_batch(&loader, 0, &[0, 1, 2, 3], 1, Share::WHOLE, |step, _, _| {
            steps += 1;
            if step == 1 {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert_eq!((result, steps), (Err("stop"), 2));
    }
}
