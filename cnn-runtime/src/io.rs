//! Weight files: a network's parameters as [safetensors], one `F32` tensor per parameter.
//!
//! Tensors are named as in a PyTorch `state_dict` (`conv1.weight`, `conv1.bias`, ...) and
//! have PyTorch's shapes, so a file written here loads with `safetensors.torch.load_file`
//! into the equivalent `nn.Module`, and a file saved from PyTorch loads here.
//!
//! Loading is strict, like PyTorch's `load_state_dict(strict = True)`: every parameter must
//! have a tensor of the declared shape and dtype `F32`, and the file may hold nothing else.
//! Whatever is wrong is reported as an [`Error`] that names the file and the tensor; no file
//! content makes a loader panic.
//!
//! # Untrusted files
//!
//! A weight file may come from anyone, so loading promises, whatever the bytes:
//!
//! - no panic, no out-of-bounds read, no arithmetic overflow: every failure is an [`Error`];
//! - no allocation larger than the file itself, and no file read at all past the size any
//!   file for the network could have: an 8-byte length prefix, a JSON header of at most
//!   1 MiB, and 8 bytes per parameter (the widest dtype, so that tensors of the right shapes
//!   in a wrong dtype still get a dtype error). A length prefix beyond 1 MiB (`u64::MAX`
//!   included) is refused from the first 8 bytes;
//! - a header whose structure would be costly to parse is refused before it is parsed:
//!   nesting deeper than 8 levels, an object or array of more than 64 members, or more
//!   top-level entries than the network's parameters plus 65. Real files are far inside
//!   these bounds;
//! - offsets out of range, overlapping, out of order or not covering the data section exactly
//!   (gaps, trailing bytes) are errors, as are shapes whose element count overflows;
//! - **non-finite weights are refused**: a NaN or an infinity in any tensor is an
//!   [`Error::Safetensors`] naming the tensor, the index of the first such value and the value.
//!   A trained network never holds one, and one NaN would spread to every output it touches;
//!   refusing it at load time says where the damage is. [`save_safetensors`] still writes
//!   whatever the network holds, so a diverged network can be saved and inspected elsewhere;
//! - [`load_safetensors_into`] writes nothing into the network unless the whole file passed.
//!
//! ```
//! use cnn::prelude::*;
//! # cnn::cnn! { struct LeNet5 { input: [1, 28, 28], conv1: Conv2d(6, kernel = 5, padding = 2) -> Relu,
//! #   pool1: MaxPool2d(2), conv2: Conv2d(16, kernel = 5) -> Relu, pool2: MaxPool2d(2), flatten: Flatten,
//! #   fc1: Dense(120) -> Relu, fc2: Dense(84) -> Relu, fc3: Dense(10) } }
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_current_dir(dir.path()).unwrap();
//!
//! let net = LeNet5::new(42);
//! cnn::io::save_safetensors(&net, "lenet5.safetensors")?;
//! let back: LeNet5 = cnn::io::load_safetensors("lenet5.safetensors")?;
//! assert_eq!(net.params(), back.params());
//! # Ok::<(), cnn::Error>(())
//! ```
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensorError, TensorView, View};
use safetensors::SafeTensors;

use crate::{Error, Network, ParamInfo};

/// Longest JSON header accepted, in bytes. A header lists names, dtypes, shapes and offsets:
/// about 100 bytes per tensor, a few KB for any network `cnn!` declares. (safetensors itself
/// accepts up to 100 MB.)
const MAX_HEADER_LEN: usize = 1 << 20;

/// Most bytes per parameter a file is allowed before it is read: the size of the widest
/// safetensors dtype (`F64`, `I64`, `U64`), so that a file of the right shapes in a wrong
/// dtype is read and reported as a dtype mismatch.
const MAX_DTYPE_BYTES: usize = 8;

/// Deepest nesting of objects and arrays in a header; a valid one nests 3 deep.
const MAX_DEPTH: usize = 8;

/// Most members of any object or array in a header other than the top-level one; a tensor
/// entry has 3, a shape as many as its dimensions.
const MAX_MEMBERS: usize = 64;

/// Top-level header entries tolerated beyond the network's parameters and `__metadata__`.
const EXTRA_ENTRIES: usize = 64;

