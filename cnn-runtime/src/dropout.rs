//! Dropout (PyTorch's `Dropout`), in train mode: each element is zeroed with probability `p`
//! and the others are scaled by `1 / (1 - p)`. In eval mode a dropout layer is the identity,
//! which needs no kernel.
//!
//! The masks come from a counter-based hash of ([`DropoutKey`], sample, element) rather than
//! from a generator stream, so they do not depend on how a batch is split across threads nor
//! on the layout of the tensor, and the backward pass recomputes the forward pass's mask
//! instead of storing it.

use crate::layout::Layout;

/// What a dropout mask depends on besides the sample and the element: the network's seed,
/// the training step and the dropout layer.
///
/// ```
/// use cnn_runtime::dropout::{Dropout, DropoutKey};
/// const D: Dropout = Dropout::new(0.5, 8, 1);
/// let key = DropoutKey { seed: 42, step: 0, stage: 3 };
/// let mask: Vec<bool> = (0..8).map(|i| D.keeps(key, 0, i)).collect();
/// // The same key gives the same mask.
/// assert!((0..8).all(|i| D.keeps(key, 0, i) == mask[i]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DropoutKey {
    /// The network's seed.
    pub seed: u64,
    /// The training step (a new mask every step).
    pub step: u64,
    /// Which dropout layer of the network (a different mask per layer).
    pub stage: u32,
}

/// One dropout layer: probability `p` of zeroing an element, on samples of `C*plane`
/// elements (`c = N`, `plane = 1` for a flat input `[N]`).
///
/// ```
/// use cnn_runtime::{dropout::{Dropout, DropoutKey}, layout::Layout};
/// const D: Dropout = Dropout::new(0.25, 2, 3);
/// let key = DropoutKey { seed: 1, step: 7, stage: 0 };
/// let x = [1.0; 12]; // [batch = 2, C = 2, plane = 3]
/// let mut y = [0.0; 12];
/// D.forward_train(2, 0, key, &x, Layout::SampleMajor, &mut y);
/// // Every element is either dropped or scaled by 1 / (1 - p).
/// assert!(y.iter().all(|&v| v == 0.0 || v == 1.0 / 0.75));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// The probability of zeroing an element, in `[0, 1)`.
    pub p: f32,
    /// Channels (`N` for a flat input).
    pub c: usize,
    /// Elements of one channel of one sample: `H*W`, or 1 for a flat input.
    pub plane: usize,
}

impl Dropout {
    /// A layer zeroing with probability `p` on samples of `c` channels of `plane` elements.
    ///
    /// # Panics
    ///
    /// If `p` is not in `[0, 1)` (the `cnn!` macro rejects such declarations at compile time).
    ///
    /// ```
    /// use cnn_runtime::dropout::Dropout;
    /// const D: Dropout = Dropout::new(0.5, 16, 8 * 8);
    /// assert_eq!(D.in_len(), 16 * 64);
    /// ```
    pub const fn new(p: f32, c: usize, plane: usize) -> Self {
        assert!(p >= 0.0 && p < 1.0, "Dropout: p must be in [0, 1)");
        Dropout { p, c, plane }
    }

    /// Elements of one sample, `C*plane` (the output has as many).
    ///
    /// ```
    /// use cnn_runtime::dropout::Dropout;
    /// assert_eq!(Dropout::new(0.1, 3, 4).in_len(), 12);
    /// ```
    pub const fn in_len(&self) -> usize {
        self.c * self.plane
    }

    /// Whether element `index` (its logical index `c * plane + i` within the sample) of the
    /// batch's sample `sample` is kept under `key`: with probability `1 - p`, independently of
    /// every other element, step and layer.
    ///
    /// ```
    /// use cnn_runtime::dropout::{Dropout, DropoutKey};
    /// let key = DropoutKey { seed: 5, step: 0, stage: 0 };
    /// assert!((0..100).all(|i| Dropout::new(0.0, 100, 1).keeps(key, 0, i)));
    /// let kept = (0..10_000).filter(|&i| Dropout::new(0.5, 10_000, 1).keeps(key, 0, i)).count();
    /// assert!((4_800..5_200).contains(&kept));
    /// ```
    #[inline]
    pub fn keeps(&self, key: DropoutKey, sample: usize, index: usize) -> bool {
        keeps(sample_hash(key, sample), index, threshold(self.p))
    }

