//! CIFAR-10, binary version: the `cifar-10-batches-bin` folder of
//! <https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz>.
//!
//! Each file is a sequence of records of 3,073 bytes: one label byte (0..10), then 3,072 pixel
//! bytes, the 1,024 red, then green, then blue values of a 32x32 image, each plane row-major.
//! That is already our layout, so records are copied as they are.
//!
//! A file must hold a whole, non-zero number of records (10,000 in the real data set; fewer are
//! accepted so that subsets load), and every label must be below 10. The length is checked
//! from the file's metadata before anything is read, so memory is bounded by the file itself.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{data_error, Dataset};
use crate::Error;

/// Bytes of one image: 3 planes of 32x32.
const IMAGE: usize = 3 * 32 * 32;
/// Bytes of one record: the label, then the image.
const RECORD: usize = 1 + IMAGE;
/// Labels are `0..CLASSES`.
const CLASSES: usize = 10;

/// CIFAR-10 in its binary version: 32x32 RGB images (`shape() == [3, 32, 32]`) of 10
/// classes, 50,000 for training and 10,000 for testing.
///
/// ```no_run
/// use cnn_runtime::data::Cifar10;
///
/// let cifar = Cifar10::load("cifar-10-batches-bin")?;
/// assert_eq!((cifar.train.len(), cifar.test.len()), (50_000, 10_000));
/// assert_eq!(cifar.test.shape(), [3, 32, 32]);
/// assert_eq!(Cifar10::CLASS_NAMES[cifar.test.label(0) as usize], "cat");
/// # Ok::<(), cnn_runtime::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cifar10 {
    /// `data_batch_1.bin` .. `data_batch_5.bin`, in that order.
    pub train: Dataset,
    /// `test_batch.bin`.
    pub test: Dataset,
}

impl Cifar10 {
    /// The training files, read in this order.
    pub const TRAIN_FILES: [&'static str; 5] = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ];
    /// The test file.
    pub const TEST_FILE: &'static str = "test_batch.bin";
    /// Label `i` is `CLASS_NAMES[i]` (`batches.meta.txt`).
    pub const CLASS_NAMES: [&'static str; 10] = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ];
    /// The training set's per-channel mean of pixel / 255 (R, G, B), the usual normalization.
    pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
    /// The training set's per-channel standard deviation of pixel / 255 (R, G, B).
    pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

    /// Reads the six files of CIFAR-10's binary version from `dir` (or from
    /// `dir/cifar-10-batches-bin`, where the archive unpacks, if `dir` holds no
    /// `data_batch_1.bin`).
    ///
    /// ```no_run
    /// let cifar = cnn_runtime::data::Cifar10::load("data/cifar-10-batches-bin")?;
    /// assert_eq!(cifar.train.classes(), 10);
    /// # Ok::<(), cnn_runtime::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] naming the file if one is missing or cannot be read;
    /// - [`Error::Data`] naming the file if it is empty or not a whole number of 3,073-byte
    ///   records, or holds a label of 10 or more (the message gives the record).
    pub fn load(dir: impl AsRef<Path>) -> Result<Cifar10, Error> {
        let mut dir = dir.as_ref().to_path_buf();
        let nested = dir.join("cifar-10-batches-bin");
        if !dir.join(Self::TRAIN_FILES[0]).exists() && nested.join(Self::TRAIN_FILES[0]).exists() {
            dir = nested;
        }
        let files: Vec<PathBuf> = Self::TRAIN_FILES.iter().map(|f| dir.join(f)).collect();
        Ok(Cifar10 {
            train: read_split(&files)?,
            test: read_split(&[dir.join(Self::TEST_FILE)])?,
        })
    }
}

/// Reads the records of `files`, one after another, into one split.
fn read_split(files: &[PathBuf]) -> Result<Dataset, Error> {
    // Sized once from the lengths of the files that look right, so the pixels are not copied
    // as the buffer grows and it is no larger than they are; a file of the wrong length counts
    // for nothing here, and fails below before it is read.
    let records: usize = files
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|m| m.len())
        .filter(|&len| check_length(Path::new(""), len).is_ok())
        .map(|len| usize::try_from(len / RECORD as u64).unwrap_or(0))
        .sum();
    let mut images = Vec::with_capacity(records.saturating_mul(IMAGE));
    let mut labels = Vec::with_capacity(records);
    for path in files {
        read_file(path, &mut images, &mut labels)?;
    }
    Ok(Dataset::new([3, 32, 32], CLASSES, images, labels))
}

/// Appends the records of one file.
fn read_file(path: &Path, images: &mut Vec<u8>, labels: &mut Vec<u32>) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    check_length(path, len)?;
    let len = usize::try_from(len).map_err(|_| data_error(path, "too large for this machine"))?;
    let mut bytes = Vec::with_capacity(len);
    // One byte more than the metadata said: a file that grew meanwhile is caught too.
    file.take(len as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
    check_length(path, bytes.len() as u64)?;
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        let label = record[0];
        if usize::from(label) >= CLASSES {
            return Err(data_error(
                path,
                format!(
                    "record {i} (byte {}) has label {label}; CIFAR-10 labels are 0..10",
                    i * RECORD
                ),
            ));
        }
        labels.push(u32::from(label));
        images.extend_from_slice(&record[1..]);
    }
    Ok(())
}

