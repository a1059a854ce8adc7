//! Augmentation on the fly: crop offsets within bounds and pixels moved exactly, flips exact,
//! draws a function of (seed, epoch, index) only, and training with augmentation the same for
//! 1 and 2 threads and bitwise the same across a resume.

use cnn::data::{Augment, Dataset, Draw};
use cnn::prelude::*;
use cnn::train::{Progress, TrainConfig, Trainer};

cnn! {
    struct Tiny {
        input: [3, 8, 8],
        flatten: Flatten,
        fc: Dense(4),
    }
}

/// `n` images of [3, 8, 8] with pixels from an LCG, labels `i % 4`.
fn data(n: usize, seed: u32) -> Dataset {
    let mut state = seed;
    let pixels = (0..n * 192)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    Dataset::new([3, 8, 8], 4, pixels, (0..n as u32).map(|i| i % 4).collect())
}

/// The image as `f32`, pixel / 255.
fn floats(image: &[u8]) -> Vec<f32> {
    image.iter().map(|&p| f32::from(p) / 255.0).collect()
}

#[test]
fn crops_stay_within_the_padding_and_move_pixels_exactly() {
    let set = data(1, 7);
    let shape = [3, 8, 8];
    let aug = Augment::none().with_crop(3);
    let mut seen = std::collections::HashSet::new();
    for index in 0..400 {
        let draw = aug.draw(11, 4, index);
        let [dy, dx] = draw.crop;
        assert!((-3..=3).contains(&dy) && (-3..=3).contains(&dx), "{draw:?}");
        assert_eq!((draw.shift, draw.flip), ([0, 0], false));
        seen.insert((dy, dx));
        let mut image = floats(set.image(0));
        aug.apply(&draw, shape, &mut image, &mut Vec::new());
        let source = floats(set.image(0));
        for c in 0..3 {
            for y in 0..8isize {
                for x in 0..8isize {
                    let (sy, sx) = (y + dy, x + dx);
                    let want = if (0..8).contains(&sy) && (0..8).contains(&sx) {
                        source[c * 64 + (sy * 8 + sx) as usize]
                    } else {
                        0.0
                    };
                    assert_eq!(image[c * 64 + (y * 8 + x) as usize], want, "{draw:?} at {c},{y},{x}");
                }
            }
        }
    }
    // Every one of the 7 x 7 windows comes up.
    assert_eq!(seen.len(), 49);
}

#[test]
fn shifts_move_the_content_the_other_way() {
    let set = data(1, 3);
    let aug = Augment::none().with_shift(2);
    let draw = Draw {
        shift: [1, -2],
        ..Draw::default()
    };
    let mut image = floats(set.image(0));
    aug.apply(&draw, [3, 8, 8], &mut image, &mut Vec::new());
    let source = floats(set.image(0));
    // Content moves one row down and two columns left.
    assert_eq!(image[64 + 8 + 3], source[64 + 5]);
    assert_eq!(&image[..8], &[0.0; 8]);
    assert_eq!(image[8 + 7], 0.0);
    for d in (0..300).map(|i| aug.draw(0, 0, i)) {
        assert!(
            d.shift.iter().all(|s| (-2..=2).contains(s)) && d.crop == [0, 0],
            "{d:?}"
        );
    }
}

#[test]
fn flips_mirror_each_row_exactly() {
    let set = data(1, 5);
    let aug = Augment::none().with_flip();
    let flip = Draw {
        flip: true,
        ..Draw::default()
    };
    let source = floats(set.image(0));
    let mut image = source.clone();
    aug.apply(&flip, [3, 8, 8], &mut image, &mut Vec::new());
    for (row, original) in image.chunks_exact(8).zip(source.chunks_exact(8)) {
        let mirrored: Vec<f32> = original.iter().rev().copied().collect();
        assert_eq!(row, mirrored.as_slice());
    }
    aug.apply(&flip, [3, 8, 8], &mut image, &mut Vec::new());
    assert_eq!(image, source);
    let flips = (0..2000).filter(|&i| aug.draw(1, 0, i).flip).count();
    assert!((900..1100).contains(&flips), "{flips} flips in 2000");
}