/// Writes the parameters of `net` to `path` as a safetensors file.
///
/// One `F32` tensor per entry of [`Network::PARAMS`], named `info.name`, with shape
/// `info.shape`, little-endian. The file holds no `__metadata__`.
///
/// Non-finite values are written as they are (to inspect a diverged network elsewhere), but
/// [`load_safetensors`] refuses such a file.
///
/// The file is written atomically: to a temporary file in the same directory, which is then
/// renamed over `path`. A reader never sees a half-written file, and a failed save leaves an
/// existing file at `path` as it was.
///
/// ```
/// use cnn::prelude::*;
/// # cnn::cnn! { struct LeNet5 { input: [1, 28, 28], conv1: Conv2d(6, kernel = 5, padding = 2) -> Relu,
/// #   pool1: MaxPool2d(2), conv2: Conv2d(16, kernel = 5) -> Relu, pool2: MaxPool2d(2), flatten: Flatten,
/// #   fc1: Dense(120) -> Relu, fc2: Dense(84) -> Relu, fc3: Dense(10) } }
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_current_dir(dir.path()).unwrap();
///
/// let net = LeNet5::new(0);
/// cnn::io::save_safetensors(&net, "lenet5.safetensors")?;
/// # Ok::<(), cnn::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] naming `path` if the temporary file cannot be created or written (for
/// example, the directory does not exist or is read-only) or cannot be renamed to `path`.
///
/// # Panics
///
/// If `net.params()` is shorter than the layout in [`Network::PARAMS`] says: a bug in the
/// `Network` implementation, not in any file.
pub fn save_safetensors<N: Network>(net: &N, path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    let params = net.params();
    check_layout::<N>(params.len());

    let tensors = N::PARAMS.iter().map(|info| {
        let bytes = params[info.range()].iter().flat_map(|x| x.to_le_bytes()).collect();
        (
            info.name,
            F32Tensor {
                shape: info.shape,
                bytes,
            },
        )
    });
    let bytes = safetensors::serialize(tensors, &None).map_err(|e| Error::Safetensors {
        path: path.to_path_buf(),
        reason: describe(&e),
    })?;
    write_atomically(path, &bytes)
}

/// Reads a network from the safetensors file at `path`.
///
/// The file must hold exactly the tensors of [`Network::PARAMS`]: same names, same shapes,
/// dtype `F32`, nothing missing and nothing extra.
///
/// ```
/// use cnn::prelude::*;
/// # cnn::cnn! { struct LeNet5 { input: [1, 28, 28], conv1: Conv2d(6, kernel = 5, padding = 2) -> Relu,
/// #   pool1: MaxPool2d(2), conv2: Conv2d(16, kernel = 5) -> Relu, pool2: MaxPool2d(2), flatten: Flatten,
/// #   fc1: Dense(120) -> Relu, fc2: Dense(84) -> Relu, fc3: Dense(10) } }
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_current_dir(dir.path()).unwrap();
///
/// # cnn::io::save_safetensors(&LeNet5::new(1), "lenet5.safetensors")?;
/// let net: LeNet5 = cnn::io::load_safetensors("lenet5.safetensors")?;
/// # Ok::<(), cnn::Error>(())
/// ```
///
/// # Errors
///
/// Checked in this order, the first failure returned (parameters in [`Network::PARAMS`]
/// order, extra tensors in name order):
///
/// - [`Error::Io`] if the file cannot be read;
/// - [`Error::Safetensors`] if it is not a valid safetensors file (truncated, damaged header,
///   offsets that do not match the shapes, ...);
/// - [`Error::MissingTensor`] if a parameter has no tensor;
/// - [`Error::UnexpectedTensor`] if a tensor matches no parameter;
/// - [`Error::DtypeMismatch`] if a tensor's dtype is not `F32`;
/// - [`Error::ShapeMismatch`] if a tensor's shape is not the parameter's;
/// - [`Error::Safetensors`] if a tensor holds a NaN or an infinity, naming the tensor and the
///   index of the first one.
///
/// Before any of these, [`Error::Safetensors`] if the file is larger than any file for `N`
/// could be, or its header breaks the limits in the [module docs](self#untrusted-files).
pub fn load_safetensors<N: Network>(path: impl AsRef<Path>) -> Result<N, Error> {
    let params = read_new_params::<N>(path.as_ref())?;
    Ok(N::from_params(&params))
}

/// Reads the safetensors file at `path` into the parameters of `net`, in place.
///
/// The same checks as [`load_safetensors`], without allocating a new network. The whole
/// file is checked before any parameter is written, so on error `net` is left unchanged.
///
/// ```
/// use cnn::prelude::*;
/// # cnn::cnn! { struct LeNet5 { input: [1, 28, 28], conv1: Conv2d(6, kernel = 5, padding = 2) -> Relu,
/// #   pool1: MaxPool2d(2), conv2: Conv2d(16, kernel = 5) -> Relu, pool2: MaxPool2d(2), flatten: Flatten,
/// #   fc1: Dense(120) -> Relu, fc2: Dense(84) -> Relu, fc3: Dense(10) } }
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_current_dir(dir.path()).unwrap();
///
/// # cnn::io::save_safetensors(&LeNet5::new(1), "lenet5.safetensors")?;
/// let mut net = LeNet5::new(0);
/// cnn::io::load_safetensors_into(&mut net, "lenet5.safetensors")?;
/// # Ok::<(), cnn::Error>(())
/// ```
///
/// # Errors
///
/// As [`load_safetensors`].
///
/// # Panics
///
/// If `net.params_mut()` is shorter than the layout in [`Network::PARAMS`] says: a bug in
/// the `Network` implementation, not in any file.
pub fn load_safetensors_into<N: Network>(net: &mut N, path: impl AsRef<Path>) -> Result<(), Error> {
    read_params::<N>(path.as_ref(), net.params_mut())
}

/// Reads, checks and decodes the file into `params`, which is written only once every check
/// has passed.
fn read_params<N: Network>(path: &Path, params: &mut [f32]) -> Result<(), Error> {
    check_layout::<N>(params.len());
    let bytes = read_bounded::<N>(path)?;
    let views = parse::<N>(path, &bytes)?;
    decode(&views, N::PARAMS, params);
    Ok(())
}

