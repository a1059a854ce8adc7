//! Data sets in the IDX format: MNIST, and anything laid out like it (Fashion-MNIST, KMNIST).
//!
//! An IDX file is a big-endian header, then raw bytes:
//!
//! - images: magic `0x00000803` (2051: unsigned bytes, three dimensions), then `count`,
//!   `rows`, `cols` as `u32` (16 bytes in all), then `count * rows * cols` pixels, row-major,
//!   0 = background, 255 = ink;
//! - labels: magic `0x00000801` (2049: unsigned bytes, one dimension), then `count` (8 bytes
//!   in all), then `count` label bytes.
//!
//! Each file may be gzip-compressed as a whole; that is detected from its first two bytes
//! (`1f 8b`), not from its name. Files are checked strictly: the magic number, a length that
//! is exactly header plus data, labels in `0..10`, and image and label counts that agree.
//!
//! # Untrusted files
//!
//! Whatever the bytes, loading never panics and every failure is an [`Error`] naming the
//! file. In particular:
//!
//! - the magic number must be two zero bytes, type code `0x08` (unsigned byte; the other IDX
//!   types are refused by name) and the dimension count of the file's kind;
//! - sizes from the header are multiplied with overflow checks; a product this machine cannot
//!   address is an error, and so is an image of zero rows or columns;
//! - a plain file's length is compared with its header before its data is read, so a header
//!   claiming more than the file holds allocates nothing;
//! - a gzipped file is inflated at most to the size its header declares plus one byte: one
//!   byte more means trailing data (an error), and a gzip bomb is never inflated past that.
//!   The buffer starts at 64 KiB and doubles as data really arrives, so memory is bounded by
//!   both the declared size plus one and twice what the stream actually holds;
//! - labels are checked to be below 10, reporting the first one that is not and its index.
//!
//! ```
//! use cnn_runtime::data::Mnist;
//!
//! let mnist = Mnist::load("../data/mnist")?;
//! assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
//! assert_eq!((mnist.test.rows(), mnist.test.cols()), (28, 28));
//! # Ok::<(), cnn_runtime::Error>(())
//! ```

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::Dataset;
use crate::Error;

/// Number of classes: labels are `0..CLASSES`.
const CLASSES: u8 = 10;

/// The first two bytes of every gzip stream (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The IDX type code of unsigned bytes, the third byte of the magic number; the only one
/// these data sets use.
const IDX_UBYTE: u8 = 0x08;

/// First buffer size for the data of a gzipped file, whose inflated size is known only from
/// its (untrusted) header; the buffer then doubles as data arrives.
const MIN_READ_CHUNK: usize = 64 << 10;

impl Dataset {
    /// Reads an image file and a label file in the IDX format, each gzipped or not: grayscale
    /// images (`shape() == [1, rows, cols]`) with labels in `0..10` (`classes() == 10`).
    ///
    /// The images may have any size; [`Mnist::load`] insists on 28x28.
    ///
    /// ```
    /// use cnn_runtime::data::Dataset;
    ///
    /// let test = Dataset::load(
    ///     "../data/mnist/t10k-images-idx3-ubyte.gz",
    ///     "../data/mnist/t10k-labels-idx1-ubyte.gz",
    /// )?;
    /// assert_eq!((test.len(), test.shape(), test.classes()), (10_000, [1, 28, 28], 10));
    /// # Ok::<(), cnn_runtime::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] if a file cannot be opened or read;
    /// - [`Error::Idx`] naming the file if its magic number is wrong, its header is cut short,
    ///   its length is not exactly header plus data (truncated, or with trailing bytes),
    ///   an image dimension is zero or the sizes overflow, a label is 10 or more, or its
    ///   gzip stream is corrupt;
    /// - [`Error::CountMismatch`] if the two files disagree on the number of samples.
    pub fn load(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset, Error> {
        load_split(images.as_ref(), labels.as_ref(), None)
    }
}

/// MNIST, or any data set in the same format and layout (Fashion-MNIST, KMNIST): 28x28
/// grayscale images with labels in `0..10`, split into a training and a test set.
///
/// ```
/// use cnn_runtime::data::Mnist;
///
/// let mnist = Mnist::load("../data/mnist")?;
/// let mut counts = [0; 10];
/// for &label in mnist.test.labels() {
///     counts[label as usize] += 1;
/// }
/// assert_eq!(counts[1], 1135);
/// # Ok::<(), cnn_runtime::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mnist {
    /// The training set (60,000 samples for MNIST).
    pub train: Dataset,
    /// The test set (10,000 samples for MNIST).
    pub test: Dataset,
}