    /// Train mode: `y = x * keep / (1 - p)` for a batch `x` of `batch * C * plane` elements in
    /// `layout` (`y` in the same layout). `first` is the index in the whole batch of this
    /// slice's first sample: a batch split into contiguous chunks, each passed with its own
    /// `first`, gets the same masks as the whole batch at once.
    ///
    /// # Panics
    ///
    /// If `x` or `y` does not hold `batch*C*plane` elements; the message gives the expected
    /// and the actual length.
    ///
    /// ```
    /// use cnn_runtime::{dropout::{Dropout, DropoutKey}, layout::Layout};
    /// const D: Dropout = Dropout::new(0.5, 4, 1);
    /// let key = DropoutKey { seed: 9, step: 2, stage: 1 };
    /// let x: Vec<f32> = (0..12).map(|i| i as f32).collect(); // [batch = 3, 4]
    /// let mut whole = vec![0.0; 12];
    /// D.forward_train(3, 0, key, &x, Layout::SampleMajor, &mut whole);
    /// // Samples 1 and 2 alone, as a second thread would see them.
    /// let mut part = vec![0.0; 8];
    /// D.forward_train(2, 1, key, &x[4..], Layout::SampleMajor, &mut part);
    /// assert_eq!(part, whole[4..]);
    /// ```
    pub fn forward_train(&self, batch: usize, first: usize, key: DropoutKey, x: &[f32], layout: Layout, y: &mut [f32]) {
        self.check(batch, x.len(), "x");
        self.check(batch, y.len(), "y");
        self.apply(batch, first, key, x, layout, y);
    }

    /// The backward pass of [`forward_train`](Self::forward_train) with the same arguments:
    /// `dx = dy * keep / (1 - p)`, the same mask.
    ///
    /// # Panics
    ///
    /// If `dy` or `dx` does not hold `batch*C*plane` elements.
    ///
    /// ```
    /// use cnn_runtime::{dropout::{Dropout, DropoutKey}, layout::Layout};
    /// const D: Dropout = Dropout::new(0.5, 6, 1);
    /// let key = DropoutKey { seed: 9, step: 2, stage: 1 };
    /// let (mut y, mut dx) = ([0.0; 6], [0.0; 6]);
    /// D.forward_train(1, 0, key, &[1.0; 6], Layout::SampleMajor, &mut y);
    /// D.backward(1, 0, key, &[1.0; 6], Layout::SampleMajor, &mut dx);
    /// assert_eq!(y, dx);
    /// ```
    pub fn backward(&self, batch: usize, first: usize, key: DropoutKey, dy: &[f32], layout: Layout, dx: &mut [f32]) {
        self.check(batch, dy.len(), "dy");
        self.check(batch, dx.len(), "dx");
        self.apply(batch, first, key, dy, layout, dx);
    }

    /// `y = x * keep / (1 - p)`, lengths checked.
    fn apply(&self, batch: usize, first: usize, key: DropoutKey, x: &[f32], layout: Layout, y: &mut [f32]) {
        let (limit, scale) = (threshold(self.p), 1.0 / (1.0 - self.p));
        for b in 0..batch {
            let h = sample_hash(key, first + b);
            for ch in 0..self.c {
                let at = layout.plane(ch, b, self.c, batch) * self.plane;
                let (xp, yp) = (&x[at..][..self.plane], &mut y[at..][..self.plane]);
                let base = ch * self.plane;
                for (i, (y, &x)) in yp.iter_mut().zip(xp).enumerate() {
                    *y = if keeps(h, base + i, limit) { x * scale } else { 0.0 };
                }
            }
        }
    }