/// Reads, checks and decodes the file into a fresh parameter buffer. The buffer is allocated
/// only once the file has passed every check, so a damaged file costs no more memory than
/// its own size.
fn read_new_params<N: Network>(path: &Path) -> Result<Vec<f32>, Error> {
    let bytes = read_bounded::<N>(path)?;
    let views = parse::<N>(path, &bytes)?;
    let mut params = vec![0.0; N::PARAM_COUNT];
    check_layout::<N>(params.len());
    decode(&views, N::PARAMS, &mut params);
    Ok(params)
}

/// Reads the whole file, refusing before reading it whatever is larger than any file for `N`
/// could be: the 8-byte length prefix, a header of at most [`MAX_HEADER_LEN`], and at most
/// [`MAX_DTYPE_BYTES`] per parameter (tensors of the right shapes in a wrong dtype still get
/// their own, more precise, error). The buffer is the file's size, no more.
fn read_bounded<N: Network>(path: &Path) -> Result<Vec<u8>, Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let invalid = |reason: String| Error::Safetensors {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();

    let mut prefix = Vec::with_capacity(8);
    (&mut file).take(8).read_to_end(&mut prefix).map_err(io_err)?;
    let Ok(prefix) = <[u8; 8]>::try_from(prefix.as_slice()) else {
        return Err(invalid(describe(&SafeTensorError::HeaderTooSmall)));
    };
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_LEN as u64 {
        return Err(invalid(format!(
            "the length prefix gives a {header_len}-byte header, more than the {MAX_HEADER_LEN} \
             bytes accepted; damaged, or not a safetensors file"
        )));
    }
    let data_limit = (MAX_DTYPE_BYTES as u64).saturating_mul(N::PARAM_COUNT as u64);
    let limit = (8 + header_len).saturating_add(data_limit);
    let too_large = |len: u64| {
        invalid(format!(
            "the file is {len} bytes long, but a file for this network holds a {header_len}-byte \
             header and at most {data_limit} bytes of data ({MAX_DTYPE_BYTES} per parameter)"
        ))
    };
    if file_len > limit {
        return Err(too_large(file_len));
    }

    // `file_len` is a hint: a file that grows while we read is still cut at `limit + 1`.
    let mut bytes = Vec::with_capacity(usize::try_from(file_len).unwrap_or(0));
    bytes.extend_from_slice(&prefix);
    (&mut file)
        .take(limit.saturating_add(1) - 8)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Checks the file against the layout of `N` and returns one view per parameter, in
/// [`Network::PARAMS`] order.
fn parse<'data, N: Network>(path: &Path, bytes: &'data [u8]) -> Result<Vec<TensorView<'data>>, Error> {
    let invalid = |reason: String| Error::Safetensors {
        path: path.to_path_buf(),
        reason,
    };
    // `read_bounded` has checked the prefix; a header reaching past the end of the file is
    // left for `deserialize` to report.
    if let Some(header) = header_of(bytes) {
        check_header_structure(header, N::PARAMS.len()).map_err(invalid)?;
    }
    let file = SafeTensors::deserialize(bytes).map_err(|e| invalid(describe(&e)))?;

    let views = check_tensors(path, &file, N::PARAMS)?;
    for (info, view) in N::PARAMS.iter().zip(&views) {
        let data = view.data();
        // `deserialize` has checked that each tensor's byte range matches its shape and
        // dtype, and `check_tensors` that shape and dtype are the parameter's; checked again
        // here so that no file can make the decoding in `decode` panic.
        if data.len() != info.len() * 4 {
            return Err(invalid(format!(
                "tensor `{}` holds {} bytes, but its shape {:?} needs {}",
                info.name,
                data.len(),
                info.shape,
                info.len() * 4
            )));
        }
        // A trained network has only finite weights, and one NaN spreads to every output it
        // touches: refuse it here, naming where it is, rather than predict garbage later.
        let first_non_finite = data
            .chunks_exact(4)
            .map(f32_le)
            .enumerate()
            .find(|(_, x)| !x.is_finite());
        if let Some((index, value)) = first_non_finite {
            return Err(invalid(format!(
                "tensor `{}` holds {value} at index {:?} (element {index} of {}); \
                 weights must be finite",
                info.name,
                unravel(index, info.shape),
                info.len()
            )));
        }
    }
    Ok(views)
}

/// Writes the checked views into `params`.
fn decode(views: &[TensorView<'_>], layout: &[ParamInfo], params: &mut [f32]) {
    for (info, view) in layout.iter().zip(views) {
        // The data section is not necessarily 4-byte aligned, so decode chunk by chunk
        // rather than reinterpreting the bytes.
        for (dst, chunk) in params[info.range()].iter_mut().zip(view.data().chunks_exact(4)) {
            *dst = f32_le(chunk);
        }
    }
}

/// The `f32` in the first four bytes of `chunk`, little-endian (`chunks_exact(4)` gives four).
fn f32_le(chunk: &[u8]) -> f32 {
    f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])
}

/// The multi-dimensional index of element `flat` of a row-major tensor of `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &dim) in index.iter_mut().zip(shape).rev() {
        *i = flat % dim.max(1);
        flat /= dim.max(1);
    }
    index
}

