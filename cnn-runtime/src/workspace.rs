//! Scratch memory that a network reuses from call to call, and the split of a batch across
//! threads.

use core::ops::Range;
use std::sync::{Mutex, OnceLock, TryLockError};

/// At most this many chunks (threads) share one batch.
pub const MAX_CHUNKS: usize = 64;

/// Growable `f32` buffers owned by a network, one per thread of a batch, so that `forward` and
/// training steps allocate nothing after their first call with a given batch size.
///
/// They are behind a lock so networks stay `Sync`: a call that finds them busy (another thread
/// is using the same network) works in fresh buffers instead of waiting. Cloning gives an empty
/// workspace.
///
/// ```
/// use cnn_runtime::workspace::Workspace;
/// let ws = Workspace::default();
/// // Sum 0..10 in two chunks, each in its own slot, then add the parts in order.
/// let total = ws.run(10, 2, |n| n, |_, range, slot| {
///     for (s, i) in slot.iter_mut().zip(range) { *s = i as f32; }
///     slot.iter().sum::<f32>()
/// }, |_, total| total);
/// assert_eq!(total, 45.0);
/// ```
#[derive(Default)]
pub struct Workspace {
    slots: Mutex<Vec<Vec<f32>>>,
    /// The network's parameters as inference reads them, made by the first call that needs
    /// them, until [`forget_prepared`](Self::forget_prepared).
    prepared: OnceLock<Vec<f32>>,
    /// The memory of what was forgotten, for the next to reuse.
    spare: Mutex<Vec<f32>>,
    /// Whether a batch too small to split across threads splits its samples.
    split: crate::split::Choice,
}

pub use crate::parts::chunk_range;

/// How many chunks to split a batch into: one per thread of [`crate::parallel::threads`], but
/// no chunk smaller than `min_rows` (where a thread would cost more than it saves).
///
/// ```
/// use cnn_runtime::{parallel::set_threads, workspace::chunks_for};
/// set_threads(2);
/// assert_eq!(chunks_for(64, 4), 2);
/// assert_eq!(chunks_for(1, 4), 1);
/// set_threads(0);
/// ```
pub fn chunks_for(batch: usize, min_rows: usize) -> usize {
    let most = batch / min_rows.max(1);
    // Too small to split: no need to know the thread count.
    if most < 2 {
        return 1;
    }
    crate::parallel::threads().min(most).clamp(1, MAX_CHUNKS)
}

impl Workspace {
    /// The `len` `f32`s that `fill` writes, written by the first call (concurrent first calls
    /// wait for it) and kept until [`forget_prepared`](Self::forget_prepared): a network's
    /// parameters as its inference reads them (BatchNorm folded into the convolution before
    /// it), which depend on nothing but its parameters and buffers.
    ///
    /// ```
    /// use cnn_runtime::workspace::Workspace;
    /// let mut ws = Workspace::default();
    /// assert_eq!(ws.prepared(2, |p| p.fill(1.0)), [1.0, 1.0]);
    /// assert_eq!(ws.prepared(2, |p| p.fill(2.0)), [1.0, 1.0]); // kept
    /// ws.forget_prepared(); // the parameters changed
    /// assert_eq!(ws.prepared(2, |p| p.fill(2.0)), [2.0, 2.0]);
    /// ```
    pub fn prepared(&self, len: usize, fill: impl FnOnce(&mut [f32])) -> &[f32] {
        self.prepared.get_or_init(|| {
            let mut prepared = core::mem::take(&mut *self.spare.lock().unwrap_or_else(|p| p.into_inner()));
            prepared.resize(len, 0.0);
            fill(&mut prepared);
            prepared
        })
    }

    /// What [`prepared`](Self::prepared) keeps, if a call made it: for callers that must not
    /// allocate.
    ///
    /// ```
    /// use cnn_runtime::workspace::Workspace;
    /// let ws = Workspace::default();
    /// assert_eq!(ws.made(), None);
    /// ws.prepared(2, |p| p.fill(1.0));
    /// assert_eq!(ws.made(), Some(&[1.0, 1.0][..]));
    /// ```
    pub fn made(&self) -> Option<&[f32]> {
        self.prepared.get().map(Vec::as_slice)
    }