impl Mnist {
    /// MNIST's training-set pixel mean, of pixel / 255 as [`Dataset::gather`] gives it; the
    /// usual normalization is `(x - MEAN) / STD`, as torchvision's examples do.
    ///
    /// ```
    /// use cnn_runtime::data::Mnist;
    /// assert_eq!((0.0 - Mnist::MEAN) / Mnist::STD, -0.1307 / 0.3081);
    /// ```
    pub const MEAN: f32 = 0.1307;
    /// MNIST's training-set pixel standard deviation, of pixel / 255; see [`Mnist::MEAN`].
    pub const STD: f32 = 0.3081;

    /// Side of every image: 28 pixels.
    const SIDE: usize = 28;

    /// Reads the four files of a data set in the MNIST layout from `dir`, under their
    /// standard names: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each with or without `.gz`.
    ///
    /// Where both forms of a file exist, the uncompressed one is read (it is the one someone
    /// made on purpose, and the faster to read). Whatever the name, a file is decompressed
    /// if and only if it starts with the gzip magic bytes.
    ///
    /// ```
    /// use cnn_runtime::data::Mnist;
    ///
    /// let mnist = Mnist::load("../data/mnist")?;
    /// assert_eq!(mnist.train.len(), 60_000);
    /// assert_eq!(mnist.test.len(), 10_000);
    /// # Ok::<(), cnn_runtime::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] if a file cannot be found under either name (naming the `.gz` one),
    ///   opened or read;
    /// - [`Error::Idx`] if a file is malformed (see [`Dataset::load`]) or its images are not
    ///   28x28;
    /// - [`Error::CountMismatch`] if an image file and its label file disagree on the number
    ///   of samples.
    pub fn load(dir: impl AsRef<Path>) -> Result<Mnist, Error> {
        let dir = dir.as_ref();
        let split = |name: &str| {
            let images = locate(dir, &format!("{name}-images-idx3-ubyte"))?;
            let labels = locate(dir, &format!("{name}-labels-idx1-ubyte"))?;
            load_split(&images, &labels, Some((Self::SIDE, Self::SIDE)))
        };
        Ok(Mnist {
            train: split("train")?,
            test: split("t10k")?,
        })
    }
}

/// `dir/name` if it exists, else `dir/name.gz` if that exists, else an error naming the
/// `.gz` path (the form the data sets are distributed in).
fn locate(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    for path in [plain, gz.clone()] {
        match fs::metadata(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path, source }),
        }
    }
    Err(Error::Io {
        path: gz,
        source: io::Error::new(io::ErrorKind::NotFound, "no such file, with or without `.gz`"),
    })
}

/// Reads one split; `side` is the image size every image must have, if any.
fn load_split(images_path: &Path, labels_path: &Path, side: Option<(usize, usize)>) -> Result<Dataset, Error> {
    let images = read_idx(images_path, Kind::Images { side })?;
    let labels = read_idx(labels_path, Kind::Labels)?;
    if images.count != labels.count {
        return Err(Error::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: images.count,
            labels_path: labels_path.to_path_buf(),
            labels: labels.count,
        });
    }
    let labels = labels.data.into_iter().map(u32::from).collect();
    Ok(Dataset::new(
        [1, images.rows, images.cols],
        usize::from(CLASSES),
        images.data,
        labels,
    ))
}

