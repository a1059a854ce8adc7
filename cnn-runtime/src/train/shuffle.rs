//! The order in which an epoch visits the training samples.
//!
//! The permutation of epoch `e` is drawn from a PCG generator seeded from the run's seed and
//! `e` alone, so nothing of the generator has to be saved in a checkpoint: a resumed run
//! recomputes the same order.

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64;

use super::Shuffle;

/// The sample indices of epoch `epoch` (from 0), a permutation of `0..len`.
///
/// ```
/// use cnn_runtime::train::{epoch_order, Shuffle};
/// let a = epoch_order(Shuffle::EveryEpoch, 7, 0, 10);
/// assert_eq!(a, epoch_order(Shuffle::EveryEpoch, 7, 0, 10));
/// assert_ne!(a, epoch_order(Shuffle::EveryEpoch, 7, 1, 10));
/// let mut sorted = a.clone();
/// sorted.sort();
/// assert_eq!(sorted, (0..10).collect::<Vec<_>>());
/// assert_eq!(epoch_order(Shuffle::Never, 7, 3, 4), [0, 1, 2, 3]);
/// ```
pub fn epoch_order(shuffle: Shuffle, seed: u64, epoch: usize, len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle == Shuffle::Never {
        return order;
    }
    let mut rng = epoch_rng(seed, epoch);
    // Fisher-Yates, from the back.
    for i in (1..len).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// A generator for one epoch: the 128-bit seed is the seed and the epoch, mixed so that
/// nearby seeds and epochs give unrelated streams.
fn epoch_rng(seed: u64, epoch: usize) -> Pcg64 {
    let mut bytes = [0u8; 32];
    let mut state = seed ^ 0x5851_f42d_4c95_7f2d;
    for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        let word = splitmix64(&mut state) ^ splitmix64(&mut (epoch as u64).wrapping_add(i as u64));
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Pcg64::from_seed(bytes)
}

/// One step of SplitMix64, the usual seed scrambler.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform integer in `0..n` (`n >= 1`), without modulo bias: Lemire's multiply-and-reject.
fn below(rng: &mut Pcg64, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = rng.next_u64() as u128 * n as u128;
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_is_a_permutation_and_differs() {
        let a = epoch_order(Shuffle::EveryEpoch, 1, 0, 1000);
        let b = epoch_order(Shuffle::EveryEpoch, 1, 1, 1000);
        let c = epoch_order(Shuffle::EveryEpoch, 2, 0, 1000);
        assert_ne!(a, b);
        assert_ne!(a, c);
        for order in [a, b, c] {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn small_sets() {
        assert!(epoch_order(Shuffle::EveryEpoch, 0, 0, 0).is_empty());
        assert_eq!(epoch_order(Shuffle::EveryEpoch, 0, 0, 1), [0]);
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut rng = epoch_rng(3, 0);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[below(&mut rng, 3) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
    }
}