    /// Forgets what [`prepared`](Self::prepared) kept (keeping its memory for the next): what
    /// a network calls whenever its parameters or buffers may change.
    pub fn forget_prepared(&mut self) {
        if let Some(old) = self.prepared.take() {
            *self.spare.get_mut().unwrap_or_else(|p| p.into_inner()) = old;
        }
    }

    /// Whether a batch too small to split across threads splits its samples
    /// ([`crate::split`]), as this network's calls have found faster.
    pub(crate) fn split(&self) -> &crate::split::Choice {
        &self.split
    }

    /// Runs `f` on one buffer of exactly `len` elements (contents unspecified), on the calling
    /// thread: the path of a batch too small to split.
    ///
    /// ```
    /// use cnn_runtime::workspace::Workspace;
    /// let ws = Workspace::default();
    /// let sum = ws.with(3, |buf| { buf.fill(1.0); buf.iter().sum::<f32>() });
    /// assert_eq!(sum, 3.0);
    /// ```
    pub fn with<R>(&self, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        let mut fresh = Vec::new();
        let mut guard = match self.slots.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        let slots = guard.as_deref_mut().unwrap_or(&mut fresh);
        if slots.is_empty() {
            slots.push(Vec::new());
        }
        let slot = &mut slots[0];
        if slot.len() < len {
            slot.resize(len, 0.0);
        }
        f(&mut slot[..len])
    }

    /// Splits `0..batch` into `chunks` parts ([`chunk_range`]) and runs `work(i, rows, slot)` for
    /// each on its own thread (rayon's pool), where `slot` holds `slot_len(rows.len())` `f32`s
    /// (contents unspecified) that belong to part `i` alone. Then, on the calling thread,
    /// `finish(slots, total)` sees every part's slot, in order, and the sum of the results
    /// (added in part order), to combine them in a fixed order: the same thread count always
    /// gives bitwise the same answer. [`phases`](Self::phases) in one phase.
    ///
    /// # Panics
    ///
    /// If `chunks` is 0 or more than [`MAX_CHUNKS`], or more than `batch` when `batch > 0`.
    pub fn run<R>(
        &self,
        batch: usize,
        chunks: usize,
        slot_len: impl Fn(usize) -> usize + Sync,
        work: impl Fn(usize, Range<usize>, &mut [f32]) -> f32 + Sync,
        finish: impl FnOnce(&[Vec<f32>], f32) -> R,
    ) -> R {
        self.phases(
            batch,
            chunks,
            slot_len,
            1,
            |_, i, rows, slot| work(i, rows, slot),
            |_, _| {},
            finish,
        )
    }