/// A CIFAR-10 file is a whole, non-zero number of records.
fn check_length(path: &Path, len: u64) -> Result<(), Error> {
    let record = RECORD as u64;
    if len == 0 {
        return Err(data_error(
            path,
            "the file is empty; a CIFAR-10 batch holds records of 3073 bytes (10,000 of them)",
        ));
    }
    if !len.is_multiple_of(record) {
        let hint = if len.is_multiple_of(record + 1) {
            " (records of 3074 bytes: this looks like CIFAR-100, which has two label bytes)"
        } else {
            ""
        };
        return Err(data_error(
            path,
            format!(
                "the file is {len} bytes long, not a whole number of 3073-byte records \
                 ({} records and {} bytes; truncated or not a CIFAR-10 batch){hint}",
                len / record,
                len % record
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` records with labels `i % 10` and pixels `(i + j) % 256`.
    fn batch(n: usize, first: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for i in first..first + n {
            bytes.push((i % 10) as u8);
            bytes.extend((0..IMAGE).map(|j| ((i + j) % 256) as u8));
        }
        bytes
    }

    fn write_all(dir: &Path, per_file: usize) {
        for (k, name) in Cifar10::TRAIN_FILES.iter().enumerate() {
            std::fs::write(dir.join(name), batch(per_file, k * per_file)).unwrap();
        }
        std::fs::write(dir.join(Cifar10::TEST_FILE), batch(per_file, 1000)).unwrap();
    }

    #[test]
    fn loads_records_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path(), 3);
        let cifar = Cifar10::load(dir.path()).unwrap();
        assert_eq!((cifar.train.len(), cifar.test.len()), (15, 3));
        assert_eq!(cifar.train.shape(), [3, 32, 32]);
        for i in 0..15 {
            assert_eq!(cifar.train.label(i), (i % 10) as u32);
            assert_eq!(cifar.train.image(i)[5], ((i + 5) % 256) as u8);
        }
        assert_eq!(cifar.test.image(0)[0], (1000 % 256) as u8);
    }

    #[test]
    fn nested_folder_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&nested).unwrap();
        write_all(&nested, 1);
        assert_eq!(Cifar10::load(dir.path()).unwrap().train.len(), 5);
    }

    #[test]
    fn lengths_are_checked() {
        let path = Path::new("x.bin");
        assert!(check_length(path, 3073 * 2).is_ok());
        let msg = check_length(path, 3073 * 2 + 5).unwrap_err().to_string();
        assert!(msg.contains("x.bin") && msg.contains("2 records and 5 bytes"), "{msg}");
        let msg = check_length(path, 3074 * 3).unwrap_err().to_string();
        assert!(msg.contains("CIFAR-100"), "{msg}");
        assert!(check_length(path, 0).unwrap_err().to_string().contains("empty"));
    }
}
