use std::path::PathBuf;

/// Everything that can go wrong when reading outside data: weight files and data sets.
///
/// Every variant names the file, and where it applies the tensor, with what was expected
/// and what was found.
///
/// ```
/// let err = cnn_runtime::data::Mnist::load("no/such/dir").unwrap_err();
/// assert!(err.to_string().contains("no/such/dir"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (damaged header, offsets out of range, ...).
    #[error("{}: not a valid safetensors file: {reason}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A parameter of the network has no tensor in the file.
    #[error("{}: missing tensor `{tensor}` (expected shape {expected:?})", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The parameter's name, e.g. `conv1.weight`.
        tensor: String,
        /// The shape the network declares for it.
        expected: Vec<usize>,
    },
    /// The file holds a tensor that the network has no parameter for.
    #[error("{}: unexpected tensor `{tensor}`: the network has no such parameter", path.display())]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name in the file.
        tensor: String,
    },
    /// A tensor's shape differs from the parameter's declared shape.
    #[error("{}: tensor `{tensor}` has shape {got:?}, but the network declares {expected:?}", path.display())]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The declared shape.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A tensor's dtype is not `F32`.
    #[error("{}: tensor `{tensor}` has dtype {got}, expected {expected}", path.display())]
    DtypeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The dtype the network needs (`F32`).
        expected: String,
        /// The dtype in the file.
        got: String,
    },
    /// An IDX data file is malformed: wrong magic number, truncated, bad dimensions,
    /// a label out of range, ...
    #[error("{}: {reason}", path.display())]
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A data file or folder other than IDX is unusable: a CIFAR-10 batch of the wrong length
    /// or with a label of 10 or more, an image that does not decode or has another size, a
    /// class folder present in one split only, a folder in none of the known formats, ...
    /// `path` is the file, or the class folder.
    #[error("{}: {reason}", path.display())]
    Data {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An image file and its label file disagree on the number of samples.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images in it.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels in it.
        labels: usize,
    },
}