    /// [`run`](Self::run) in `phases` steps over the same parts and slots: `work(phase, i,
    /// rows, slot)` runs for every part on its own thread, then `between(phase, slots)` on one
    /// thread (with every slot, to combine what the parts computed: BatchNorm's batch
    /// statistics), then the next phase. The slots keep their contents from phase to phase.
    /// Returns `finish(slots, total)` (on the calling thread), `total` the sum of every `work`
    /// result, added in phase and part order.
    ///
    /// With more than one part, the phases run inside rayon's pool, handed over once: the
    /// parts of each phase then meet through a worker's own queue, where jobs sent from
    /// outside the pool, one per phase, would go through its shared queue, which allocates a
    /// block every 63 jobs.
    ///
    /// # Panics
    ///
    /// As [`run`](Self::run).
    ///
    /// ```
    /// use cnn_runtime::workspace::Workspace;
    /// let ws = Workspace::default();
    /// // Phase 0: each part sums its rows into slot[0]; between: slot[1] of each part gets the
    /// // total; phase 1: each part returns its share of the total.
    /// let total = ws.phases(10, 2, |_| 2, 2, |phase, _, rows, slot| {
    ///     if phase == 0 {
    ///         slot[0] = rows.map(|r| r as f32).sum();
    ///         0.0
    ///     } else {
    ///         slot[0] / slot[1]
    ///     }
    /// }, |_, slots| {
    ///     let sum: f32 = slots.iter().map(|s| s[0]).sum();
    ///     slots.iter_mut().for_each(|s| s[1] = sum);
    /// }, |_, total| total);
    /// assert_eq!(total, 1.0);
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn phases<R>(
        &self,
        batch: usize,
        chunks: usize,
        slot_len: impl Fn(usize) -> usize + Sync,
        phases: usize,
        work: impl Fn(usize, usize, Range<usize>, &mut [f32]) -> f32 + Sync,
        mut between: impl FnMut(usize, &mut [Vec<f32>]) + Send,
        finish: impl FnOnce(&[Vec<f32>], f32) -> R,
    ) -> R {
        assert!(
            (1..=MAX_CHUNKS).contains(&chunks),
            "workspace: {chunks} chunks; expected 1 to {MAX_CHUNKS}"
        );
        assert!(
            batch == 0 || chunks <= batch,
            "workspace: {chunks} chunks for a batch of {batch}"
        );
        let mut fresh = Vec::new();
        let mut guard = match self.slots.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        let slots = guard.as_deref_mut().unwrap_or(&mut fresh);
        if slots.len() < chunks {
            slots.resize_with(chunks, Vec::new);
        }
        let len = slot_len(chunk_range(batch, chunks, 0).len());
        for slot in &mut slots[..chunks] {
            if slot.len() < len {
                slot.resize(len, 0.0);
            }
        }
        let parts = &mut slots[..chunks];
        let mut steps = || {
            let mut total = 0.0f32;
            for phase in 0..phases {
                let mut results = [0.0f32; MAX_CHUNKS];
                let run_one = |i: usize, slot: &mut Vec<f32>| {
                    let rows = chunk_range(batch, chunks, i);
                    let len = slot_len(rows.len());
                    work(phase, i, rows, &mut slot[..len])
                };
                fan_out(parts, 0, &mut results[..chunks], &run_one);
                total += results[..chunks].iter().sum::<f32>();
                if phase + 1 < phases {
                    between(phase, parts);
                }
            }
            total
        };
        let total = if chunks > 1 { rayon::scope(|_| steps()) } else { steps() };
        finish(&slots[..chunks], total)
    }
}

/// Runs `f` on every slot, halving the slots between `rayon::join`s (which needs no heap).
fn fan_out<F: Fn(usize, &mut Vec<f32>) -> f32 + Sync>(
    slots: &mut [Vec<f32>],
    first: usize,
    results: &mut [f32],
    f: &F,
) {
    match slots.len() {
        0 => {}
        1 => results[0] = f(first, &mut slots[0]),
        n => {
            let (sa, sb) = slots.split_at_mut(n / 2);
            let (ra, rb) = results.split_at_mut(n / 2);
            rayon::join(|| fan_out(sa, first, ra, f), || fan_out(sb, first + n / 2, rb, f));
        }
    }
}

impl Clone for Workspace {
    fn clone(&self) -> Self {
        Workspace::default()
    }
}

impl core::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Workspace").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_batch_in_order() {
        for batch in 1..40 {
            for chunks in 1..=batch.min(9) {
                let mut next = 0;
                for i in 0..chunks {
                    let r = chunk_range(batch, chunks, i);
                    assert_eq!(r.start, next);
                    assert!(r.len() == batch / chunks || r.len() == batch / chunks + 1);
                    next = r.end;
                }
                assert_eq!(next, batch);
            }
        }
    }

    #[test]
    fn every_chunk_runs_once_with_its_own_slot() {
        let ws = Workspace::default();
        for chunks in [1, 2, 3, 7] {
            let got = ws.run(
                20,
                chunks,
                |n| n + 1,
                |i, rows, slot| {
                    assert_eq!(slot.len(), rows.len() + 1);
                    slot[0] = i as f32;
                    rows.len() as f32
                },
                |slots, total| {
                    for (i, s) in slots.iter().enumerate() {
                        assert_eq!(s[0], i as f32);
                    }
                    total
                },
            );
            assert_eq!(got, 20.0);
        }
    }
}