/// Which of the two IDX file kinds is expected.
#[derive(Clone, Copy)]
enum Kind {
    /// Three dimensions; `side`, if given, is the only accepted `(rows, cols)`.
    Images { side: Option<(usize, usize)> },
    /// One dimension; every byte a label below `CLASSES`.
    Labels,
}

impl Kind {
    fn magic(self) -> u32 {
        match self {
            Kind::Images { .. } => 0x0803,
            Kind::Labels => 0x0801,
        }
    }

    fn header_len(self) -> usize {
        match self {
            Kind::Images { .. } => 16,
            Kind::Labels => 8,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Images { .. } => "image",
            Kind::Labels => "label",
        }
    }
}

/// The contents of one IDX file: `count` items of `rows * cols` bytes (1 x 1 for labels).
struct Idx {
    count: usize,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

/// Reads and checks one IDX file, decompressing it if it starts with the gzip magic.
fn read_idx(path: &Path, kind: Kind) -> Result<Idx, Error> {
    let idx_err = |reason: String| Error::Idx {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // The length of a regular file, to check a plain file's size against its header before
    // reading (and allocating for) its data.
    let file_len = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .and_then(|m| usize::try_from(m.len()).ok());

    // Sniff the first two bytes, then put them back in front of the rest.
    let mut prefix = Vec::with_capacity(2);
    (&mut file)
        .take(2)
        .read_to_end(&mut prefix)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let gzipped = prefix == GZIP_MAGIC;
    let raw = io::Cursor::new(prefix).chain(file);
    let mut reader: Box<dyn Read> = if gzipped {
        Box::new(MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    // Sizes below are of what the header describes: the decompressed stream for a gzipped
    // file, the file itself otherwise.
    let content = if gzipped { "the decompressed file" } else { "the file" };
    let read_err = |source: io::Error| {
        // A decoder reports a damaged stream as invalid data or input, or as an early end.
        let corrupt = matches!(
            source.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof
        );
        if gzipped && corrupt {
            idx_err(format!("corrupt gzip stream: {source}"))
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };

    let header_len = kind.header_len();
    let mut header = Vec::with_capacity(header_len);
    (&mut reader)
        .take(header_len as u64)
        .read_to_end(&mut header)
        .map_err(read_err)?;
    if header.len() < 4 {
        return Err(idx_err(format!(
            "header truncated: {content} is {} bytes long, too short for an IDX header",
            header.len()
        )));
    }
    let field = |i: usize| u32::from_be_bytes([header[4 * i], header[4 * i + 1], header[4 * i + 2], header[4 * i + 3]]);

    // The magic number says what the bytes are; reading a label file as images (or an
    // unrelated file as either) must fail here rather than produce noise.
    let magic = field(0);
    if magic != kind.magic() {
        let noun = kind.noun();
        let want = kind.magic();
        // The magic is two zero bytes, a type code and a dimension count: say which is wrong.
        let [zero0, zero1, code, dims] = magic.to_be_bytes();
        let what = match magic {
            0x0803 => " marks an IDX image file".to_owned(),
            0x0801 => " marks an IDX label file".to_owned(),
            _ if (zero0, zero1) != (0, 0) => ", so this is not an IDX file".to_owned(),
            _ if code != IDX_UBYTE => format!(
                ": type code 0x{code:02x} ({}) is not supported, only 0x{IDX_UBYTE:02x} \
                 (unsigned byte)",
                type_name(code)
            ),
            _ => format!(": {dims} dimensions"),
        };
        return Err(idx_err(format!(
            "magic number {magic} (0x{magic:08x}){what}; an IDX {noun} file starts with \
             {want} (0x{want:08x})"
        )));
    }
    if header.len() < header_len {
        return Err(idx_err(format!(
            "header truncated: {content} is {} bytes long, but an IDX {} header needs {header_len}",
            header.len(),
            kind.noun()
        )));
    }

    let count = field(1) as usize;
    let (rows, cols) = match kind {
        Kind::Images { side } => {
            let (rows, cols) = (field(2) as usize, field(3) as usize);
            if rows == 0 || cols == 0 {
                return Err(idx_err(format!("images of {rows}x{cols} pixels hold no pixel")));
            }
            if let Some((r, c)) = side {
                if (rows, cols) != (r, c) {
                    return Err(idx_err(format!(
                        "images are {rows}x{cols}, but this data set needs {r}x{c}"
                    )));
                }
            }
            (rows, cols)
        }
        Kind::Labels => (1, 1),
    };
    // The sizes come from the file, so they may overflow; `expected` is the whole length.
    let sizes = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .and_then(|data_len| Some((data_len, data_len.checked_add(header_len)?)));
    let noun = kind.noun();
    let Some((data_len, expected)) = sizes else {
        return Err(idx_err(format!(
            "{count} {noun}s of {rows}x{cols} bytes are more bytes than this machine can address"
        )));
    };

    // A plain file's length is known: check it against the header before reading anything,
    // so that a header claiming more than the file holds allocates nothing for it.
    let plain_len = file_len.filter(|_| !gzipped);
    if let Some(found) = plain_len.filter(|&len| len != expected) {
        return Err(idx_err(if found < expected {
            format!(
                "truncated: the header describes {count} {noun}s, {expected} bytes with the \
                 header, but {content} is {found} bytes long"
            )
        } else {
            format!(
                "trailing bytes: the header describes {count} {noun}s, {expected} bytes with \
                 the header, but {content} is {found} bytes long"
            )
        }));
    }

    // Read one byte more than the header promises, never more: a file with trailing bytes is
    // caught, and a gzip bomb is not inflated past that point. The buffer grows with what the
    // stream really delivers, so a lying header cannot make us allocate what is not there.
    let hint = if plain_len.is_some() {
        data_len.saturating_add(1)
    } else {
        MIN_READ_CHUNK
    };
    let data = read_capped(&mut reader, data_len.saturating_add(1), hint).map_err(read_err)?;
    if data.len() < data_len {
        let found = header_len + data.len();
        return Err(idx_err(format!(
            "truncated: the header describes {count} {noun}s, {expected} bytes with the \
             header, but {content} is {found} bytes long"
        )));
    }
    if data.len() > data_len {
        return Err(idx_err(format!(
            "trailing bytes: the header describes {count} {noun}s, {expected} bytes with the \
             header, but {content} is longer"
        )));
    }

    if let Kind::Labels = kind {
        if let Some(i) = data.iter().position(|&label| label >= CLASSES) {
            return Err(idx_err(format!(
                "label {} at index {i} is out of range; labels must be in 0..{CLASSES}",
                data[i]
            )));
        }
    }
    Ok(Idx {
        count,
        rows,
        cols,
        data,
    })
}

/// The IDX name of a type code, for error messages.
fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0b => "16-bit integer",
        0x0c => "32-bit integer",
        0x0d => "32-bit float",
        0x0e => "64-bit float",
        _ => "not an IDX type",
    }
}

/// Reads from `reader` until it ends or `limit` bytes have been read, whichever comes first.
///
/// The buffer starts at `hint` bytes and at most doubles each time it fills, never past
/// `limit`: it is never larger than `limit`, nor than twice what the reader delivered (or
/// `hint`). Each read is bounded by the room left, so `read_to_end` never grows the buffer on
/// its own.
fn read_capped(reader: &mut dyn Read, limit: usize, hint: usize) -> io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(hint.min(limit));
    loop {
        let room = data.capacity() - data.len();
        let before = data.len();
        reader.take(room as u64).read_to_end(&mut data)?;
        if data.len() - before < room || data.len() >= limit {
            return Ok(data);
        }
        let grown = data.capacity().saturating_mul(2).max(MIN_READ_CHUNK).min(limit);
        data.reserve_exact(grown - data.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    const MNIST_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/mnist");

    /// Per-class counts of the real MNIST labels (data/mnist/README.md).
    const TRAIN_COUNTS: [usize; 10] = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    const TEST_COUNTS: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

    fn class_counts(labels: &[u32]) -> [usize; 10] {
        let mut counts = [0; 10];
        for &label in labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// How a test file is stored.
    #[derive(Clone, Copy)]
    enum Store {
        Plain,
        Gzip,
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// An IDX file: magic, big-endian dimensions, then `data`.
    fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(data);
        bytes
    }

    fn write(path: &Path, bytes: &[u8], store: Store) {
        match store {
            Store::Plain => fs::write(path, bytes).unwrap(),
            Store::Gzip => fs::write(path, gzip(bytes)).unwrap(),
        }
    }

    /// `n` images of `rows x cols` whose pixels count up, and labels `i % 10`.
    fn synthetic(n: u32, rows: u32, cols: u32) -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..n * rows * cols).map(|i| (i % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        (
            idx_bytes(2051, &[n, rows, cols], &pixels),
            idx_bytes(2049, &[n], &labels),
        )
    }

    /// Writes an image and a label file into `dir` and loads them.
    fn load_pair(dir: &Path, images: &[u8], labels: &[u8], store: Store) -> Result<Dataset, Error> {
        let (ip, lp) = (dir.join("images"), dir.join("labels"));
        write(&ip, images, store);
        write(&lp, labels, store);
        Dataset::load(ip, lp)
    }

    /// The `Idx` error's message, or a panic saying what came instead.
    fn idx_reason(result: Result<Dataset, Error>) -> String {
        match result {
            Err(Error::Idx { reason, .. }) => reason,
            other => panic!("expected an Idx error, got {other:?}"),
        }
    }

    #[test]
    fn loads_real_mnist() {
        let mnist = Mnist::load(MNIST_DIR).unwrap();
        assert_eq!(mnist.train.len(), 60_000);
        assert_eq!(mnist.test.len(), 10_000);
        for split in [&mnist.train, &mnist.test] {
            assert_eq!((split.rows(), split.cols()), (28, 28));
            assert_eq!(split.image(split.len() - 1).len(), 784);
        }
        assert_eq!(class_counts(mnist.train.labels()), TRAIN_COUNTS);
        assert_eq!(class_counts(mnist.test.labels()), TEST_COUNTS);
        // The first training digit is the well-known 5, the first test digit a 7.
        assert_eq!(mnist.train.label(0), 5);
        assert_eq!(mnist.test.label(0), 7);
    }

    #[test]
    fn uncompressed_copy_loads_identically() {
        let gz = Dataset::load(
            Path::new(MNIST_DIR).join("t10k-images-idx3-ubyte.gz"),
            Path::new(MNIST_DIR).join("t10k-labels-idx1-ubyte.gz"),
        )
        .unwrap();

        let dir = tempfile::tempdir().unwrap();
        for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            let compressed = fs::read(Path::new(MNIST_DIR).join(format!("{name}.gz"))).unwrap();
            let mut plain = Vec::new();
            MultiGzDecoder::new(&compressed[..]).read_to_end(&mut plain).unwrap();
            fs::write(dir.path().join(name), plain).unwrap();
        }
        let plain = Dataset::load(
            dir.path().join("t10k-images-idx3-ubyte"),
            dir.path().join("t10k-labels-idx1-ubyte"),
        )
        .unwrap();
        assert_eq!(plain, gz);
    }

    #[test]
    fn gzip_is_detected_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(3, 2, 5);
        let plain = load_pair(dir.path(), &images, &labels, Store::Plain).unwrap();
        // Same names, no `.gz`, but gzipped content.
        let gzipped = load_pair(dir.path(), &images, &labels, Store::Gzip).unwrap();
        assert_eq!(plain, gzipped);
        assert_eq!((plain.len(), plain.rows(), plain.cols()), (3, 2, 5));
        assert_eq!(plain.image(1), (10..20).collect::<Vec<u8>>());
        assert_eq!(plain.labels(), [0, 1, 2]);
    }

    #[test]
    fn mnist_prefers_plain_file_and_falls_back_to_gz() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(4, 28, 28);
        let (test_images, test_labels) = synthetic(2, 28, 28);
        write(&dir.path().join("train-images-idx3-ubyte.gz"), &images, Store::Gzip);
        write(&dir.path().join("train-labels-idx1-ubyte"), &labels, Store::Plain);
        write(&dir.path().join("t10k-images-idx3-ubyte"), &test_images, Store::Plain);
        write(&dir.path().join("t10k-labels-idx1-ubyte.gz"), &test_labels, Store::Gzip);
        // A broken `.gz` beside a good plain file is never opened.
        fs::write(dir.path().join("t10k-images-idx3-ubyte.gz"), b"broken").unwrap();

        let mnist = Mnist::load(dir.path()).unwrap();
        assert_eq!((mnist.train.len(), mnist.test.len()), (4, 2));
    }

    #[test]
    fn mnist_rejects_images_that_are_not_28x28() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(2, 32, 32);
        for name in ["train", "t10k"] {
            write(
                &dir.path().join(format!("{name}-images-idx3-ubyte")),
                &images,
                Store::Plain,
            );
            write(
                &dir.path().join(format!("{name}-labels-idx1-ubyte")),
                &labels,
                Store::Plain,
            );
        }
        let err = Mnist::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Idx { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("train-images-idx3-ubyte") && msg.contains("32x32") && msg.contains("28x28"),
            "{msg}"
        );
    }

    #[test]
    fn gather_scales_pixels_and_copies_labels() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(30, 3, 3);
        let data = load_pair(dir.path(), &images, &labels, Store::Plain).unwrap();

        let indices = [29, 0, 29];
        let mut x = vec![-1.0; 3 * 9];
        let mut y = vec![99; 3];
        data.gather(&indices, &mut x, &mut y);
        assert_eq!(y, [9, 0, 9]);
        for (k, &i) in indices.iter().enumerate() {
            for (j, &p) in data.image(i).iter().enumerate() {
                assert_eq!(x[k * 9 + j], f32::from(p) / 255.0);
            }
        }
        // 29 * 9 = 261 wraps to pixel values 5..14; pixel 255 (image 28) maps to exactly 1.
        assert_eq!(x[0], 5.0 / 255.0);
        let mut one = vec![0.0; 9];
        data.gather(&[28], &mut one, &mut [0]);
        assert!(one.contains(&1.0) && one.contains(&0.0));

        // An empty batch is fine.
        data.gather(&[], &mut [], &mut []);
    }

