//! Damaged IDX files (MNIST's format) through the public API, gzipped and not: overflowing
//! dimensions, counts larger than the file, counts that disagree, wrong magic numbers and
//! type codes, labels out of range, gzip bombs, and random corruption. Every case is an
//! `Err` naming the problem, or an `Ok` data set that keeps its invariants; none panics. The
//! allocation bound is checked in `hostile_alloc.rs`.

use cnn::data::Dataset;
use cnn::Error;
use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An IDX file: magic, big-endian dimensions, then `data`.
fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

/// `n` images of `rows x cols` and their labels `i % 10`.
fn pair(n: u32, rows: u32, cols: u32) -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..n * rows * cols).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    (idx(0x0803, &[n, rows, cols], &pixels), idx(0x0801, &[n], &labels))
}

struct Files {
    _dir: tempfile::TempDir,
    images: PathBuf,
    labels: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = (dir.path().join("images.idx"), dir.path().join("labels.idx"));
        Files {
            _dir: dir,
            images,
            labels,
        }
    }

    /// Writes both files (gzipped when `gz`) and loads them.
    fn load(&self, images: &[u8], labels: &[u8], gz: bool) -> Result<Dataset, Error> {
        let store = |b: &[u8]| if gz { gzip(b) } else { b.to_vec() };
        std::fs::write(&self.images, store(images)).unwrap();
        std::fs::write(&self.labels, store(labels)).unwrap();
        Dataset::load(&self.images, &self.labels)
    }
}

/// The contract: an error naming one of the two files, or a data set whose every image has
/// `rows * cols` pixels and every label is below 10.
fn check_outcome(result: Result<Dataset, Error>) -> Result<Dataset, String> {
    match result {
        Ok(data) => {
            assert!(data.rows() > 0 && data.cols() > 0);
            assert_eq!(data.labels().len(), data.len());
            assert!(data.labels().iter().all(|&l| l < 10));
            if !data.is_empty() {
                assert_eq!(data.image(data.len() - 1).len(), data.rows() * data.cols());
            }
            Ok(data)
        }
        Err(err) => {
            let msg = err.to_string();
            assert!(msg.contains(".idx"), "the error does not name a file: {msg}");
            Err(msg)
        }
    }
}

fn expect_err(files: &Files, images: &[u8], labels: &[u8], wants: &[&str]) {
    for gz in [false, true] {
        let Err(msg) = check_outcome(files.load(images, labels, gz)) else {
            panic!("a damaged file loaded");
        };
        for want in wants {
            assert!(msg.contains(want), "gz={gz}: expected {want:?} in: {msg}");
        }
    }
}

#[test]
fn dimensions_whose_product_overflows_are_errors() {
    let f = Files::new();
    let (_, labels) = pair(1, 1, 1);
    let m = u32::MAX;
    for dims in [[m, m, m], [m, m, 2], [2, m, m]] {
        expect_err(
            &f,
            &idx(0x0803, &dims, &[0; 64]),
            &labels,
            &["more bytes than this machine can address"],
        );
    }
}