#[test]
fn draws_depend_on_seed_epoch_and_index_only() {
    let aug = Augment::none().with_crop(4).with_flip();
    let all = |seed, epoch| (0..256).map(|i| aug.draw(seed, epoch, i)).collect::<Vec<_>>();
    assert_eq!(all(1, 0), all(1, 0));
    assert_ne!(all(1, 0), all(2, 0));
    assert_ne!(all(1, 0), all(1, 1));
    // Drawn on two threads, each taking every other index: the same draws.
    let halves: Vec<Vec<(usize, Draw)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| s.spawn(move || (t..256).step_by(2).map(|i| (i, aug.draw(1, 0, i))).collect()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut merged: Vec<(usize, Draw)> = halves.into_iter().flatten().collect();
    merged.sort_by_key(|&(i, _)| i);
    assert_eq!(merged.into_iter().map(|(_, d)| d).collect::<Vec<_>>(), all(1, 0));
}

fn config(runs: &std::path::Path, name: &str, augment: Augment, threads: usize, epochs: usize) -> TrainConfig {
    TrainConfig::new()
        .epochs(epochs)
        .batch_size(16)
        .normalize_channels(&[0.5, 0.4, 0.3], &[0.25, 0.25, 0.3])
        .augment(augment)
        .seed(9)
        .threads(threads)
        .runs_dir(runs)
        .run_name(name)
        .progress(Progress::Silent)
}

#[test]
fn training_with_augmentation_is_the_same_for_1_and_2_threads_and_across_a_resume() {
    let (train, test) = (data(96, 1), data(32, 2));
    let runs = tempfile::tempdir().unwrap();
    let runs = runs.path();
    let aug = Augment::none().with_crop(2).with_flip();
    let fit = |name: &str, augment, threads, epochs| {
        Trainer::new(config(runs, name, augment, threads, epochs))
            .fit(Tiny::new(3), &train, &test)
            .unwrap()
            .net
    };
    let one = fit("one", aug, 1, 2);
    let two = fit("two", aug, 2, 2);
    let plain = fit("plain", Augment::none(), 1, 2);
    let diff = |a: &Tiny, b: &Tiny| {
        a.params()
            .iter()
            .zip(b.params())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    // Threads change only the rounding of the sums; other augmentations change the weights.
    assert!(diff(&one, &two) < 1e-5, "1 vs 2 threads: {}", diff(&one, &two));
    assert!(diff(&one, &plain) > 1e-3, "augmented vs plain: {}", diff(&one, &plain));

    // Stopped after one epoch and resumed: bitwise the run that went through.
    fit("stopped", aug, 1, 1);
    let resumed = Trainer::resume(runs.join("stopped"))
        .unwrap()
        .epochs(2)
        .fit(Tiny::new(77), &train, &test)
        .unwrap()
        .net;
    let bits = |n: &Tiny| n.params().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&resumed), bits(&one));
}

#[test]
fn augmentation_needs_image_samples() {
    struct Flat;
    impl cnn::train::Samples for Flat {
        fn len(&self) -> usize {
            4
        }
        fn input_len(&self) -> usize {
            192
        }
        fn gather(&self, indices: &[usize], inputs: &mut [f32], labels: &mut [u32]) {
            inputs.fill(0.5);
            labels.iter_mut().zip(indices).for_each(|(l, &i)| *l = i as u32 % 4);
        }
    }
    let runs = tempfile::tempdir().unwrap();
    let err = Trainer::new(config(runs.path(), "flat", Augment::none().with_flip(), 1, 1))
        .fit(Tiny::new(0), &Flat, &Flat)
        .unwrap_err()
        .to_string();
    assert!(err.contains("augmentation needs image samples"), "{err}");
}

