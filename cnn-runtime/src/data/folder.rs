//! Folders of PNG and JPEG images, one subfolder per class, as torchvision's `ImageFolder`
//! reads them.
//!
//! `DIR/train/<class>/...` and `DIR/test/<class>/...`: every subfolder of a split is a class
//! (in sorted order: label `i` is the `i`-th name); every file under a class folder, at any
//! depth, whose name ends in an image extension (case-insensitive: `.jpg .jpeg .png .ppm .bmp
//! .pgm .tif .tiff .webp`, torchvision's list) is a sample, the folders visited in sorted order
//! of their paths and the files of each folder in sorted order of their names; other files are
//! skipped. Of those formats PNG and JPEG decode (detected from the content, as PIL does);
//! another one is an error naming the file, not a silent gap in the data set.
//!
//! For `C = 3` images become RGB (gray replicated, alpha dropped), for `C = 1` grayscale: a
//! gray image as it is, a color one by PIL's `convert("L")`,
//! `(19595 R + 38470 G + 7471 B + 32768) >> 16`, so pixels equal torchvision's.
//!
//! Untrusted files: a file is read only if it is at most [`ImageFolder::MAX_FILE_BYTES`] long, its header's
//! size is compared with the requested one before any pixel is decoded, and the decoder runs
//! under `image::Limits` (the requested width and height, and an allocation budget a few
//! times the image), so a decompression bomb is refused rather than inflated.

use std::fs;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::{data_error, Dataset};
use crate::Error;

/// torchvision's `IMG_EXTENSIONS`: the files a class folder's samples are taken from.
const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"];

/// How deep class folders are searched, a guard against symbolic-link cycles.
const MAX_DEPTH: usize = 32;

/// A data set of image files, one folder per class, split into `train/` and `test/`.
///
/// ```
/// use cnn_runtime::data::ImageFolder;
/// # let dir = tempfile::tempdir()?;
/// # for (split, class, v) in [("train", "cat", 10u8), ("train", "dog", 200), ("test", "cat", 30), ("test", "dog", 220)] {
/// #     std::fs::create_dir_all(dir.path().join(split).join(class))?;
/// #     image::GrayImage::from_pixel(4, 3, image::Luma([v]))
/// #         .save(dir.path().join(split).join(class).join("0.png")).unwrap();
/// # }
/// // DIR/train/cat/0.png, DIR/train/dog/0.png, DIR/test/cat/0.png, DIR/test/dog/0.png: 3x4 gray
/// let pets = ImageFolder::load(dir.path(), [1, 3, 4])?;
/// assert_eq!(pets.class_names, ["cat", "dog"]);
/// assert_eq!((pets.train.len(), pets.train.shape(), pets.train.classes()), (2, [1, 3, 4], 2));
/// assert_eq!((pets.train.label(1), pets.train.image(1)[0]), (1, 200));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFolder {
    /// The images of `DIR/train`.
    pub train: Dataset,
    /// The images of `DIR/test`.
    pub test: Dataset,
    /// The class folders' names, sorted; label `i` is `class_names[i]`.
    pub class_names: Vec<String>,
}

impl ImageFolder {
    /// The longest image file read (64 MiB): far beyond any image worth training on at a fixed
    /// small size, and a bound on the memory one damaged file can take.
    pub const MAX_FILE_BYTES: u64 = 64 << 20;

    /// Reads `dir/train/<class>/*` and `dir/test/<class>/*` as images of `shape = [C, H, W]`,
    /// `C` 1 (grayscale) or 3 (RGB). Images are not resized: each must be `W` pixels wide and
    /// `H` high.
    ///
    /// ```no_run
    /// let pets = cnn_runtime::data::ImageFolder::load("pets", [3, 64, 64])?;
    /// println!("{} classes: {:?}", pets.class_names.len(), pets.class_names);
    /// # Ok::<(), cnn_runtime::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] if a folder or file cannot be read (naming it);
    /// - [`Error::Data`] naming the file if it does not decode, is not PNG or JPEG, is larger
    ///   than [`ImageFolder::MAX_FILE_BYTES`] or holds an image of another size; naming the class folder if
    ///   a class is present in one split only or holds no image; naming `dir` if `shape` has a
    ///   `C` other than 1 or 3 or a zero size, or a split has no class folder.
    pub fn load(dir: impl AsRef<Path>, shape: [usize; 3]) -> Result<ImageFolder, Error> {
        let dir = dir.as_ref();
        let [c, h, w] = shape;
        if !(c == 1 || c == 3) || h == 0 || w == 0 {
            return Err(data_error(
                dir,
                format!(
                    "images of shape {shape:?} cannot be read: C must be 1 (grayscale) or 3 (RGB), H and W at least 1"
                ),
            ));
        }
        let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
        let class_names = classes(&train_dir)?;
        let test_names = classes(&test_dir)?;
        // A class in one split only would shift every later label of the other split.
        for (names, other, other_dir) in [
            (&class_names, &test_names, &test_dir),
            (&test_names, &class_names, &train_dir),
        ] {
            if let Some(name) = names.iter().find(|n| !other.contains(n)) {
                return Err(data_error(
                    other_dir.join(name),
                    format!(
                        "class `{name}` has a folder in one split only: every class needs a folder in both train/ and test/"
                    ),
                ));
            }
        }
        Ok(ImageFolder {
            train: read_split(&train_dir, &class_names, shape)?,
            test: read_split(&test_dir, &class_names, shape)?,
            class_names,
        })
    }
}

