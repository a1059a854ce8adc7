//! `Cifar10::load` and format detection on CIFAR-format files the tests write: exact pixels and
//! labels in file order, every error naming its file, damaged copies that never panic, and
//! memory bounded by the files (a counting allocator, `tests/counting/`).

use std::fs;
use std::path::Path;

use cnn::data::{load_any, Cifar10, Format};
use proptest::prelude::*;

mod counting;

use counting::largest_allocation;

const IMAGE: usize = 3072;
const RECORD: usize = 3073;

/// `n` records whose labels and pixels come from a small LCG seeded with `seed`.
fn records(n: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut next = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 24) as u8
    };
    let mut bytes = Vec::with_capacity(n * RECORD);
    for _ in 0..n {
        bytes.push(next() % 10);
        bytes.extend((0..IMAGE).map(|_| next()));
    }
    bytes
}

/// Writes the six files, `per_file[k]` records in file `k` (the test file last).
fn write_set(dir: &Path, per_file: [usize; 6]) -> Vec<Vec<u8>> {
    let names = Cifar10::TRAIN_FILES.iter().chain([&Cifar10::TEST_FILE]);
    names
        .zip(per_file)
        .enumerate()
        .map(|(k, (name, n))| {
            let bytes = records(n, k as u32);
            fs::write(dir.join(name), &bytes).unwrap();
            bytes
        })
        .collect()
}

#[test]
fn pixels_and_labels_are_the_records_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_set(dir.path(), [3, 1, 2, 4, 2, 5]);
    let cifar = Cifar10::load(dir.path()).unwrap();
    assert_eq!((cifar.train.len(), cifar.test.len()), (12, 5));
    assert_eq!((cifar.train.shape(), cifar.train.classes()), ([3, 32, 32], 10));
    let train_records: Vec<&[u8]> = files[..5].iter().flat_map(|f| f.chunks_exact(RECORD)).collect();
    for (i, record) in train_records.iter().enumerate() {
        assert_eq!(cifar.train.label(i), u32::from(record[0]), "record {i}");
        assert_eq!(cifar.train.image(i), &record[1..], "record {i}");
    }
    for (i, record) in files[5].chunks_exact(RECORD).enumerate() {
        assert_eq!(
            (cifar.test.label(i), cifar.test.image(i)),
            (u32::from(record[0]), &record[1..])
        );
    }
    // The red plane first: pixel (0, 1) of the green plane is byte 1 + 1024 + 1 of the record.
    assert_eq!(cifar.train.image(0)[1024 + 1], files[0][1 + 1024 + 1]);

    // Detected and loaded through load_any as well, with CIFAR's class names.
    assert_eq!(Format::detect(dir.path()).unwrap(), Format::Cifar10);
    let any = load_any(dir.path(), [3, 32, 32]).unwrap();
    assert_eq!((any.train, any.test), (cifar.train, cifar.test));
    assert_eq!(any.class_names[3], "cat");
    let err = load_any(dir.path(), [1, 28, 28]).unwrap_err().to_string();
    assert!(err.contains("CIFAR-10") && err.contains("[1, 28, 28]"), "{err}");
}

#[test]
fn every_damage_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_set(dir.path(), [2; 6]);
    let third = dir.path().join("data_batch_3.bin");

    // Truncated by one byte.
    fs::write(&third, &files[2][..2 * RECORD - 1]).unwrap();
    let msg = Cifar10::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("data_batch_3.bin") && msg.contains("6145 bytes"), "{msg}");

    // A label of 10 in the second record.
    let mut bad = files[2].clone();
    bad[RECORD] = 10;
    fs::write(&third, &bad).unwrap();
    let err = Cifar10::load(dir.path()).unwrap_err();
    assert!(matches!(err, cnn::Error::Data { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("data_batch_3.bin") && msg.contains("record 1") && msg.contains("label 10"),
        "{msg}"
    );

    // Empty.
    fs::write(&third, b"").unwrap();
    let msg = Cifar10::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("data_batch_3.bin") && msg.contains("empty"), "{msg}");

    // Missing: the test file.
    fs::write(&third, &files[2]).unwrap();
    fs::remove_file(dir.path().join("test_batch.bin")).unwrap();
    let err = Cifar10::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, cnn::Error::Io { path, .. } if path.ends_with("test_batch.bin")),
        "{err:?}"
    );
}

#[test]
fn memory_is_bounded_by_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_set(dir.path(), [2; 6]);
    // A sparse 3 GB file one byte longer than a million records: refused from its length,
    // before anything is read or allocated for it.
    let huge = fs::File::create(dir.path().join("data_batch_2.bin")).unwrap();
    huge.set_len(3073 * 1_000_000 + 1).unwrap();
    let (largest, result) = largest_allocation(|| Cifar10::load(dir.path()));
    let msg = result.unwrap_err().to_string();
    assert!(
        msg.contains("data_batch_2.bin") && msg.contains("1000000 records and 1 bytes"),
        "{msg}"
    );
    assert!(largest < 64 << 10, "largest allocation {largest} bytes");

    // A good set: no allocation larger than the split's pixels (the buffer is sized once).
    fs::write(dir.path().join("data_batch_2.bin"), &files[1]).unwrap();
    let (largest, result) = largest_allocation(|| Cifar10::load(dir.path()));
    assert_eq!(result.unwrap().train.len(), 10);
    assert!(largest <= 10 * IMAGE, "largest allocation {largest} bytes");
}

#[test]
fn a_folder_of_nothing_known_says_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    let msg = load_any(dir.path(), [3, 32, 32]).unwrap_err().to_string();
    for expected in ["data_batch_1.bin", "train-images-idx3-ubyte", "train/<class>"] {
        assert!(msg.contains(expected), "{msg}");
    }
}

/// One damage to a set of files: which file, and what happens to it.
#[derive(Clone, Debug)]
enum Damage {
    Truncate { file: usize, len: usize },
    Byte { file: usize, at: usize, value: u8 },
    Append { file: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0..6usize, 0..2 * RECORD + 10).prop_map(|(file, len)| Damage::Truncate { file, len }),
        (0..6usize, 0..2 * RECORD, any::<u8>()).prop_map(|(file, at, value)| Damage::Byte { file, at, value }),
        (0..6usize, proptest::collection::vec(any::<u8>(), 0..4000))
            .prop_map(|(file, bytes)| Damage::Append { file, bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the damage, loading returns: `Ok` with every label below 10 and whole images,
    /// or an error naming the damaged file. Memory is bounded by the files (nothing is read
    /// beyond their length, checked before reading).
    #[test]
    fn damaged_files_never_panic(d in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let mut files = write_set(dir.path(), [2; 6]);
        let file = match &d {
            Damage::Truncate { file, len } => { files[*file].truncate(*len); *file }
            Damage::Byte { file, at, value } => { files[*file][*at] = *value; *file }
            Damage::Append { file, bytes } => { files[*file].extend_from_slice(bytes); *file }
        };
        let name = if file == 5 { Cifar10::TEST_FILE } else { Cifar10::TRAIN_FILES[file] };
        fs::write(dir.path().join(name), &files[file]).unwrap();
        match Cifar10::load(dir.path()) {
            Ok(cifar) => {
                prop_assert!(cifar.train.labels().iter().chain(cifar.test.labels()).all(|&l| l < 10));
                prop_assert_eq!(cifar.train.len() + cifar.test.len(), files.iter().map(|f| f.len() / RECORD).sum::<usize>());
            }
            Err(e) => prop_assert!(e.to_string().contains(name), "{}", e),
        }
    }
}