/// The JSON header of a safetensors file: the `n` bytes after the 8-byte length prefix `n`,
/// if the file holds them.
fn header_of(bytes: &[u8]) -> Option<&[u8]> {
    let prefix: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let len = usize::try_from(u64::from_le_bytes(prefix)).ok()?;
    bytes.get(8..8usize.checked_add(len)?)
}

/// Refuses a header shaped so that parsing it would cost far more memory than its size.
///
/// safetensors parses the header through serde's `flatten`, which first buffers every JSON
/// value as a generic tree of 32-byte nodes: an array of a million zeros (2 MB of text) would
/// become a 32 MB allocation. A valid header for a network is one object holding, per
/// parameter, an object of three fields with two short arrays (`shape`, `data_offsets`), plus
/// an optional `__metadata__` object of strings. So, lexically and before any parsing:
/// nesting at most [`MAX_DEPTH`] deep, the top-level object at most the network's parameters
/// plus `__metadata__` plus [`EXTRA_ENTRIES`] (so a few unexpected tensors are still reported
/// by name), and every other object or array at most [`MAX_MEMBERS`] members. Valid files are
/// far inside these bounds.
fn check_header_structure(header: &[u8], params: usize) -> Result<(), String> {
    let top_limit = params + 1 + EXTRA_ENTRIES;
    // members[d]: members counted so far in the open object or array at depth d (1-based).
    let mut members = [0usize; MAX_DEPTH + 1];
    let mut depth = 0;
    let (mut in_string, mut escaped) = (false, false);
    for &b in header {
        if in_string {
            // Inside a string only an unescaped quote matters; brackets and commas are text.
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                if depth == MAX_DEPTH {
                    return Err(format!(
                        "the header nests more than {MAX_DEPTH} levels deep; a safetensors \
                         header is an object of tensor entries"
                    ));
                }
                depth += 1;
                members[depth] = 1;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth > 0 => {
                members[depth] += 1;
                if depth == 1 && members[1] > top_limit {
                    return Err(format!(
                        "the header lists more than {top_limit} entries, but the network has \
                         {params} parameters"
                    ));
                }
                if depth > 1 && members[depth] > MAX_MEMBERS {
                    return Err(format!(
                        "an object or array in the header has more than {MAX_MEMBERS} members; \
                         a tensor entry has 3 fields and a shape a handful of dimensions"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The strict `load_state_dict` rule: the names in the file are exactly the parameter names,
/// and each tensor has the parameter's dtype and shape. Returns the tensors in `layout` order.
///
/// The order of the checks makes the reported error deterministic: every missing tensor
/// before any unexpected one (a file from another network is best explained by what it
/// lacks), unexpected names sorted, then dtype and shape per parameter in layout order.
fn check_tensors<'data>(
    path: &Path,
    file: &SafeTensors<'data>,
    layout: &[ParamInfo],
) -> Result<Vec<TensorView<'data>>, Error> {
    let mut views = Vec::with_capacity(layout.len());
    for info in layout {
        match file.tensor(info.name) {
            Ok(view) => views.push(view),
            Err(_) => {
                return Err(Error::MissingTensor {
                    path: path.to_path_buf(),
                    tensor: info.name.to_owned(),
                    expected: info.shape.to_vec(),
                })
            }
        }
    }

    let known: HashSet<&str> = layout.iter().map(|info| info.name).collect();
    let mut extra: Vec<&String> = file
        .names()
        .into_iter()
        .filter(|name| !known.contains(name.as_str()))
        .collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(Error::UnexpectedTensor {
            path: path.to_path_buf(),
            tensor: (*name).clone(),
        });
    }

    for (info, view) in layout.iter().zip(&views) {
        if view.dtype() != Dtype::F32 {
            return Err(Error::DtypeMismatch {
                path: path.to_path_buf(),
                tensor: info.name.to_owned(),
                expected: "F32".to_owned(),
                got: format!("{:?}", view.dtype()),
            });
        }
        if view.shape() != info.shape {
            return Err(Error::ShapeMismatch {
                path: path.to_path_buf(),
                tensor: info.name.to_owned(),
                expected: info.shape.to_vec(),
                got: view.shape().to_vec(),
            });
        }
    }
    Ok(views)
}

/// A network whose `PARAMS` reach past its buffer is a bug in its `Network` implementation;
/// caught here with a clear message instead of an index panic deep in the loop.
fn check_layout<N: Network>(len: usize) {
    let needed = N::PARAMS.iter().map(|info| info.range().end).max().unwrap_or(0);
    assert!(
        needed <= len,
        "Network::PARAMS describes {needed} parameters, but the buffer holds {len}"
    );
}

/// One parameter tensor ready to serialize: its bytes already little-endian.
struct F32Tensor {
    shape: &'static [usize],
    bytes: Vec<u8>,
}

impl View for F32Tensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes `bytes` to a fresh temporary file next to `path`, flushes it to disk and renames it
/// over `path`; rename within one directory is atomic on the platforms we support. The
/// temporary file is removed if anything fails.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = temporary_path(path).map_err(io_err)?;
    let written = write_new(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = written {
        // Best effort: the error that matters is the one that stopped the save.
        let _ = fs::remove_file(&tmp);
        return Err(io_err(source));
    }
    Ok(())
}

/// Creates `path`, which must not exist yet, and writes `bytes` to it durably.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file: File = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `dir/.NAME.PID-N.tmp` beside `dir/NAME`: hidden, and unique per process and call, so
/// concurrent saves to the same path do not write into each other's temporary file.
fn temporary_path(path: &Path) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path does not end in a file name"))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}-{n}.tmp", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// A sentence for a safetensors error, whose `Display` is only its variant name.
fn describe(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::HeaderTooSmall => "shorter than the 8-byte header length; truncated or empty".to_owned(),
        SafeTensorError::HeaderTooLarge => {
            "the header length is implausibly large (over 100 MB); not a safetensors file".to_owned()
        }
        SafeTensorError::InvalidHeaderLength => {
            "the header length points past the end of the file; truncated or not a safetensors file".to_owned()
        }
        SafeTensorError::InvalidHeader => "the header is not valid UTF-8".to_owned(),
        SafeTensorError::InvalidHeaderStart | SafeTensorError::InvalidHeaderDeserialization => {
            "the header is not valid safetensors JSON".to_owned()
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            "the data section does not match the header's offsets; truncated or has trailing bytes".to_owned()
        }
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor `{name}` has data offsets that overlap or leave a gap")
        }
        SafeTensorError::TensorInvalidInfo => "a tensor's byte range does not match its shape and dtype".to_owned(),
        SafeTensorError::ValidationOverflow => "a tensor's shape overflows when multiplied out".to_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A network that is only a parameter layout (its passes are never called): all that weight
    /// I/O needs, written out by hand so these tests do not depend on the macro.
    macro_rules! layout_only {
        ($(#[$meta:meta])* $name:ident { $($layout:tt)* }) => {
            $(#[$meta])*
            struct $name {
                params: Vec<f32>,
            }

            impl Network for $name {
                $($layout)*

                fn from_params(params: &[f32]) -> Self {
                    assert_eq!(params.len(), Self::PARAM_COUNT);
                    $name { params: params.to_vec() }
                }
                fn params(&self) -> &[f32] {
                    &self.params
                }
                fn params_mut(&mut self) -> &mut [f32] {
                    &mut self.params
                }
                fn forward_batch(&self, _: &[f32], _: &mut [f32]) {
                    unimplemented!()
                }
                fn loss_and_grad(&self, _: &[f32], _: &[u32], _: &mut [f32]) -> f32 {
                    unimplemented!()
                }
            }
        };
    }

    layout_only! {
        /// One dense layer `fc` from 4 inputs to 3 outputs.
        #[derive(Debug)]
        Tiny {
            const INPUT_SHAPE: &'static [usize] = &[4];
            const INPUT_LEN: usize = 4;
            const OUTPUT_LEN: usize = 3;
            const PARAM_COUNT: usize = 15;
            const PARAMS: &'static [ParamInfo] = &[
                ParamInfo {
                    name: "fc.weight",
                    shape: &[3, 4],
                    offset: 0,
                },
                ParamInfo {
                    name: "fc.bias",
                    shape: &[3],
                    offset: 12,
                },
            ];
        }
    }

    layout_only! {
        /// LeNet-5's parameter layout, as `cnn!` generates it for the declaration in DESIGN.md.
        LeNet5 {
            const INPUT_SHAPE: &'static [usize] = &[1, 28, 28];
            const INPUT_LEN: usize = 784;
            const OUTPUT_LEN: usize = 10;
            const PARAM_COUNT: usize = 61_706;
            const PARAMS: &'static [ParamInfo] = &[
                ParamInfo {
                    name: "conv1.weight",
                    shape: &[6, 1, 5, 5],
                    offset: 0,
                },
                ParamInfo {
                    name: "conv1.bias",
                    shape: &[6],
                    offset: 150,
                },
                ParamInfo {
                    name: "conv2.weight",
                    shape: &[16, 6, 5, 5],
                    offset: 156,
                },
                ParamInfo {
                    name: "conv2.bias",
                    shape: &[16],
                    offset: 2_556,
                },
                ParamInfo {
                    name: "fc1.weight",
                    shape: &[120, 400],
                    offset: 2_572,
                },
                ParamInfo {
                    name: "fc1.bias",
                    shape: &[120],
                    offset: 50_572,
                },
                ParamInfo {
                    name: "fc2.weight",
                    shape: &[84, 120],
                    offset: 50_692,
                },
                ParamInfo {
                    name: "fc2.bias",
                    shape: &[84],
                    offset: 60_772,
                },
                ParamInfo {
                    name: "fc3.weight",
                    shape: &[10, 84],
                    offset: 60_856,
                },
                ParamInfo {
                    name: "fc3.bias",
                    shape: &[10],
                    offset: 61_696,
                },
            ];
        }
    }

    const GOLDEN_LENET5: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/golden/lenet5/weights.safetensors"
    );

    /// Values with awkward bit patterns: negative zero, subnormal, both extremes. (No NaN:
    /// the loader refuses non-finite weights, see `non_finite_weights_are_refused`.)
    fn tiny() -> Tiny {
        let mut params: Vec<f32> = (0..15).map(|i| (i as f32 - 7.0) / 3.0).collect();
        params[0] = -0.0;
        params[1] = f32::MIN_POSITIVE / 2.0;
        params[2] = f32::MAX;
        params[3] = f32::MIN;
        Tiny { params }
    }

    /// Writes `tensors` (name, dtype, shape, raw little-endian bytes) with safetensors' own
    /// serializer, so the files in these tests are valid except for what each test breaks.
    fn write_raw(path: &Path, tensors: &[(&str, Dtype, &[usize], Vec<u8>)]) {
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| (*name, TensorView::new(*dtype, shape.to_vec(), bytes).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, &None, path).unwrap();
    }

    fn f32_bytes(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    #[test]
    fn round_trip_is_bit_identical() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.safetensors");
        let net = tiny();
        save_safetensors(&net, &path).unwrap();

        let back: Tiny = load_safetensors(&path).unwrap();
        let bits = |p: &[f32]| p.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.params), bits(&net.params));

        let mut into = Tiny { params: vec![9.0; 15] };
        load_safetensors_into(&mut into, &path).unwrap();
        assert_eq!(bits(&into.params), bits(&net.params));
    }

    #[test]
    fn save_writes_one_f32_tensor_per_param_and_no_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.safetensors");
        save_safetensors(&tiny(), &path).unwrap();

        let bytes = fs::read(&path).unwrap();
        let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        assert!(metadata.metadata().is_none());
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = file.names();
        names.sort();
        assert_eq!(names, ["fc.bias", "fc.weight"]);
        let weight = file.tensor("fc.weight").unwrap();
        assert_eq!(weight.dtype(), Dtype::F32);
        assert_eq!(weight.shape(), [3, 4]);
        let bias = file.tensor("fc.bias").unwrap();
        assert_eq!(bias.shape(), [3]);
        assert_eq!(&bias.data()[..4], &(5.0f32 / 3.0).to_le_bytes());

        // Only the file itself is left: the temporary one was renamed, not copied.
        let entries: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn save_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.safetensors");
        fs::write(&path, b"old contents").unwrap();
        save_safetensors(&tiny(), &path).unwrap();
        let back: Tiny = load_safetensors(&path).unwrap();
        assert_eq!(back.params[4], tiny().params[4]);
    }

    #[test]
    fn save_into_missing_directory_is_io_error_naming_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("tiny.safetensors");
        let err = save_safetensors(&tiny(), &path).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }

    #[test]
    fn missing_tensor_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.safetensors");
        write_raw(&path, &[("fc.weight", Dtype::F32, &[3, 4], f32_bytes(12))]);

        let err = load_safetensors::<Tiny>(&path).unwrap_err();
        match &err {
            Error::MissingTensor { tensor, expected, .. } => {
                assert_eq!(tensor, "fc.bias");
                assert_eq!(expected, &[3]);
            }
            other => panic!("expected MissingTensor, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("`fc.bias`") && msg.contains("missing.safetensors"),
            "{msg}"
        );
    }

    #[test]
    fn missing_is_reported_before_unexpected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("renamed.safetensors");
        // `fc.weights` is a typo for `fc.weight`: both missing and unexpected.
        write_raw(
            &path,
            &[
                ("fc.weights", Dtype::F32, &[3, 4], f32_bytes(12)),
                ("fc.bias", Dtype::F32, &[3], f32_bytes(3)),
            ],
        );
        let err = load_safetensors::<Tiny>(&path).unwrap_err();
        assert!(
            matches!(&err, Error::MissingTensor { tensor, .. } if tensor == "fc.weight"),
            "{err:?}"
        );
    }

    #[test]
    fn unexpected_tensor_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extra.safetensors");
        write_raw(
            &path,
            &[
                ("fc.weight", Dtype::F32, &[3, 4], f32_bytes(12)),
                ("fc.bias", Dtype::F32, &[3], f32_bytes(3)),
                ("fc.running_mean", Dtype::F32, &[3], f32_bytes(3)),
                ("fc.extra", Dtype::F32, &[1], f32_bytes(1)),
            ],
        );
        let err = load_safetensors::<Tiny>(&path).unwrap_err();
        // Extra tensors are reported in name order, whatever the file's order.
        assert!(
            matches!(&err, Error::UnexpectedTensor { tensor, .. } if tensor == "fc.extra"),
            "{err:?}"
        );
        assert!(err.to_string().contains("`fc.extra`"), "{err}");
    }

    #[test]
    fn wrong_shape_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shape.safetensors");
        // Same number of elements, transposed: still a mismatch.
        write_raw(
            &path,
            &[
                ("fc.weight", Dtype::F32, &[4, 3], f32_bytes(12)),
                ("fc.bias", Dtype::F32, &[3], f32_bytes(3)),
            ],
        );
        let err = load_safetensors::<Tiny>(&path).unwrap_err();
        match &err {
            Error::ShapeMismatch {
                tensor, expected, got, ..
            } => {
                assert_eq!(tensor, "fc.weight");
                assert_eq!(expected, &[3, 4]);
                assert_eq!(got, &[4, 3]);
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("`fc.weight`") && msg.contains("[4, 3]"), "{msg}");
    }

    #[test]
    fn wrong_dtype_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dtype.safetensors");
        let f64_bias: Vec<u8> = (0..3).flat_map(|i| f64::from(i).to_le_bytes()).collect();
        write_raw(
            &path,
            &[
                ("fc.weight", Dtype::F32, &[3, 4], f32_bytes(12)),
                ("fc.bias", Dtype::F64, &[3], f64_bias),
            ],
        );
        let err = load_safetensors::<Tiny>(&path).unwrap_err();
        match &err {
            Error::DtypeMismatch {
                tensor, expected, got, ..
            } => {
                assert_eq!(tensor, "fc.bias");
                assert_eq!(expected, "F32");
                assert_eq!(got, "F64");
            }
            other => panic!("expected DtypeMismatch, got {other:?}"),
        }
        assert!(err.to_string().contains("`fc.bias`"), "{err}");

        let i64_weight: Vec<u8> = (0..12i64).flat_map(|i| i.to_le_bytes()).collect();
        write_raw(
            &path,
            &[
                ("fc.weight", Dtype::I64, &[3, 4], i64_weight),
                ("fc.bias", Dtype::F32, &[3], f32_bytes(3)),
            ],
        );
        let err = load_safetensors::<Tiny>(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::DtypeMismatch { .. }), "{err:?}");
        assert!(msg.contains("`fc.weight` has dtype I64"), "{msg}");
    }

    #[test]
    fn failed_load_into_leaves_network_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shape.safetensors");
        // `fc.weight` is fine and comes first; `fc.bias` has the wrong shape.
        write_raw(
            &path,
            &[
                ("fc.weight", Dtype::F32, &[3, 4], f32_bytes(12)),
                ("fc.bias", Dtype::F32, &[1, 3], f32_bytes(3)),
            ],
        );
        let mut net = Tiny { params: vec![7.0; 15] };
        let err = load_safetensors_into(&mut net, &path).unwrap_err();
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
        assert_eq!(net.params, vec![7.0; 15]);
    }

    #[test]
    fn truncated_file_is_safetensors_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truncated.safetensors");
        save_safetensors(&tiny(), &path).unwrap();
        let bytes = fs::read(&path).unwrap();

        // Cut in the data, in the header, and inside the length prefix.
        for cut in [bytes.len() - 1, 20, 3, 0] {
            fs::write(&path, &bytes[..cut]).unwrap();
            let err = load_safetensors::<Tiny>(&path).unwrap_err();
            assert!(matches!(err, Error::Safetensors { .. }), "cut at {cut}: {err:?}");
            let msg = err.to_string();
            assert!(msg.contains("truncated.safetensors"), "{msg}");
            assert!(msg.contains("truncated"), "cut at {cut}: {msg}");
        }
    }

    #[test]
    fn trailing_bytes_are_safetensors_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trailing.safetensors");
        save_safetensors(&tiny(), &path).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes.push(0);
        fs::write(&path, &bytes).unwrap();
        let err = load_safetensors::<Tiny>(&path).unwrap_err();
        assert!(matches!(err, Error::Safetensors { .. }), "{err:?}");
        assert!(err.to_string().contains("trailing bytes"), "{err}");
    }

    #[test]
    fn garbage_file_is_safetensors_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.safetensors");
        // An 8-byte little-endian header length, then the header.
        let with_header = |json: &[u8]| {
            let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(json);
            bytes
        };
        let cases = [
            b"this is not a safetensors file at all".to_vec(),
            with_header(b"abcd"),
            with_header(b"\xff\xfe"),
            // Valid JSON, but data offsets that reach past the end.
            with_header(br#"{"fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#),
            // Offsets that do not match the shape.
            [
                with_header(br#"{"fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#),
                vec![0; 8],
            ]
            .concat(),
            // A shape whose element count overflows.
            with_header(
                br#"{"fc.bias":{"dtype":"F32","shape":[18446744073709551615,2],
                    "data_offsets":[0,0]}}"#,
            ),
            // A length prefix of 2^64 - 1.
            vec![0xff; 16],
        ];
        for bytes in cases {
            fs::write(&path, &bytes).unwrap();
            let err = load_safetensors::<Tiny>(&path).unwrap_err();
            assert!(matches!(err, Error::Safetensors { .. }), "{bytes:x?}: {err:?}");
            assert!(err.to_string().contains("garbage.safetensors"), "{err}");
        }
    }

    #[test]
    fn nonexistent_path_is_io_error_naming_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("does-not-exist.safetensors");
        let err = load_safetensors::<Tiny>(&path).unwrap_err();
        match &err {
            Error::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
            }
            other => panic!("expected Io, got {other:?}"),
        }
        assert!(err.to_string().contains("does-not-exist.safetensors"), "{err}");
    }

    #[test]
    fn metadata_in_file_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.safetensors");
        let weight = f32_bytes(12);
        let bias = f32_bytes(3);
        let views = [
            ("fc.weight", TensorView::new(Dtype::F32, vec![3, 4], &weight).unwrap()),
            ("fc.bias", TensorView::new(Dtype::F32, vec![3], &bias).unwrap()),
        ];
        let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
        safetensors::serialize_to_file(views, &Some(metadata), &path).unwrap();
        let net: Tiny = load_safetensors(&path).unwrap();
        assert_eq!(net.params[12..], [0.0, 1.0, 2.0]);
    }

    #[test]
    fn non_finite_weights_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nan.safetensors");
        let cases = [
            // fc.weight is [3, 4]: element 6 is at [1, 2].
            (
                6,
                f32::from_bits(0x7fc0_1234),
                "`fc.weight` holds NaN at index [1, 2] (element 6 of 12)",
            ),
            (
                0,
                f32::NEG_INFINITY,
                "`fc.weight` holds -inf at index [0, 0] (element 0 of 12)",
            ),
            (14, f32::INFINITY, "`fc.bias` holds inf at index [2] (element 2 of 3)"),
        ];
        for (at, value, want) in cases {
            let mut net = tiny();
            net.params[at] = value;
            // Saving writes the value as it is...
            save_safetensors(&net, &path).unwrap();
            // ...but loading refuses it, naming the tensor and the index.
            let err = load_safetensors::<Tiny>(&path).unwrap_err();
            assert!(matches!(err, Error::Safetensors { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(want) && msg.contains("must be finite"), "{msg}");

            let mut into = Tiny { params: vec![7.0; 15] };
            load_safetensors_into(&mut into, &path).unwrap_err();
            assert_eq!(into.params, vec![7.0; 15]);
        }
    }

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(0, &[2, 3]), [0, 0]);
        assert_eq!(unravel(5, &[2, 3]), [1, 2]);
        assert_eq!(unravel(7, &[2, 1, 2, 2]), [1, 0, 1, 1]);
        assert_eq!(unravel(0, &[]), [0; 0]);
    }

    #[test]
    fn header_length_beyond_the_limit_is_refused_from_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prefix.safetensors");
        for len in [u64::MAX, 1 << 40, MAX_HEADER_LEN as u64 + 1] {
            let mut bytes = len.to_le_bytes().to_vec();
            bytes.extend_from_slice(b"{}");
            fs::write(&path, &bytes).unwrap();
            let msg = load_safetensors::<Tiny>(&path).unwrap_err().to_string();
            assert!(msg.contains(&format!("{len}-byte header")), "{msg}");
        }
    }

    #[test]
    fn file_larger_than_any_for_the_network_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large.safetensors");
        save_safetensors(&tiny(), &path).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        // 15 parameters allow at most 120 data bytes, whatever the header says.
        bytes.resize(bytes.len() + 200, 0);
        fs::write(&path, &bytes).unwrap();
        let msg = load_safetensors::<Tiny>(&path).unwrap_err().to_string();
        assert!(msg.contains("at most 120 bytes of data"), "{msg}");
    }

    #[test]
    fn costly_header_structure_is_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("header.safetensors");
        let with_header = |json: String| {
            let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(json.as_bytes());
            bytes
        };
        let zeros = |n: usize| vec!["0"; n].join(",");
        let entries = |n: usize| {
            (0..n)
                .map(|i| format!(r#""t{i}":{{"dtype":"F32","shape":[],"data_offsets":[0,0]}}"#))
                .collect::<Vec<_>>()
                .join(",")
        };
        let cases = [
            (
                format!(
                    r#"{{"fc.bias":{{"dtype":"F32","shape":[{}],"data_offsets":[0,0]}}}}"#,
                    zeros(65)
                ),
                "more than 64 members",
            ),
            (
                format!("{{\"a\":{}{}}}", "[".repeat(20), "]".repeat(20)),
                "more than 8 levels",
            ),
            (
                format!("{{{}}}", entries(2 + 1 + 65)),
                "more than 67 entries, but the network has 2",
            ),
        ];
        for (json, want) in cases {
            fs::write(&path, with_header(json)).unwrap();
            let msg = load_safetensors::<Tiny>(&path).unwrap_err().to_string();
            assert!(msg.contains(want), "{msg}");
        }
        // Brackets and commas inside strings are text, not structure.
        let name = format!("fc.weight{}", ",[".repeat(100));
        let json = format!(
            r#"{{"__metadata__":{{"note":"{}"}},"{name}":{{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}}}"#,
            ",{[\\\"".repeat(100)
        );
        let mut bytes = with_header(json);
        bytes.extend_from_slice(&f32_bytes(3));
        fs::write(&path, bytes).unwrap();
        let err = load_safetensors::<Tiny>(&path).unwrap_err();
        assert!(
            matches!(&err, Error::MissingTensor { tensor, .. } if tensor == "fc.weight"),
            "{err:?}"
        );
    }

    /// `tests/golden/lenet5/weights.safetensors` holds LeNet-5 as PyTorch initializes it by
    /// default (`spec.json` beside it: `"init": "pytorch_default"`, seed 19001): weights and
    /// biases uniform in +-1/sqrt(fan_in).
    #[test]
    fn loads_pytorch_golden_lenet5() {
        let net: LeNet5 = load_safetensors(GOLDEN_LENET5).unwrap();
        assert_eq!(net.params.len(), 61_706);
        for info in LeNet5::PARAMS {
            // PyTorch's default init is bounded by 1/sqrt(fan_in) for weights and biases
            // alike, with fan_in = in * kh * kw taken from the layer's weight.
            let weight_name = info.name.replace(".bias", ".weight");
            let weight = LeNet5::PARAMS.iter().find(|p| p.name == weight_name).unwrap();
            let fan_in: usize = weight.shape[1..].iter().product();
            let bound = 1.0 / (fan_in as f32).sqrt();
            let values = &net.params[info.range()];
            assert!(
                values.iter().all(|x| x.is_finite() && x.abs() <= bound),
                "{}",
                info.name
            );
            // Not all zero: the tensor really was read.
            assert!(values.iter().any(|&x| x != 0.0), "{}", info.name);
        }
    }
}