    fn check(&self, batch: usize, len: usize, what: &str) {
        assert_eq!(
            len,
            batch * self.in_len(),
            "Dropout: {what} must hold batch*C*plane = {batch}*{}*{} elements, got {len}",
            self.c,
            self.plane
        );
    }
}

/// The golden-ratio increment of SplitMix64.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijection of `u64` with good avalanche.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Folds `v` into the hash `h`: the `v + 1`-th output of a SplitMix64 stream started at `h`.
/// Fields folded one after another cannot cancel each other as in `seed ^ step ^ ...`.
#[inline(always)]
fn absorb(h: u64, v: u64) -> u64 {
    mix(h.wrapping_add(v.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// The hash of everything but the element: the key's fields, then the sample.
#[inline]
fn sample_hash(key: DropoutKey, sample: usize) -> u64 {
    let h = absorb(0, key.seed);
    let h = absorb(h, key.step);
    let h = absorb(h, key.stage as u64);
    absorb(h, sample as u64)
}

/// `p * 2^32`: an element is kept when the top 32 bits of its hash are at least this.
#[inline]
fn threshold(p: f32) -> u64 {
    (p as f64 * 4_294_967_296.0) as u64
}

#[inline(always)]
fn keeps(sample_hash: u64, index: usize, threshold: u64) -> bool {
    absorb(sample_hash, index as u64) >> 32 >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::to_channel_major;
    use crate::testutil::seq;

    const KEY: DropoutKey = DropoutKey {
        seed: 0x5eed,
        step: 3,
        stage: 2,
    };

    #[test]
    fn dropped_fraction_is_p() {
        // 100k elements: the dropped count has standard deviation sqrt(n p (1 - p)) <= 158;
        // allow 5 of them.
        let (batch, c, plane) = (100, 10, 100);
        let n = batch * c * plane;
        for p in [0.1f32, 0.5, 0.9] {
            let d = Dropout::new(p, c, plane);
            let x = vec![1.0; n];
            let mut y = vec![f32::NAN; n];
            d.forward_train(batch, 0, KEY, &x, Layout::SampleMajor, &mut y);
            let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64;
            let (mean, sd) = (n as f64 * p as f64, (n as f64 * p as f64 * (1.0 - p as f64)).sqrt());
            assert!((dropped - mean).abs() < 5.0 * sd, "p = {p}: dropped {dropped} of {n}");
            // Each sample on its own too (1000 elements: within 6 standard deviations).
            let m = c * plane;
            let (mean, sd) = (m as f64 * p as f64, (m as f64 * p as f64 * (1.0 - p as f64)).sqrt());
            for (b, ys) in y.chunks_exact(m).enumerate() {
                let dropped = ys.iter().filter(|&&v| v == 0.0).count() as f64;
                assert!(
                    (dropped - mean).abs() < 6.0 * sd,
                    "p = {p}, sample {b}: dropped {dropped} of {m}"
                );
            }
        }
    }

    #[test]
    fn kept_elements_are_scaled_exactly() {
        for p in [0.0f32, 0.1, 0.3, 0.5, 0.9] {
            let d = Dropout::new(p, 7, 5);
            let x = seq(3 * d.in_len(), 0.2);
            let mut y = vec![f32::NAN; x.len()];
            d.forward_train(3, 0, KEY, &x, Layout::SampleMajor, &mut y);
            let scale = 1.0 / (1.0 - p);
            for (i, (&x, &y)) in x.iter().zip(&y).enumerate() {
                let keep = d.keeps(KEY, i / d.in_len(), i % d.in_len());
                assert_eq!(y, if keep { x * scale } else { 0.0 }, "p = {p} [{i}]");
            }
            if p == 0.0 {
                assert_eq!(x, y);
            }
        }
    }

    #[test]
    fn masks_depend_on_every_field_of_the_key() {
        let d = Dropout::new(0.5, 1000, 1);
        let mask = |key: DropoutKey, sample: usize| (0..1000).map(|i| d.keeps(key, sample, i)).collect::<Vec<_>>();
        let base = mask(KEY, 4);
        assert_eq!(base, mask(KEY, 4));
        let others = [
            mask(DropoutKey { step: 4, ..KEY }, 4),
            mask(DropoutKey { seed: 0x5eee, ..KEY }, 4),
            mask(DropoutKey { stage: 3, ..KEY }, 4),
            mask(KEY, 5),
            // Fields swapped between positions must not give the same hash.
            mask(
                DropoutKey {
                    step: 2,
                    stage: 3,
                    ..KEY
                },
                4,
            ),
        ];
        for (k, other) in others.iter().enumerate() {
            let same = base.iter().zip(other).filter(|(a, b)| a == b).count();
            // Independent masks agree on about half the elements.
            assert!((400..600).contains(&same), "variant {k}: {same} of 1000 agree");
        }
    }

    #[test]
    fn chunks_give_the_masks_of_the_whole_batch() {
        let d = Dropout::new(0.4, 3, 4);
        let batch = 5;
        let x = seq(batch * d.in_len(), 0.9);
        let mut whole = vec![f32::NAN; x.len()];
        d.forward_train(batch, 0, KEY, &x, Layout::SampleMajor, &mut whole);
        for k in 1..batch {
            let split = k * d.in_len();
            let mut parts = vec![f32::NAN; x.len()];
            let (a, b) = parts.split_at_mut(split);
            d.forward_train(k, 0, KEY, &x[..split], Layout::SampleMajor, a);
            d.forward_train(batch - k, k, KEY, &x[split..], Layout::SampleMajor, b);
            assert_eq!(whole, parts, "split at {k}");
        }
    }

    #[test]
    fn layouts_agree() {
        let d = Dropout::new(0.5, 3, 6);
        let batch = 4;
        let x = seq(batch * d.in_len(), 1.3);
        let mut x_cm = vec![0.0; x.len()];
        to_channel_major(d.c, batch, d.plane, &x, &mut x_cm);
        let mut y = vec![f32::NAN; x.len()];
        d.forward_train(batch, 2, KEY, &x, Layout::SampleMajor, &mut y);
        let mut y_cm = vec![f32::NAN; x.len()];
        d.forward_train(batch, 2, KEY, &x_cm, Layout::ChannelMajor, &mut y_cm);
        let mut want = vec![0.0; x.len()];
        to_channel_major(d.c, batch, d.plane, &y, &mut want);
        assert_eq!(y_cm, want);

        let mut dx_cm = vec![f32::NAN; x.len()];
        d.backward(batch, 2, KEY, &x_cm, Layout::ChannelMajor, &mut dx_cm);
        assert_eq!(dx_cm, want);
    }

    #[test]
    fn backward_uses_the_forward_mask() {
        let d = Dropout::new(0.3, 4, 5);
        let batch = 3;
        let x = seq(batch * d.in_len(), 0.1);
        let dy = seq(batch * d.in_len(), 2.7);
        let mut y = vec![f32::NAN; x.len()];
        d.forward_train(batch, 1, KEY, &x, Layout::SampleMajor, &mut y);
        let mut dx = vec![f32::NAN; x.len()];
        d.backward(batch, 1, KEY, &dy, Layout::SampleMajor, &mut dx);
        let scale = 1.0 / (1.0 - d.p);
        for i in 0..x.len() {
            // Exactly where the forward pass kept x (x has no zeros), dx = dy / (1 - p).
            assert_ne!(x[i], 0.0);
            let kept = y[i] != 0.0;
            assert_eq!(dx[i], if kept { dy[i] * scale } else { 0.0 }, "[{i}]");
        }
    }

    #[test]
    #[should_panic(expected = "p must be in [0, 1)")]
    fn p_of_one_panics() {
        let _ = Dropout::new(1.0, 1, 1);
    }

    #[test]
    #[should_panic(expected = "y must hold batch*C*plane = 2*3*1 elements, got 5")]
    fn wrong_length_panics() {
        Dropout::new(0.5, 3, 1).forward_train(2, 0, KEY, &[0.0; 6], Layout::SampleMajor, &mut [0.0; 5]);
    }
}