/// The sorted names of the subfolders of `split`: the classes.
fn classes(split: &Path) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    for entry in fs::read_dir(split).map_err(io_error(split))? {
        let entry = entry.map_err(io_error(split))?;
        let path = entry.path();
        // Followed through symbolic links, as `os.scandir(...).is_dir()`.
        if !path.is_dir() {
            continue;
        }
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| data_error(&path, "a class folder's name must be valid UTF-8"))?;
        names.push(name);
    }
    if names.is_empty() {
        return Err(data_error(
            split,
            "no class folder: an image folder holds train/<class>/* and test/<class>/*",
        ));
    }
    names.sort();
    Ok(names)
}

/// Every image of every class of one split, class after class.
fn read_split(split: &Path, class_names: &[String], shape: [usize; 3]) -> Result<Dataset, Error> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (label, name) in class_names.iter().enumerate() {
        let class_dir = split.join(name);
        let mut files = Vec::new();
        collect_files(&class_dir, 0, &mut files)?;
        if files.is_empty() {
            return Err(data_error(
                &class_dir,
                format!("class `{name}` holds no image file (.png, .jpg, .jpeg)"),
            ));
        }
        // torchvision: `sorted(os.walk(dir))`, then each folder's files sorted by name.
        files.sort();
        for (_, _, path) in files {
            decode(&path, shape, &mut images)?;
            labels.push(label as u32);
        }
    }
    Ok(Dataset::new(shape, class_names.len(), images, labels))
}

/// Adds the image files under `dir` as (folder path, file name, path), for sorting as
/// torchvision walks them.
fn collect_files(dir: &Path, depth: usize, files: &mut Vec<(String, String, PathBuf)>) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(data_error(
            dir,
            format!("folders nested more than {MAX_DEPTH} deep (a symbolic-link cycle?)"),
        ));
    }
    let folder = dir.to_string_lossy().into_owned();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, depth + 1, files)?;
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_image = name
            .rsplit_once('.')
            .is_some_and(|(_, ext)| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()));
        if is_image && path.is_file() {
            files.push((folder.clone(), name, path));
        }
    }
    Ok(())
}

/// Decodes one image file of `shape` and appends its pixels, in channel planes.
fn decode(path: &Path, shape: [usize; 3], pixels: &mut Vec<u8>) -> Result<(), Error> {
    let [c, h, w] = shape;
    let bad = |reason: String| data_error(path, reason);
    let file = fs::File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    if len > ImageFolder::MAX_FILE_BYTES {
        return Err(bad(format!(
            "the file is {len} bytes long, more than the {} an image may take",
            ImageFolder::MAX_FILE_BYTES
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(ImageFolder::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    if bytes.len() as u64 > ImageFolder::MAX_FILE_BYTES {
        return Err(bad(format!(
            "the file is more than the {} bytes an image may take",
            ImageFolder::MAX_FILE_BYTES
        )));
    }

    let format = limited_reader(path, &bytes, w, h, true)?.format();
    match format {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        Some(other) => {
            return Err(bad(format!(
                "a {other:?} image; only PNG and JPEG are decoded, convert it to one of them"
            )))
        }
        None => return Err(bad("not a PNG or JPEG image (unrecognized content)".to_owned())),
    }
    // The header's size first, to say what is wrong before any decoding.
    // (Width and height unlimited here, so that a wrong size is reported as such: reading the
    // header allocates nothing by it.)
    let size = limited_reader(path, &bytes, w, h, false)?
        .into_dimensions()
        .map_err(|e| bad(format!("does not decode: {e}")))?;
    if size != (w as u32, h as u32) {
        return Err(bad(format!(
            "the image is {}x{} (width x height), but this data set's images are {w}x{h}",
            size.0, size.1
        )));
    }
    let image = limited_reader(path, &bytes, w, h, true)?
        .decode()
        .map_err(|e| bad(format!("does not decode: {e}")))?;
    pixels.reserve(c * h * w);
    if c == 3 {
        // Interleaved RGB to three planes.
        let rgb = image.to_rgb8();
        for channel in 0..3 {
            pixels.extend(rgb.pixels().map(|p| p.0[channel]));
        }
    } else if is_gray(&image) {
        pixels.extend_from_slice(image.to_luma8().as_raw());
    } else {
        // PIL's `convert("L")`: ITU-R 601-2 luma in 16-bit fixed point.
        let rgb = image.to_rgb8();
        pixels.extend(rgb.pixels().map(|p| {
            let [r, g, b] = p.0.map(u32::from);
            ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16) as u8
        }));
    }
    Ok(())
}

/// A reader of the in-memory file `bytes`, its format sniffed from the content, under limits:
/// at most `w x h` pixels (if `limit_size`), and an allocation budget of 32 bytes a pixel (the decoded image at
/// up to 16 bytes a pixel, and as much again for the decoder) plus 1 MiB.
fn limited_reader<'a>(
    path: &Path,
    bytes: &'a [u8],
    w: usize,
    h: usize,
    limit_size: bool,
) -> Result<ImageReader<Cursor<&'a [u8]>>, Error> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| data_error(path, format!("cannot be read: {e}")))?;
    let mut limits = Limits::default();
    if limit_size {
        limits.max_image_width = Some(u32::try_from(w).unwrap_or(u32::MAX));
        limits.max_image_height = Some(u32::try_from(h).unwrap_or(u32::MAX));
    }
    limits.max_alloc = Some(((w * h) as u64).saturating_mul(32).saturating_add(1 << 20));
    reader.limits(limits);
    Ok(reader)
}

/// Whether the image has a single color channel (with or without alpha).
fn is_gray(image: &DynamicImage) -> bool {
    !image.color().has_color()
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
