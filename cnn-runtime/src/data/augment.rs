//! Augmentation on the fly: random crop with zero padding, random shift, horizontal flip.
//!
//! Nothing is stored: the trainer applies an [`Augment`] to each sample as it gathers the
//! batch, after scaling pixels to `[0, 1]` and before normalizing, as torchvision's
//! `RandomCrop`/`RandomHorizontalFlip` run before `ToTensor`/`Normalize` (the zero padding is a
//! black pixel, which normalization then maps like any other).
//!
//! A sample's random choices ([`Draw`]) are a hash of the seed, the epoch and the sample's
//! index in the training set, nothing else: the same whatever the thread count, the batch
//! size or the order in which batches are prepared, and a resumed run draws what an
//! uninterrupted one would. Every draw takes the same five numbers whichever transforms are
//! on, so turning the flip on does not change the crops.

use serde::{Deserialize, Serialize};

/// Which random transforms training samples get, each epoch anew.
///
/// ```
/// use cnn_runtime::data::Augment;
///
/// // CIFAR's usual: RandomCrop(32, padding = 4) and RandomHorizontalFlip().
/// let cifar = Augment::none().with_crop(4).with_flip();
/// let draw = cifar.draw(1, 0, 17);
/// assert!(draw.crop.iter().all(|d| (-4..=4).contains(d)));
/// assert_eq!(draw, cifar.draw(1, 0, 17)); // a function of (seed, epoch, index)
///
/// let mut image = vec![0.1, 0.2, 0.3, 0.4]; // [1, 2, 2]
/// Augment::none().with_flip().apply(&cnn_runtime::data::Draw { flip: true, ..Default::default() }, [1, 2, 2], &mut image, &mut Vec::new());
/// assert_eq!(image, [0.2, 0.1, 0.4, 0.3]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Augment {
    /// Random crop with zero padding, as `RandomCrop(H, W, padding = crop_padding)`: the image
    /// is padded with `crop_padding` black pixels on every side and an `H x W` window taken at
    /// a uniformly random place. 0: off.
    pub crop_padding: usize,
    /// Random shift: the content moves by a uniform `-shift..=shift` pixels down and as many
    /// right (independently), the uncovered border black. 0: off. (For digits; it is the
    /// same distribution as `crop_padding`, applied after it when both are on.)
    pub shift: usize,
    /// Horizontal flip with probability 1/2, as `RandomHorizontalFlip()`.
    pub flip: bool,
}

/// The random choices of one sample in one epoch; see [`Augment::draw`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Draw {
    /// The crop window's offset `[dy, dx]` from the centered one, each in
    /// `-crop_padding..=crop_padding`: output pixel `(y, x)` is input pixel `(y + dy, x + dx)`,
    /// black outside the image.
    pub crop: [isize; 2],
    /// The shift `[down, right]`, each in `-shift..=shift`: output pixel `(y, x)` is input
    /// pixel `(y - down, x - right)`, black outside.
    pub shift: [isize; 2],
    /// Whether the image is mirrored left to right.
    pub flip: bool,
}

impl Augment {
    /// No transform at all.
    pub fn none() -> Augment {
        Augment::default()
    }

    /// The same, with a random crop padded by `padding` pixels ([`Augment::crop_padding`]).
    pub fn with_crop(mut self, padding: usize) -> Augment {
        self.crop_padding = padding;
        self
    }

    /// The same, with a random shift of up to `pixels` ([`Augment::shift`]).
    pub fn with_shift(mut self, pixels: usize) -> Augment {
        self.shift = pixels;
        self
    }

    /// The same, with random horizontal flips ([`Augment::flip`]).
    pub fn with_flip(mut self) -> Augment {
        self.flip = true;
        self
    }

    /// Whether no transform is on.
    pub fn is_none(&self) -> bool {
        *self == Augment::none()
    }