/// The cifar example's ResNet-8, for the overhead benchmark below.
#[path = "../examples/common/resnet8.rs"]
mod resnet8;
use resnet8::ResNet8;

/// The benchmark of augmentation's cost: epochs of ResNet-8 on 5,120 CIFAR-shaped images
/// (batch 128, all cores), with CIFAR's crop and flip and without, interleaved so that other
/// load on the machine hits both alike. The training time of each epoch is the trainer's
/// (`images_per_sec`: the steps, data preparation included, not the evaluation). Run with
///
/// ```text
/// cargo test --release --test augment -- --ignored --nocapture
/// ```
#[test]
#[ignore = "a benchmark: release build, about a minute"]
fn augmentation_overhead_benchmark() {
    let n = 5120;
    let mut state = 1u32;
    let pixels = (0..n * 3072)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let train = Dataset::new([3, 32, 32], 10, pixels, (0..n as u32).map(|i| i % 10).collect());
    let test = cnn::train::Subset::new(&train, 0..128);
    let runs = tempfile::tempdir().unwrap();
    let cifar = Augment::none().with_crop(4).with_flip();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..4 {
        for (augment, times) in [(cifar, &mut with), (Augment::none(), &mut without)] {
            let config = TrainConfig::new()
                .batch_size(128)
                .normalize_channels(&[0.49, 0.48, 0.45], &[0.25, 0.24, 0.26])
                .augment(augment)
                .runs_dir(runs.path())
                .run_name(format!("{round}-{}", augment.flip))
                .progress(Progress::Silent);
            let outcome = Trainer::new(config).fit(ResNet8::new(1), &train, &test).unwrap();
            // Round 0 warms caches and the thread pool up: not counted.
            if round > 0 {
                times.push(n as f64 / outcome.history[0].images_per_sec);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut with), median(&mut without));
    let overhead = 100.0 * (a / b - 1.0);
    // What preparing the data costs in itself, on one thread, as the trainer's loader does it:
    // gather (pixel / 255), draw and apply the transforms, normalize. Short and single-threaded,
    // so other load on the machine hardly moves it.
    let normalize = cnn::train::Normalize::per_channel(&[0.49, 0.48, 0.45], &[0.25, 0.24, 0.26]);
    let prepare = |augment: Augment| {
        let start = std::time::Instant::now();
        let (mut inputs, mut labels, mut scratch) = (vec![0.0; 128 * 3072], vec![0; 128], Vec::new());
        let order: Vec<usize> = (0..n).collect();
        for batch in order.chunks(128) {
            train.gather(batch, &mut inputs, &mut labels);
            for (sample, &i) in inputs.chunks_exact_mut(3072).zip(batch) {
                augment.apply(&augment.draw(1, 0, i), [3, 32, 32], sample, &mut scratch);
                normalize.apply(sample);
            }
        }
        start.elapsed().as_secs_f64()
    };
    let (mut prep_with, mut prep_without): (Vec<f64>, Vec<f64>) =
        (0..5).map(|_| (prepare(cifar), prepare(Augment::none()))).unzip();
    let (pa, pb) = (median(&mut prep_with), median(&mut prep_without));
    println!(
        "data preparation of an epoch on one thread (median of 5): {:.1} ms with crop+flip, {:.1} ms without: \
         {:.2}% of the augmented epoch's training time",
        pa * 1e3,
        pb * 1e3,
        100.0 * pa / a
    );
    println!(
        "epoch of {n} images, median of 3: {a:.2} s with crop+flip, {b:.2} s without: {overhead:+.1}% \
         ({:.0} vs {:.0} images/s); all: {with:.2?} vs {without:.2?}",
        n as f64 / a,
        n as f64 / b
    );
    assert!(overhead < 5.0, "augmentation costs {overhead:.1}% of an epoch");
}