#[test]
fn counts_larger_than_the_file_are_errors() {
    let f = Files::new();
    let (images, labels) = pair(3, 4, 4);
    // The header promises 2^32 - 1 images, or one image more than there is.
    let mut lying = images.clone();
    lying[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    expect_err(&f, &lying, &labels, &["truncated", "4294967295 images"]);
    lying[4..8].copy_from_slice(&4u32.to_be_bytes());
    expect_err(
        &f,
        &lying,
        &labels,
        &["truncated", "4 images, 80 bytes with the header", "64 bytes long"],
    );
    // Huge rows and columns that do not overflow.
    let huge = idx(0x0803, &[1, 1 << 16, 1 << 16], &[0; 10]);
    expect_err(&f, &huge, &pair(1, 1, 1).1, &["truncated", "4294967312 bytes"]);
    let mut lying_labels = labels.clone();
    lying_labels[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    expect_err(&f, &images, &lying_labels, &["truncated", "4294967295 labels"]);
}

#[test]
fn counts_that_disagree_are_errors() {
    let f = Files::new();
    let (images, _) = pair(3, 2, 2);
    let (_, labels) = pair(5, 2, 2);
    for gz in [false, true] {
        match f.load(&images, &labels, gz) {
            Err(Error::CountMismatch { images, labels, .. }) => assert_eq!((images, labels), (3, 5)),
            other => panic!("expected CountMismatch, got {other:?}"),
        }
    }
}

#[test]
fn wrong_magic_or_type_code_is_an_error() {
    let f = Files::new();
    let (images, labels) = pair(2, 3, 3);
    // Each type code but unsigned byte, in either file.
    for (code, name) in [
        (0x09, "signed byte"),
        (0x0b, "16-bit integer"),
        (0x0c, "32-bit integer"),
        (0x0d, "32-bit float"),
        (0x0e, "64-bit float"),
        (0x42, "not an IDX type"),
    ] {
        let want = format!("type code 0x{code:02x} ({name}) is not supported, only 0x08 (unsigned byte)");
        let mut bad = images.clone();
        bad[2] = code;
        expect_err(&f, &bad, &labels, &[&want, "an IDX image file starts with 2051"]);
        let mut bad = labels.clone();
        bad[2] = code;
        expect_err(&f, &images, &bad, &[&want, "an IDX label file starts with 2049"]);
    }
    // Wrong dimension count, non-zero leading bytes, swapped files, no header at all.
    let mut bad = images.clone();
    bad[3] = 4;
    expect_err(&f, &bad, &labels, &[": 4 dimensions; an IDX image file"]);
    let mut bad = images.clone();
    bad[0] = 0x1f;
    expect_err(&f, &bad, &labels, &["not an IDX file"]);
    expect_err(&f, &labels, &images, &["marks an IDX label file"]);
    expect_err(&f, &images, &[], &["0 bytes long"]);
    expect_err(&f, &images, &labels[..3], &["3 bytes long"]);
}

#[test]
fn labels_outside_0_to_9_are_errors() {
    let f = Files::new();
    let (images, _) = pair(4, 2, 2);
    for (at, label) in [(0, 10), (3, 255), (1, 128)] {
        let mut labels = vec![1u8; 4];
        labels[at] = label;
        let want = format!("label {label} at index {at} is out of range; labels must be in 0..10");
        expect_err(&f, &images, &idx(0x0801, &[4], &labels), &[&want]);
    }
}

#[test]
fn empty_images_are_errors() {
    let f = Files::new();
    let (_, labels) = pair(0, 1, 1);
    expect_err(
        &f,
        &idx(0x0803, &[0, 0, 5], &[]),
        &labels,
        &["0x5 pixels hold no pixel"],
    );
}

/// A header promising ten 28x28 images, then 50 MiB of zeros, gzipped to about 50 KB.
/// Inflating stops one byte past the promise, so the test takes milliseconds, not the time
/// to inflate 50 MiB.
#[test]
fn a_gzip_bomb_is_refused_without_being_inflated() {
    let f = Files::new();
    let (_, labels) = pair(10, 28, 28);
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(&idx(0x0803, &[10, 28, 28], &[])).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..50 {
        encoder.write_all(&chunk).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    std::fs::write(&f.images, &bomb).unwrap();
    std::fs::write(&f.labels, &labels).unwrap();

    let start = Instant::now();
    let msg = check_outcome(Dataset::load(&f.images, &f.labels)).unwrap_err();
    let took = start.elapsed();
    assert!(
        msg.contains("trailing bytes") && msg.contains("7856 bytes with the header"),
        "{msg}"
    );
    assert!(
        took < Duration::from_millis(500),
        "took {took:?}: the bomb was inflated"
    );

    // A bomb in the label file: one label promised.
    std::fs::write(&f.images, pair(1, 28, 28).0).unwrap();
    let mut labels = idx(0x0801, &[1], &[3]);
    labels.resize(50 << 20, 0);
    std::fs::write(&f.labels, gzip(&labels)).unwrap();
    let msg = check_outcome(Dataset::load(&f.images, &f.labels)).unwrap_err();
    assert!(msg.contains("trailing bytes"), "{msg}");
}

#[test]
fn a_second_gzip_member_past_the_data_is_trailing_bytes() {
    let f = Files::new();
    let (images, labels) = pair(2, 2, 2);
    let two_members = [gzip(&images), gzip(b"more")].concat();
    std::fs::write(&f.images, two_members).unwrap();
    std::fs::write(&f.labels, &labels).unwrap();
    let msg = check_outcome(Dataset::load(&f.images, &f.labels)).unwrap_err();
    assert!(msg.contains("trailing bytes"), "{msg}");
}

/// A change to one of the two files.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(usize),
    Flip {
        at: usize,
        mask: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Overwrites a header field (0 = magic, 1.. = dimensions) with an awkward value.
    Field {
        index: usize,
        value: u32,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    let awkward = prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(1 << 16),
        Just(0x0803),
        Just(0x0801),
        0u32..64,
        any::<u32>()
    ];
    prop_oneof![
        (0usize..200).prop_map(Damage::Truncate),
        (0usize..200, 1u8..).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        (0usize..200, any::<u8>()).prop_map(|(at, byte)| Damage::Set { at, byte }),
        (0usize..200, prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
        (0usize..4, awkward).prop_map(|(index, value)| Damage::Field { index, value }),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    let len = bytes.len();
    match damage {
        Damage::Truncate(cut) => bytes.truncate(*cut),
        Damage::Flip { at, mask } if *at < len => bytes[*at] ^= mask,
        Damage::Set { at, byte } if *at < len => bytes[*at] = *byte,
        Damage::Insert { at, bytes: new } => {
            let at = (*at).min(len);
            bytes.splice(at..at, new.iter().copied());
        }
        Damage::Field { index, value } if 4 * index + 4 <= len => {
            bytes[4 * index..4 * index + 4].copy_from_slice(&value.to_be_bytes());
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random damage to small files, before or after gzipping them: never a panic.
    #[test]
    fn damaged_idx_files_never_panic(
        (n, rows, cols) in (0u32..6, 1u32..5, 1u32..5),
        image_damage in prop::collection::vec(damage(), 0..3),
        label_damage in prop::collection::vec(damage(), 0..3),
        gz in any::<bool>(),
        damage_compressed in any::<bool>(),
    ) {
        let f = Files::new();
        let (mut images, mut labels) = pair(n, rows, cols);
        if gz && damage_compressed {
            // Damage the gzip stream itself.
            images = gzip(&images);
            labels = gzip(&labels);
        }
        let undamaged = image_damage.is_empty() && label_damage.is_empty();
        for d in &image_damage {
            apply(&mut images, d);
        }
        for d in &label_damage {
            apply(&mut labels, d);
        }
        let outcome = if gz && !damage_compressed {
            f.load(&images, &labels, true)
        } else {
            std::fs::write(&f.images, &images).unwrap();
            std::fs::write(&f.labels, &labels).unwrap();
            Dataset::load(&f.images, &f.labels)
        };
        let outcome = check_outcome(outcome);
        if undamaged {
            let data = outcome.unwrap();
            prop_assert_eq!((data.len(), data.rows(), data.cols()), (n as usize, rows as usize, cols as usize));
        }
    }
}