    /// The random choices for sample `index` (its place in the training set) in epoch
    /// `epoch` of a run seeded with `seed`. Transforms that are off draw 0 / `false`.
    ///
    /// ```
    /// use cnn_runtime::data::Augment;
    /// let flips = (0..1000).filter(|&i| Augment::none().with_flip().draw(3, 0, i).flip).count();
    /// assert!((400..600).contains(&flips));
    /// assert_eq!(Augment::none().draw(3, 0, 5), Default::default());
    /// ```
    pub fn draw(&self, seed: u64, epoch: usize, index: usize) -> Draw {
        let mut state =
            mix(mix(seed ^ 0x6175_676d_656e_7421) ^ (epoch as u64)) ^ mix(index as u64 ^ 0x1f83_d9ab_fb41_bd6b);
        let mut offset = |radius: usize| {
            let n = 2 * radius as u64 + 1;
            below(&mut state, n) as isize - radius as isize
        };
        let crop = [offset(self.crop_padding), offset(self.crop_padding)];
        let shift = [offset(self.shift), offset(self.shift)];
        let flip = below(&mut state, 2) == 1 && self.flip;
        Draw { crop, shift, flip }
    }

    /// Applies `draw` to one image of `shape = [C, H, W]` (channel planes, row-major): crop,
    /// then shift, then flip. `scratch` is reused between calls.
    ///
    /// # Panics
    ///
    /// If `image.len()` is not `C * H * W`.
    pub fn apply(&self, draw: &Draw, shape: [usize; 3], image: &mut [f32], scratch: &mut Vec<f32>) {
        let [c, h, w] = shape;
        assert_eq!(
            image.len(),
            c * h * w,
            "Augment::apply: an image of shape {shape:?} holds {} values, got {}",
            c * h * w,
            image.len()
        );
        if draw.crop != [0, 0] {
            translate(image, [c, h, w], draw.crop, scratch);
        }
        if draw.shift != [0, 0] {
            translate(image, [c, h, w], [-draw.shift[0], -draw.shift[1]], scratch);
        }
        if draw.flip {
            for row in image.chunks_exact_mut(w) {
                row.reverse();
            }
        }
    }
}

/// `image[y][x] = old[y + dy][x + dx]`, 0 where that is outside, for every channel plane.
fn translate(image: &mut [f32], [c, h, w]: [usize; 3], [dy, dx]: [isize; 2], scratch: &mut Vec<f32>) {
    scratch.clear();
    scratch.extend_from_slice(image);
    image.fill(0.0);
    // Output columns whose source column x + dx is inside 0..w.
    let x0 = (-dx).clamp(0, w as isize) as usize;
    let x1 = (w as isize - dx).clamp(0, w as isize) as usize;
    if x0 >= x1 {
        return;
    }
    for ch in 0..c {
        let plane = ch * h * w;
        for y in 0..h {
            let sy = y as isize + dy;
            if !(0..h as isize).contains(&sy) {
                continue;
            }
            let src = plane + sy as usize * w;
            let dst = plane + y * w;
            let sx0 = (x0 as isize + dx) as usize;
            image[dst + x0..dst + x1].copy_from_slice(&scratch[src + sx0..src + sx0 + (x1 - x0)]);
        }
    }
}

/// SplitMix64's finalizer: a bijective scramble of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform integer in `0..n` (`n >= 1`) from a SplitMix64 stream, without modulo bias
/// (Lemire's multiply-and-reject).
fn below(state: &mut u64, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let m = u128::from(mix(*state)) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translate_moves_and_zero_fills() {
        // [1, 3, 3]: 1..=9.
        let mut img: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        translate(&mut img, [1, 3, 3], [1, -1], &mut Vec::new());
        assert_eq!(img, [0.0, 4.0, 5.0, 0.0, 7.0, 8.0, 0.0, 0.0, 0.0]);
        let mut img: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        translate(&mut img, [1, 3, 3], [0, 5], &mut Vec::new());
        assert!(img.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn enabling_flip_keeps_the_crops() {
        let crop = Augment::none().with_crop(4);
        for i in 0..50 {
            assert_eq!(crop.draw(9, 2, i).crop, crop.with_flip().draw(9, 2, i).crop);
        }
    }

    #[test]
    fn offsets_cover_the_whole_range() {
        let aug = Augment::none().with_crop(2).with_shift(1);
        let mut seen = [[false; 5]; 2];
        for i in 0..500 {
            let d = aug.draw(0, 0, i);
            seen[0][(d.crop[0] + 2) as usize] = true;
            assert!((-1..=1).contains(&d.shift[1]));
            seen[1][(d.crop[1] + 2) as usize] = true;
        }
        assert!(seen.iter().flatten().all(|&s| s));
    }
}