    #[test]
    #[should_panic(expected = "must hold 2 samples of 3x3 pixels (18 f32s), but holds 17")]
    fn gather_panics_on_wrong_image_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(5, 3, 3);
        let data = load_pair(dir.path(), &images, &labels, Store::Plain).unwrap();
        data.gather(&[0, 1], &mut [0.0; 17], &mut [0; 2]);
    }

    #[test]
    #[should_panic(expected = "must hold one label per index (2), but holds 3")]
    fn gather_panics_on_wrong_label_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(5, 3, 3);
        let data = load_pair(dir.path(), &images, &labels, Store::Plain).unwrap();
        data.gather(&[0, 1], &mut [0.0; 18], &mut [0; 3]);
    }

    #[test]
    #[should_panic(expected = "sample index 5 is out of range for a data set of 5 samples")]
    fn gather_panics_on_index_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(5, 3, 3);
        let data = load_pair(dir.path(), &images, &labels, Store::Plain).unwrap();
        data.gather(&[0, 5], &mut [0.0; 18], &mut [0; 2]);
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(2, 2, 2);
        for store in [Store::Plain, Store::Gzip] {
            // Label file given as the image file.
            let reason = idx_reason(load_pair(dir.path(), &labels, &labels, store));
            assert!(
                reason.contains("magic number 2049") && reason.contains("2051"),
                "{reason}"
            );
            assert!(reason.contains("label file"), "{reason}");
            // Arbitrary text given as the label file.
            let reason = idx_reason(load_pair(dir.path(), &images, b"hello, world", store));
            assert!(reason.contains("magic number") && reason.contains("2049"), "{reason}");
        }
    }

    #[test]
    fn truncated_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(3, 2, 2);
        for store in [Store::Plain, Store::Gzip] {
            // One pixel short: 16 + 12 = 28 bytes expected.
            let reason = idx_reason(load_pair(dir.path(), &images[..27], &labels, store));
            assert!(reason.contains("truncated") && reason.contains("28 bytes"), "{reason}");
            assert!(reason.contains("27 bytes long"), "{reason}");
            // Cut inside the header.
            let reason = idx_reason(load_pair(dir.path(), &images[..10], &labels, store));
            assert!(
                reason.contains("header truncated") && reason.contains("10 bytes"),
                "{reason}"
            );
            // Cut inside the magic number.
            let reason = idx_reason(load_pair(dir.path(), &images, &labels[..2], store));
            assert!(reason.contains("2 bytes long"), "{reason}");
            // Empty.
            let reason = idx_reason(load_pair(dir.path(), &images, &[], store));
            assert!(reason.contains("0 bytes long"), "{reason}");
        }
    }

    #[test]
    fn trailing_byte_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (images, mut labels) = synthetic(3, 2, 2);
        labels.push(0);
        for store in [Store::Plain, Store::Gzip] {
            let reason = idx_reason(load_pair(dir.path(), &images, &labels, store));
            assert!(
                reason.contains("trailing bytes") && reason.contains("11 bytes"),
                "{reason}"
            );
        }
    }

    #[test]
    fn counts_that_disagree_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (images, _) = synthetic(3, 2, 2);
        let (_, labels) = synthetic(4, 2, 2);
        let err = load_pair(dir.path(), &images, &labels, Store::Plain).unwrap_err();
        match &err {
            Error::CountMismatch { images, labels, .. } => assert_eq!((*images, *labels), (3, 4)),
            other => panic!("expected CountMismatch, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("3 images") && msg.contains("4 labels"), "{msg}");
    }

    #[test]
    fn label_out_of_range_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (images, _) = synthetic(3, 2, 2);
        let labels = idx_bytes(2049, &[3], &[0, 9, 10]);
        let err = load_pair(dir.path(), &images, &labels, Store::Gzip).unwrap_err();
        assert!(err.to_string().contains("labels"), "the message names the file: {err}");
        let reason = idx_reason(Err(err));
        assert!(reason.contains("label 10 at index 2"), "{reason}");
    }

    #[test]
    fn corrupt_gzip_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(50, 4, 4);
        let good = gzip(&labels);

        // Damaged deflate data.
        let mut damaged = good.clone();
        for byte in &mut damaged[12..20] {
            *byte ^= 0xa5;
        }
        // A stream cut short.
        let cut = good[..good.len() / 2].to_vec();
        // A wrong checksum in the trailer.
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;

        for bytes in [damaged, cut, bad_crc] {
            let (ip, lp) = (dir.path().join("images"), dir.path().join("labels"));
            fs::write(&ip, &images).unwrap();
            fs::write(&lp, bytes).unwrap();
            let err = Dataset::load(&ip, &lp).unwrap_err();
            let reason = idx_reason(Err(err));
            assert!(reason.contains("gzip"), "{reason}");
        }
    }

    #[test]
    fn gzip_bomb_is_not_inflated() {
        // A header that promises one label, then 64 MiB of zeros: the reader stops one byte
        // past the promise, long before inflating it all.
        let mut labels = idx_bytes(2049, &[1], &[0]);
        labels.resize(64 << 20, 0);
        let (images, _) = synthetic(1, 2, 2);
        let dir = tempfile::tempdir().unwrap();
        let reason = idx_reason(load_pair(dir.path(), &images, &labels, Store::Gzip));
        assert!(reason.contains("trailing bytes"), "{reason}");
    }

    #[test]
    fn dimensions_that_overflow_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (_, labels) = synthetic(1, 1, 1);
        let images = idx_bytes(2051, &[u32::MAX, u32::MAX, u32::MAX], &[]);
        let reason = idx_reason(load_pair(dir.path(), &images, &labels, Store::Plain));
        assert!(reason.contains("4294967295 images"), "{reason}");
        // A header that lies about a large but addressable size is merely truncated, and
        // allocates nothing like it.
        let images = idx_bytes(2051, &[u32::MAX, u32::MAX, 1], &[1, 2, 3]);
        let reason = idx_reason(load_pair(dir.path(), &images, &labels, Store::Plain));
        assert!(reason.contains("truncated"), "{reason}");
        let images = idx_bytes(2051, &[1, 0, 28], &[]);
        let reason = idx_reason(load_pair(dir.path(), &images, &labels, Store::Plain));
        assert!(reason.contains("0x28"), "{reason}");
    }

    #[test]
    fn empty_data_set_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(0, 28, 28);
        let data = load_pair(dir.path(), &images, &labels, Store::Gzip).unwrap();
        assert!(data.is_empty());
        assert_eq!(
            format!("{data:?}"),
            "Dataset { len: 0, shape: [1, 28, 28], classes: 10, .. }"
        );
    }

    #[test]
    fn missing_directory_is_io_error_naming_path() {
        let err = Mnist::load("no/such/dir").unwrap_err();
        match &err {
            Error::Io { path, source } => {
                assert_eq!(path, Path::new("no/such/dir/train-images-idx3-ubyte.gz"));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected Io, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("no/such/dir/train-images-idx3-ubyte.gz"), "{msg}");
        assert!(msg.contains("with or without `.gz`"), "{msg}");
    }

    #[test]
    fn wrong_type_code_or_dimension_count_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = synthetic(2, 2, 2);
        let mut floats = labels.clone();
        floats[2] = 0x0d;
        let reason = idx_reason(load_pair(dir.path(), &images, &floats, Store::Gzip));
        assert!(
            reason.contains("type code 0x0d (32-bit float) is not supported, only 0x08"),
            "{reason}"
        );
        let mut two_dims = labels.clone();
        two_dims[3] = 2;
        let reason = idx_reason(load_pair(dir.path(), &images, &two_dims, Store::Plain));
        assert!(reason.contains(": 2 dimensions; an IDX label file"), "{reason}");
        let mut nonzero = images.clone();
        nonzero[0] = 1;
        let reason = idx_reason(load_pair(dir.path(), &nonzero, &labels, Store::Plain));
        assert!(reason.contains("not an IDX file"), "{reason}");
    }

    #[test]
    fn plain_file_length_is_checked_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let (_, labels) = synthetic(1, 1, 1);
        // A header promising 2^32 - 1 images of 2^32 - 1 pixels, and 3 bytes of data.
        let images = idx_bytes(2051, &[u32::MAX, u32::MAX, 1], &[1, 2, 3]);
        let reason = idx_reason(load_pair(dir.path(), &images, &labels, Store::Plain));
        assert!(
            reason.contains("truncated") && reason.contains("the file is 19 bytes long"),
            "{reason}"
        );
    }

    #[test]
    fn read_capped_stops_at_the_limit_and_grows_with_the_data() {
        let bytes = vec![7u8; 300_000];
        for (limit, hint) in [(0, 0), (1, 0), (10, 1 << 20), (300_001, 0), (200_000, 5)] {
            let data = read_capped(&mut &bytes[..], limit, hint).unwrap();
            assert_eq!(data.len(), limit.min(bytes.len()), "limit {limit}");
            assert!(data.capacity() <= limit, "limit {limit}: {}", data.capacity());
        }
        // A short stream under a large limit: the buffer is not sized by the limit.
        let data = read_capped(&mut &bytes[..100_000], usize::MAX, 0).unwrap();
        assert_eq!(data.len(), 100_000);
        assert!(data.capacity() <= 2 * 100_000, "{}", data.capacity());
    }

    #[test]
    fn missing_file_is_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Dataset::load(dir.path().join("nope"), dir.path().join("nope2")).unwrap_err();
        assert!(
            matches!(&err, Error::Io { path, .. } if path.ends_with("nope")),
            "{err:?}"
        );
    }
}
