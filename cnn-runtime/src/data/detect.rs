//! Which of the three formats a folder holds, told from its contents, and loading it for a
//! network of a given input shape.

use std::path::Path;

use super::{data_error, Cifar10, Dataset, ImageFolder, Mnist};
use crate::Error;

/// A data set format [`load_any`] recognizes.
///
/// ```
/// use cnn_runtime::data::Format;
/// assert_eq!(Format::detect("../data/mnist")?, Format::Mnist);
/// # Ok::<(), cnn_runtime::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// IDX files under MNIST's names ([`Mnist`]): `train-images-idx3-ubyte[.gz]`, ...
    Mnist,
    /// CIFAR-10's binary batches ([`Cifar10`]): `data_batch_1.bin`, ..., `test_batch.bin`.
    Cifar10,
    /// `train/<class>/*` and `test/<class>/*` ([`ImageFolder`]).
    ImageFolder,
}

/// What the folder must hold, for the error when it holds none of the formats.
const EXPECTED: &str = "expected one of: MNIST's IDX files (train-images-idx3-ubyte, \
     train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each with or \
     without .gz); CIFAR-10's binary version (data_batch_1.bin .. data_batch_5.bin and \
     test_batch.bin, or the folder cifar-10-batches-bin holding them); or an image folder \
     (train/<class>/*.png|jpg and test/<class>/*.png|jpg)";

impl Format {
    /// The format of the data set in `dir`, from the names it holds: MNIST's training image
    /// file (with or without `.gz`), CIFAR-10's first batch (in `dir` or in
    /// `dir/cifar-10-batches-bin`), or the folders `train/` and `test/`, checked in that order.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] naming `dir` and listing what each format needs, if it holds none of them.
    pub fn detect(dir: impl AsRef<Path>) -> Result<Format, Error> {
        let dir = dir.as_ref();
        let has = |p: &str| dir.join(p).exists();
        if has("train-images-idx3-ubyte") || has("train-images-idx3-ubyte.gz") {
            Ok(Format::Mnist)
        } else if has(Cifar10::TRAIN_FILES[0]) || has("cifar-10-batches-bin/data_batch_1.bin") {
            Ok(Format::Cifar10)
        } else if dir.join("train").is_dir() && dir.join("test").is_dir() {
            Ok(Format::ImageFolder)
        } else if !dir.is_dir() {
            Err(data_error(dir, format!("no such folder; {EXPECTED}")))
        } else {
            Err(data_error(
                dir,
                format!("holds no data set in a known format; {EXPECTED}"),
            ))
        }
    }

    /// The format's name, for messages: `MNIST (IDX)`, `CIFAR-10 (binary)`, `image folder`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Mnist => "MNIST (IDX)",
            Format::Cifar10 => "CIFAR-10 (binary)",
            Format::ImageFolder => "image folder",
        }
    }
}

/// The two splits of a data set of any format, with its class names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Splits {
    /// The training split.
    pub train: Dataset,
    /// The test split.
    pub test: Dataset,
    /// Label `i` is `class_names[i]`: `"0"`..`"9"` for MNIST, [`Cifar10::CLASS_NAMES`], or the
    /// image folder's class folders.
    pub class_names: Vec<String>,
    /// The format detected.
    pub format: Format,
}

/// Loads the data set in `dir`, whichever of the three formats it is in ([`Format::detect`]),
/// for a network whose input is `shape = [C, H, W]`: an image folder is read at that shape,
/// MNIST and CIFAR-10 must already have it (`[1, 28, 28]`, `[3, 32, 32]`).
///
/// ```
/// let data = cnn_runtime::data::load_any("../data/mnist", [1, 28, 28])?;
/// assert_eq!((data.train.len(), data.class_names.len()), (60_000, 10));
/// let err = cnn_runtime::data::load_any("../data/mnist", [3, 32, 32]).unwrap_err();
/// assert!(err.to_string().contains("[1, 28, 28]"));
/// # Ok::<(), cnn_runtime::Error>(())
/// ```
///
/// # Errors
///
/// Those of [`Format::detect`] and of the format's loader; [`Error::Data`] naming `dir` if its
/// images do not have the shape the network takes.
pub fn load_any(dir: impl AsRef<Path>, shape: [usize; 3]) -> Result<Splits, Error> {
    let dir = dir.as_ref();
    let format = Format::detect(dir)?;
    let fixed = match format {
        Format::Mnist => Some([1, 28, 28]),
        Format::Cifar10 => Some([3, 32, 32]),
        Format::ImageFolder => None,
    };
    if let Some(fixed) = fixed.filter(|&f| f != shape) {
        return Err(data_error(
            dir,
            format!(
                "holds {} images of shape {fixed:?}, but the network takes {shape:?}",
                format.name()
            ),
        ));
    }
    Ok(match format {
        Format::Mnist => {
            let Mnist { train, test } = Mnist::load(dir)?;
            let class_names = (0..10).map(|d| d.to_string()).collect();
            Splits {
                train,
                test,
                class_names,
                format,
            }
        }
        Format::Cifar10 => {
            let Cifar10 { train, test } = Cifar10::load(dir)?;
            let class_names = Cifar10::CLASS_NAMES.iter().map(|s| s.to_string()).collect();
            Splits {
                train,
                test,
                class_names,
                format,
            }
        }
        Format::ImageFolder => {
            let ImageFolder {
                train,
                test,
                class_names,
            } = ImageFolder::load(dir, shape)?;
            Splits {
                train,
                test,
                class_names,
                format,
            }
        }
    })
}
