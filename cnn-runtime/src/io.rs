//! Weight files: a network's state as [safetensors], exactly as a PyTorch `state_dict` holds it.
//!
//! A file holds, under their `state_dict` names (`conv1.weight`, `layer1.0.bn1.running_mean`,
//! ...) and with PyTorch's shapes:
//!
//! - every parameter of [`Network::PARAMS`], dtype `F32`;
//! - every buffer of [`Network::BUFFERS`] (BatchNorm's `X.running_mean` and `X.running_var`),
//!   dtype `F32`;
//! - for every BatchNorm `X` (every buffer named `X.running_mean`), `X.num_batches_tracked`:
//!   dtype `I64`, shape `[]` (a scalar), the number of training steps the network has taken
//!   ([`TrainState::steps`]).
//!
//! So a file written here loads into the equivalent `nn.Module` with
//! `model.load_state_dict(safetensors.torch.load_file(path), strict=True)`, and a file saved
//! with `safetensors.torch.save_file(model.state_dict(), path)` loads here unchanged.
//!
//! Loading is strict, like PyTorch's `load_state_dict(strict = True)`: every parameter and
//! every buffer must have a tensor of the declared shape and dtype `F32`;
//! `X.num_batches_tracked` may be absent, but if present it is an `I64` scalar; and the file
//! may hold nothing else. Whatever is wrong is reported as an [`Error`] that names the file and
//! the tensor; no file content makes a loader panic. Loading sets the network's step count
//! ([`Network::set_train_state`]) to the file's `num_batches_tracked` (the largest, if they
//! differ), and keeps it when the file holds none; the seed of Dropout's masks is not part of
//! a `state_dict`, and is kept.
//!
//! # Untrusted files
//!
//! A weight file may come from anyone, so loading promises, whatever the bytes:
//!
//! - no panic, no out-of-bounds read, no arithmetic overflow: every failure is an [`Error`];
//! - no allocation larger than the file itself, and no file read at all past the size any
//!   file for the network could have: an 8-byte length prefix, a JSON header of at most
//!   1 MiB, and 8 bytes per parameter, per buffer element and per `num_batches_tracked` (the
//!   widest dtype, so that tensors of the right shapes in a wrong dtype still get a dtype
//!   error). A length prefix beyond 1 MiB (`u64::MAX` included) is refused from the first
//!   8 bytes;
//! - a header whose structure would be costly to parse is refused before it is parsed:
//!   nesting deeper than 8 levels, an object or array of more than 64 members, or more
//!   top-level entries than the network's tensors (parameters, buffers and step counters)
//!   plus 65. Real files are far inside these bounds;
//! - offsets out of range, overlapping, out of order or not covering the data section exactly
//!   (gaps, trailing bytes) are errors, as are shapes whose element count overflows;
//! - **non-finite values are refused**: a NaN or an infinity in any parameter or buffer is an
//!   [`Error::Safetensors`] naming the tensor, the index of the first such value and the value.
//!   A trained network never holds one, and one NaN would spread to every output it touches;
//!   refusing it at load time says where the damage is. So are a negative `running_var`
//!   (naming the tensor and the index) and a negative `num_batches_tracked`.
//!   [`save_safetensors`] still writes whatever the network holds, so a diverged network can be
//!   saved and inspected elsewhere;
//! - [`load_safetensors_into`] writes nothing into the network unless the whole file passed.
//!
//! ```
//! use cnn::prelude::*;
//! # cnn::cnn! { struct Small { input: [1, 12, 12], conv: Conv2d(4, kernel = 5) -> Relu,
//! #   bn: BatchNorm2d, pool: MaxPool2d(2), flatten: Flatten, fc: Dense(10) } }
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_current_dir(dir.path()).unwrap();
//!
//! // `Small` has a BatchNorm2d stage `bn`: the file holds `bn.weight` and `bn.bias`
//! // (parameters), `bn.running_mean` and `bn.running_var` (buffers), and
//! // `bn.num_batches_tracked`.
//! let mut net = Small::new(42);
//! let mut grad = vec![0.0; Small::PARAM_COUNT];
//! // A training step (a batch of 2): updates the running statistics, counts one step.
//! let loss = net.loss_and_grad(&[0.5; 2 * 144], &[3, 7], &mut grad);
//! assert!(loss.is_finite());
//! cnn::io::save_safetensors(&net, "small.safetensors")?;
//! let back: Small = cnn::io::load_safetensors("small.safetensors")?;
//! assert_eq!(net.params(), back.params());
//! assert_eq!(net.buffers(), back.buffers());
//! assert_eq!(back.train_state().steps, 1);
//! # Ok::<(), cnn::Error>(())
//! ```
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensorError, TensorView, View};
use safetensors::SafeTensors;

use crate::safetensors_rules::{
    self as rules, describe, f32_le, unravel, MAX_DTYPE_BYTES, MAX_HEADER_LEN, NUM_BATCHES_TRACKED, RUNNING_MEAN,
};
use crate::{Error, Network, ParamInfo, TrainState};

/// Writes the state of `net` to `path` as a safetensors file, as PyTorch's `state_dict` holds
/// it.
///
/// One `F32` tensor per entry of [`Network::PARAMS`] and of [`Network::BUFFERS`], named
/// `info.name`, with shape `info.shape`; and for each BatchNorm `X` (each buffer named
/// `X.running_mean`) the `I64` scalar `X.num_batches_tracked` (shape `[]`), whose value is
/// `net.train_state().steps`. All little-endian. The file holds no `__metadata__`.
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
/// If `net.params()` or `net.buffers()` is shorter than the layout in [`Network::PARAMS`] or
/// [`Network::BUFFERS`] says: a bug in the `Network` implementation, not in any file.
pub fn save_safetensors<N: Network>(net: &N, path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    let bytes = safetensors::serialize(state_dict(net), &None).map_err(|e| Error::Safetensors {
        path: path.to_path_buf(),
        reason: describe(&e),
    })?;
    write_atomically(path, &bytes)
}

/// Reads a network from the safetensors file at `path`.
///
/// The file must hold exactly the tensors of a `state_dict` for `N`: every parameter
/// ([`Network::PARAMS`]) and every buffer ([`Network::BUFFERS`]) with its name and shape and
/// dtype `F32`, optionally each BatchNorm's `num_batches_tracked` (an `I64` scalar), and
/// nothing else. The network is built with [`Network::from_params`], then given the file's
/// buffers and, if the file holds `num_batches_tracked`, its step count (the largest, if they
/// differ).
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
/// order, then buffers in [`Network::BUFFERS`] order, then step counters; extra tensors in
/// name order):
///
/// - [`Error::Io`] if the file cannot be read;
/// - [`Error::Safetensors`] if it is not a valid safetensors file (truncated, damaged header,
///   offsets that do not match the shapes, ...);
/// - [`Error::MissingTensor`] if a parameter or a buffer has no tensor;
/// - [`Error::UnexpectedTensor`] if a tensor is none of the network's;
/// - [`Error::DtypeMismatch`] if a parameter's or buffer's dtype is not `F32`, or a
///   `num_batches_tracked`'s is not `I64`;
/// - [`Error::ShapeMismatch`] if a tensor's shape is not the declared one (`[]` for
///   `num_batches_tracked`);
/// - [`Error::Safetensors`] if a parameter or buffer holds a NaN or an infinity, or a
///   `running_var` a negative value, naming the tensor and the index of the first one; or if a
///   `num_batches_tracked` is negative.
///
/// Before any of these, [`Error::Safetensors`] if the file is larger than any file for `N`
/// could be, or its header breaks the limits in the [module docs](self#untrusted-files).
pub fn load_safetensors<N: Network>(path: impl AsRef<Path>) -> Result<N, Error> {
    let path = path.as_ref();
    let bytes = read_bounded::<N>(path)?;
    Ok(parse::<N>(path, &bytes)?.to_network())
}

/// Reads the safetensors file at `path` into the parameters, buffers and step count of `net`,
/// in place.
///
/// The same checks as [`load_safetensors`], without allocating a new network. The whole
/// file is checked before anything is written, so on error `net` is left unchanged. The step
/// count ([`TrainState::steps`]) becomes the file's `num_batches_tracked`, and is left as it
/// was if the file holds none; the seed is kept.
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
/// If `net.params_mut()` or `net.buffers_mut()` is shorter than the layout in
/// [`Network::PARAMS`] or [`Network::BUFFERS`] says: a bug in the `Network` implementation,
/// not in any file.
pub fn load_safetensors_into<N: Network>(net: &mut N, path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    check_layout(N::PARAMS, net.params().len(), "PARAMS", "parameters");
    check_layout(N::BUFFERS, net.buffers().len(), "BUFFERS", "buffer elements");
    let bytes = read_bounded::<N>(path)?;
    parse::<N>(path, &bytes)?.write_into(net);
    Ok(())
}

/// The tensors of `net`'s `state_dict`, as [`save_safetensors`] writes them: parameters and
/// buffers in layout order, then the step counters.
pub(crate) fn state_dict<N: Network>(net: &N) -> Vec<(String, Tensor)> {
    let (params, buffers) = (net.params(), net.buffers());
    check_layout(N::PARAMS, params.len(), "PARAMS", "parameters");
    check_layout(N::BUFFERS, buffers.len(), "BUFFERS", "buffer elements");
    // PyTorch counts in an int64; a count past it (never reached) is written as its maximum.
    let steps = i64::try_from(net.train_state().steps).unwrap_or(i64::MAX);
    let values = |layout: &'static [ParamInfo], values: &[f32]| {
        layout
            .iter()
            .map(|info| (info.name.to_owned(), Tensor::f32s(info.shape, &values[info.range()])))
            .collect::<Vec<_>>()
    };
    let mut tensors = values(N::PARAMS, params);
    tensors.extend(values(N::BUFFERS, buffers));
    tensors.extend(step_counters::<N>().map(|name| (name, Tensor::i64_scalar(steps))));
    tensors
}

/// The step counters a `state_dict` of `N` holds: `X.num_batches_tracked` for every buffer
/// `X.running_mean`, in [`Network::BUFFERS`] order.
fn step_counters<N: Network>() -> impl Iterator<Item = String> {
    N::BUFFERS
        .iter()
        .filter_map(|info| info.name.strip_suffix(RUNNING_MEAN))
        .map(|bn| format!("{bn}{NUM_BATCHES_TRACKED}"))
}

/// How many tensors a `state_dict` of `N` holds at most, and which, for messages: `6
/// parameters`, or `3 parameters, 2 buffers and 1 step counter`.
fn tensor_count<N: Network>() -> (usize, String) {
    let (params, buffers, counters) = (N::PARAMS.len(), N::BUFFERS.len(), step_counters::<N>().count());
    let count = |n: usize, noun: &str| format!("{n} {noun}{}", if n == 1 { "" } else { "s" });
    let which = match buffers {
        0 => count(params, "parameter"),
        _ => format!(
            "{}, {} and {}",
            count(params, "parameter"),
            count(buffers, "buffer"),
            count(counters, "step counter")
        ),
    };
    (params + buffers + counters, which)
}

/// A file's tensors for network `N` once every check has passed: the views in layout order,
/// and the step count.
pub(crate) struct Checked<'data> {
    /// One per entry of [`Network::PARAMS`].
    params: Vec<TensorView<'data>>,
    /// One per entry of [`Network::BUFFERS`].
    buffers: Vec<TensorView<'data>>,
    /// The largest `num_batches_tracked`, if the file holds any.
    steps: Option<u64>,
}

impl Checked<'_> {
    /// A network holding the file's state: built from its parameters with
    /// [`Network::from_params`], then given its buffers and step count. The parameter buffer is
    /// allocated only now, once the file has passed every check, so a damaged file costs no more
    /// memory than its own size.
    pub(crate) fn to_network<N: Network>(&self) -> N {
        let mut params = vec![0.0; N::PARAM_COUNT];
        check_layout(N::PARAMS, params.len(), "PARAMS", "parameters");
        decode(&self.params, N::PARAMS, &mut params);
        let mut net = N::from_params(&params);
        check_layout(N::BUFFERS, net.buffers().len(), "BUFFERS", "buffer elements");
        self.write_state(&mut net);
        net
    }

    /// Writes the file's parameters, buffers and step count into `net`.
    fn write_into<N: Network>(&self, net: &mut N) {
        decode(&self.params, N::PARAMS, net.params_mut());
        self.write_state(net);
    }

    /// Writes the buffers and, if the file has one, the step count (keeping the seed).
    fn write_state<N: Network>(&self, net: &mut N) {
        decode(&self.buffers, N::BUFFERS, net.buffers_mut());
        if let Some(steps) = self.steps {
            let seed = net.train_state().seed;
            net.set_train_state(TrainState { seed, steps });
        }
    }
}

/// Reads the whole file, refusing before reading it whatever is larger than any file for `N`
/// could be: the 8-byte length prefix, a header of at most [`MAX_HEADER_LEN`], and at most
/// [`MAX_DTYPE_BYTES`] per parameter, buffer element and step counter (tensors of the right
/// shapes in a wrong dtype still get their own, more precise, error). The buffer is the
/// file's size, no more.
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
    let values = (N::PARAM_COUNT as u64)
        .saturating_add(N::BUFFER_COUNT as u64)
        .saturating_add(step_counters::<N>().count() as u64);
    let data_limit = (MAX_DTYPE_BYTES as u64).saturating_mul(values);
    let limit = (8 + header_len).saturating_add(data_limit);
    let per = match N::BUFFERS {
        [] => "per parameter",
        _ => "per parameter, buffer element and step counter",
    };
    let too_large = |len: u64| {
        invalid(format!(
            "the file is {len} bytes long, but a file for this network holds a {header_len}-byte \
             header and at most {data_limit} bytes of data ({MAX_DTYPE_BYTES} {per})"
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

/// Checks the header's structure, parses the file and checks it against the layout of `N`.
fn parse<'data, N: Network>(path: &Path, bytes: &'data [u8]) -> Result<Checked<'data>, Error> {
    let invalid = |reason: String| Error::Safetensors {
        path: path.to_path_buf(),
        reason,
    };
    // `read_bounded` has checked the prefix; a header reaching past the end of the file is
    // left for `deserialize` to report.
    let (tensors, which) = tensor_count::<N>();
    let file = rules::parse(bytes, tensors, &which).map_err(invalid)?;
    check_state::<N>(path, &file, &[])
}

/// The strict `load_state_dict` rule and the checks of the values, on a parsed file (`path`
/// only names it in errors). `also` names tensors the file may hold besides the network's (a
/// checkpoint's optimizer state): they are allowed, and neither checked nor returned.
///
/// The order of the checks makes the reported error deterministic: every missing tensor
/// before any unexpected one (a file from another network is best explained by what it
/// lacks), unexpected names sorted, then dtype and shape per tensor in layout order
/// (parameters, buffers, step counters), then the values in the same order.
pub(crate) fn check_state<'data, N: Network>(
    path: &Path,
    file: &SafeTensors<'data>,
    also: &[&str],
) -> Result<Checked<'data>, Error> {
    let params = required(path, file, N::PARAMS)?;
    let buffers = required(path, file, N::BUFFERS)?;
    let counters: Vec<String> = step_counters::<N>().collect();

    let known: HashSet<&str> = (N::PARAMS.iter().chain(N::BUFFERS).map(|info| info.name))
        .chain(counters.iter().map(String::as_str))
        .chain(also.iter().copied())
        .collect();
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

    check_dtype_and_shape(path, N::PARAMS, &params)?;
    check_dtype_and_shape(path, N::BUFFERS, &buffers)?;
    let counters: Vec<(&str, TensorView<'data>)> = counters
        .iter()
        .filter_map(|name| Some((name.as_str(), file.tensor(name).ok()?)))
        .collect();
    for (name, view) in &counters {
        check_tensor(path, name, view, Dtype::I64, &[])?;
    }

    check_values(path, N::PARAMS, &params, "weights must be finite")?;
    check_values(path, N::BUFFERS, &buffers, "running statistics must be finite")?;
    let mut steps = None;
    for (name, view) in &counters {
        let count = read_step_counter(path, name, view)?;
        steps = steps.max(Some(count));
    }
    Ok(Checked { params, buffers, steps })
}

/// The tensor of every entry of `layout`, in order; [`Error::MissingTensor`] for the first
/// absent one.
fn required<'data>(
    path: &Path,
    file: &SafeTensors<'data>,
    layout: &[ParamInfo],
) -> Result<Vec<TensorView<'data>>, Error> {
    layout
        .iter()
        .map(|info| {
            file.tensor(info.name).map_err(|_| Error::MissingTensor {
                path: path.to_path_buf(),
                tensor: info.name.to_owned(),
                expected: info.shape.to_vec(),
            })
        })
        .collect()
}

/// Each view has dtype `F32` and its entry's shape.
fn check_dtype_and_shape(path: &Path, layout: &[ParamInfo], views: &[TensorView<'_>]) -> Result<(), Error> {
    for (info, view) in layout.iter().zip(views) {
        check_tensor(path, info.name, view, Dtype::F32, info.shape)?;
    }
    Ok(())
}

/// [`Error::DtypeMismatch`] or [`Error::ShapeMismatch`] unless `view` is a `dtype` tensor of
/// `shape`.
fn check_tensor(path: &Path, name: &str, view: &TensorView<'_>, dtype: Dtype, shape: &[usize]) -> Result<(), Error> {
    if view.dtype() != dtype {
        return Err(Error::DtypeMismatch {
            path: path.to_path_buf(),
            tensor: name.to_owned(),
            expected: format!("{dtype:?}"),
            got: format!("{:?}", view.dtype()),
        });
    }
    if view.shape() != shape {
        return Err(Error::ShapeMismatch {
            path: path.to_path_buf(),
            tensor: name.to_owned(),
            expected: shape.to_vec(),
            got: view.shape().to_vec(),
        });
    }
    Ok(())
}

/// Refuses a non-finite value in any tensor of `layout` (`rule` says why), and a negative one
/// in a `running_var`, naming the tensor and the position of the first one.
fn check_values(path: &Path, layout: &[ParamInfo], views: &[TensorView<'_>], rule: &str) -> Result<(), Error> {
    let invalid = |reason: String| Error::Safetensors {
        path: path.to_path_buf(),
        reason,
    };
    for (info, view) in layout.iter().zip(views) {
        let data = view.data();
        // `deserialize` has checked that each tensor's byte range matches its shape and
        // dtype, and `check_tensor` that shape and dtype are the layout's; checked again here
        // so that no file can make the decoding in `decode` panic.
        if data.len() != info.len() * 4 {
            return Err(invalid(format!(
                "tensor `{}` holds {} bytes, but its shape {:?} needs {}",
                info.name,
                data.len(),
                info.shape,
                info.len() * 4
            )));
        }
        // A trained network has only finite weights and statistics, and one NaN spreads to
        // every output it touches: refuse it here, naming where it is, rather than predict
        // garbage later. A variance below zero would make BatchNorm take the square root of
        // a negative number at inference: the same damage.
        if let Some((index, value)) = rules::first_bad_value(info.name, data) {
            let rule = if value.is_finite() {
                "a variance cannot be negative"
            } else {
                rule
            };
            return Err(invalid(format!(
                "tensor `{}` holds {value} at index {:?} (element {index} of {}); {rule}",
                info.name,
                unravel(index, info.shape),
                info.len()
            )));
        }
    }
    Ok(())
}

/// The value of a checked `num_batches_tracked` (an `I64` scalar), which must not be negative.
fn read_step_counter(path: &Path, name: &str, view: &TensorView<'_>) -> Result<u64, Error> {
    let invalid = |reason: String| Error::Safetensors {
        path: path.to_path_buf(),
        reason,
    };
    let Ok(bytes) = <[u8; 8]>::try_from(view.data()) else {
        return Err(invalid(format!(
            "tensor `{name}` holds {} bytes, but an I64 scalar needs 8",
            view.data().len()
        )));
    };
    let count = i64::from_le_bytes(bytes);
    u64::try_from(count).map_err(|_| {
        invalid(format!(
            "tensor `{name}` holds {count}; a count of training steps cannot be negative"
        ))
    })
}

/// Writes the checked views into `values`.
fn decode(views: &[TensorView<'_>], layout: &[ParamInfo], values: &mut [f32]) {
    for (info, view) in layout.iter().zip(views) {
        // The data section is not necessarily 4-byte aligned, so decode chunk by chunk
        // rather than reinterpreting the bytes.
        for (dst, chunk) in values[info.range()].iter_mut().zip(view.data().chunks_exact(4)) {
            *dst = f32_le(chunk);
        }
    }
}

/// A network whose layout table reaches past its buffer is a bug in its `Network`
/// implementation; caught here with a clear message instead of an index panic deep in a loop.
fn check_layout(layout: &[ParamInfo], len: usize, table: &str, what: &str) {
    let needed = layout.iter().map(|info| info.range().end).max().unwrap_or(0);
    assert!(
        needed <= len,
        "Network::{table} describes {needed} {what}, but the buffer holds {len}"
    );
}

/// One tensor ready to serialize: its bytes already little-endian.
pub(crate) struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Tensor {
    /// An `F32` tensor of `shape` holding `values`.
    pub(crate) fn f32s(shape: &[usize], values: &[f32]) -> Self {
        Tensor {
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            bytes: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// An `I64` scalar (shape `[]`).
    fn i64_scalar(value: i64) -> Self {
        Tensor {
            dtype: Dtype::I64,
            shape: Vec::new(),
            bytes: value.to_le_bytes().to_vec(),
        }
    }
}

impl View for Tensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// [`crate::atomic::write_atomically`], its error naming the file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::atomic::write_atomically(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs;

    /// `layout` laid out back to back from offset 0, as `cnn!` lays out its flat buffers.
    const fn packed<const K: usize>(layout: [(&'static str, &'static [usize]); K]) -> [ParamInfo; K] {
        let mut out = [ParamInfo {
            name: "",
            shape: &[],
            offset: 0,
        }; K];
        let (mut i, mut offset) = (0, 0);
        while i < K {
            out[i] = ParamInfo {
                name: layout[i].0,
                shape: layout[i].1,
                offset,
            };
            offset += out[i].len();
            i += 1;
        }
        out
    }

    /// The number of values of a layout table.
    const fn total(layout: &[ParamInfo]) -> usize {
        let (mut i, mut n) = (0, 0);
        while i < layout.len() {
            n += layout[i].len();
            i += 1;
        }
        n
    }

    /// A network that is only a layout of parameters and buffers, and a [`TrainState`] (its
    /// passes are never called): all that weight I/O needs, written out by hand so these tests
    /// do not depend on the macro. Buffers start as `from_params` documents: running means 0,
    /// running variances 1.
    macro_rules! layout_only {
        (
            $(#[$meta:meta])*
            $name:ident {
                params: [$(($param:literal, $param_shape:expr)),* $(,)?],
                buffers: [$(($buffer:literal, $buffer_shape:expr)),* $(,)?] $(,)?
            }
        ) => {
            $(#[$meta])*
            struct $name {
                params: Vec<f32>,
                buffers: Vec<f32>,
                state: TrainState,
            }

            impl Network for $name {
                const INPUT_SHAPE: &'static [usize] = &[1];
                const INPUT_LEN: usize = 1;
                const OUTPUT_LEN: usize = 1;
                const PARAM_COUNT: usize = total(Self::PARAMS);
                const PARAMS: &'static [ParamInfo] = &packed([$(($param, &$param_shape)),*]);
                const BUFFER_COUNT: usize = total(Self::BUFFERS);
                const BUFFERS: &'static [ParamInfo] = &packed([$(($buffer, &$buffer_shape)),*]);

                fn from_params(params: &[f32]) -> Self {
                    assert_eq!(params.len(), Self::PARAM_COUNT);
                    let mut buffers = vec![0.0; Self::BUFFER_COUNT];
                    for info in Self::BUFFERS.iter().filter(|b| b.name.ends_with(".running_var")) {
                        buffers[info.range()].fill(1.0);
                    }
                    $name {
                        params: params.to_vec(),
                        buffers,
                        state: TrainState::default(),
                    }
                }
                fn params(&self) -> &[f32] {
                    &self.params
                }
                fn params_mut(&mut self) -> &mut [f32] {
                    &mut self.params
                }
                fn buffers(&self) -> &[f32] {
                    &self.buffers
                }
                fn buffers_mut(&mut self) -> &mut [f32] {
                    &mut self.buffers
                }
                fn train_state(&self) -> TrainState {
                    self.state
                }
                fn set_train_state(&mut self, state: TrainState) {
                    self.state = state;
                }
                fn forward_batch(&self, _: &[f32], _: &mut [f32]) {
                    unimplemented!()
                }
                fn loss_and_grad(&mut self, _: &[f32], _: &[u32], _: &mut [f32]) -> f32 {
                    unimplemented!()
                }
            }
        };
    }

    layout_only! {
        /// One dense layer `fc` from 4 inputs to 3 outputs.
        #[derive(Debug)]
        Tiny {
            params: [("fc.weight", [3, 4]), ("fc.bias", [3])],
            buffers: [],
        }
    }

    layout_only! {
        /// `fc: Dense(3, bias = false)` then `bn: BatchNorm1d`.
        #[derive(Debug)]
        TinyBn {
            params: [("fc.weight", [3, 4]), ("bn.weight", [3]), ("bn.bias", [3])],
            buffers: [("bn.running_mean", [3]), ("bn.running_var", [3])],
        }
    }

    layout_only! {
        /// Two BatchNorms without affine parameters around a dense layer.
        TwoBn {
            params: [("fc.weight", [2, 2])],
            buffers: [
                ("bn1.running_mean", [2]),
                ("bn1.running_var", [2]),
                ("bn2.running_mean", [2]),
                ("bn2.running_var", [2]),
            ],
        }
    }

    layout_only! {
        /// LeNet-5's parameter layout, as `cnn!` generates it for the README's declaration.
        LeNet5 {
            params: [
                ("conv1.weight", [6, 1, 5, 5]),
                ("conv1.bias", [6]),
                ("conv2.weight", [16, 6, 5, 5]),
                ("conv2.bias", [16]),
                ("fc1.weight", [120, 400]),
                ("fc1.bias", [120]),
                ("fc2.weight", [84, 120]),
                ("fc2.bias", [84]),
                ("fc3.weight", [10, 84]),
                ("fc3.bias", [10]),
            ],
            buffers: [],
        }
    }

    layout_only! {
        /// The layout `cnn!` generates for `tests/golden/resnet_tiny/declaration.rs`:
        /// parameters and buffers in declaration order, groups as dotted paths.
        ResNetTiny {
            params: [
                ("conv1.weight", [8, 3, 3, 3]),
                ("bn1.weight", [8]),
                ("bn1.bias", [8]),
                ("layer1.0.conv1.weight", [8, 8, 3, 3]),
                ("layer1.0.bn1.weight", [8]),
                ("layer1.0.bn1.bias", [8]),
                ("layer1.0.conv2.weight", [8, 8, 3, 3]),
                ("layer1.0.bn2.weight", [8]),
                ("layer1.0.bn2.bias", [8]),
                ("layer2.0.conv1.weight", [16, 8, 3, 3]),
                ("layer2.0.bn1.weight", [16]),
                ("layer2.0.bn1.bias", [16]),
                ("layer2.0.conv2.weight", [16, 16, 3, 3]),
                ("layer2.0.bn2.weight", [16]),
                ("layer2.0.bn2.bias", [16]),
                ("layer2.0.downsample.0.weight", [16, 8, 1, 1]),
                ("layer2.0.downsample.1.weight", [16]),
                ("layer2.0.downsample.1.bias", [16]),
                ("fc.weight", [10, 16]),
                ("fc.bias", [10]),
            ],
            buffers: [
                ("bn1.running_mean", [8]),
                ("bn1.running_var", [8]),
                ("layer1.0.bn1.running_mean", [8]),
                ("layer1.0.bn1.running_var", [8]),
                ("layer1.0.bn2.running_mean", [8]),
                ("layer1.0.bn2.running_var", [8]),
                ("layer2.0.bn1.running_mean", [16]),
                ("layer2.0.bn1.running_var", [16]),
                ("layer2.0.bn2.running_mean", [16]),
                ("layer2.0.bn2.running_var", [16]),
                ("layer2.0.downsample.1.running_mean", [16]),
                ("layer2.0.downsample.1.running_var", [16]),
            ],
        }
    }

    layout_only! {
        /// The layout of `tests/golden/bn_mlp/declaration.rs` (`fc1` without bias).
        BnMlp {
            params: [
                ("fc1.weight", [32, 20]),
                ("bn1.weight", [32]),
                ("bn1.bias", [32]),
                ("fc2.weight", [16, 32]),
                ("fc2.bias", [16]),
                ("fc3.weight", [5, 16]),
                ("fc3.bias", [5]),
            ],
            buffers: [("bn1.running_mean", [32]), ("bn1.running_var", [32])],
        }
    }

    layout_only! {
        /// The layout of `tests/golden/depthwise/declaration.rs`: its BatchNorm2d has
        /// `affine = false`, so buffers but no parameters.
        Depthwise {
            params: [
                ("dw.weight", [8, 1, 3, 3]),
                ("pw.weight", [12, 8, 1, 1]),
                ("pw.bias", [12]),
                ("fc.weight", [6, 108]),
                ("fc.bias", [6]),
            ],
            buffers: [("bn.running_mean", [8]), ("bn.running_var", [8])],
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
        Tiny::from_params(&params)
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

        let mut into = Tiny::from_params(&[9.0; 15]);
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
        let mut net = Tiny::from_params(&[7.0; 15]);
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

            let mut into = Tiny::from_params(&[7.0; 15]);
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
        assert!(msg.contains("at most 120 bytes of data (8 per parameter)"), "{msg}");
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
                "more than 67 entries, but the network has 2 parameters",
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

    /// `tests/golden` of the repository (a copy of `../shared/golden`): PyTorch's files for the
    /// modern cases.
    const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden");

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|x| x.to_bits()).collect()
    }

    /// A `TinyBn` with distinct values everywhere (a negative running mean, a zero and a
    /// subnormal running variance), 12 steps taken, seed 9.
    fn tiny_bn() -> TinyBn {
        let params: Vec<f32> = (0..18).map(|i| i as f32 / 4.0 - 2.0).collect();
        let mut net = TinyBn::from_params(&params);
        net.buffers = vec![0.5, -1.25, 3.0, 0.0, 2.5, f32::MIN_POSITIVE / 2.0];
        net.state = TrainState { seed: 9, steps: 12 };
        net
    }

    /// One tensor of a file to write: name, dtype, shape, raw little-endian bytes.
    type Raw = (&'static str, Dtype, Vec<usize>, Vec<u8>);

    /// Writes a valid file for `TinyBn` (its step counter 5) after `edit` has broken it.
    fn write_tiny_bn(path: &Path, edit: impl FnOnce(&mut Vec<Raw>)) {
        let mut tensors: Vec<Raw> = vec![
            ("fc.weight", Dtype::F32, vec![3, 4], f32_bytes(12)),
            ("bn.weight", Dtype::F32, vec![3], f32_bytes(3)),
            ("bn.bias", Dtype::F32, vec![3], f32_bytes(3)),
            ("bn.running_mean", Dtype::F32, vec![3], f32_bytes(3)),
            ("bn.running_var", Dtype::F32, vec![3], f32_bytes(3)),
            (
                "bn.num_batches_tracked",
                Dtype::I64,
                vec![],
                5i64.to_le_bytes().to_vec(),
            ),
        ];
        edit(&mut tensors);
        let entries: Vec<(&str, Dtype, &[usize], Vec<u8>)> = tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| (*name, *dtype, shape.as_slice(), bytes.clone()))
            .collect();
        write_raw(path, &entries);
    }

    /// Whether `net` is still `tiny_bn()`, bit for bit.
    fn is_tiny_bn(net: &TinyBn) -> bool {
        let want = tiny_bn();
        bits(&net.params) == bits(&want.params) && bits(&net.buffers) == bits(&want.buffers) && net.state == want.state
    }

    #[test]
    fn round_trip_keeps_params_buffers_and_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bn.safetensors");
        let net = tiny_bn();
        save_safetensors(&net, &path).unwrap();

        let back: TinyBn = load_safetensors(&path).unwrap();
        assert_eq!(bits(&back.params), bits(&net.params));
        assert_eq!(bits(&back.buffers), bits(&net.buffers));
        // The steps come from `num_batches_tracked`; the seed is not part of a `state_dict`, so
        // a new network has `from_params`' seed.
        assert_eq!(back.state, TrainState { seed: 0, steps: 12 });

        let mut into = TinyBn::from_params(&[9.0; 18]);
        into.state = TrainState { seed: 77, steps: 3 };
        load_safetensors_into(&mut into, &path).unwrap();
        assert_eq!(bits(&into.params), bits(&net.params));
        assert_eq!(bits(&into.buffers), bits(&net.buffers));
        assert_eq!(into.state, TrainState { seed: 77, steps: 12 });
    }

    #[test]
    fn save_writes_the_state_dict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bn.safetensors");
        let net = tiny_bn();
        save_safetensors(&net, &path).unwrap();

        let bytes = fs::read(&path).unwrap();
        let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        assert!(metadata.metadata().is_none());
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = file.names();
        names.sort();
        assert_eq!(
            names,
            [
                "bn.bias",
                "bn.num_batches_tracked",
                "bn.running_mean",
                "bn.running_var",
                "bn.weight",
                "fc.weight"
            ]
        );
        let var = file.tensor("bn.running_var").unwrap();
        assert_eq!((var.dtype(), var.shape()), (Dtype::F32, &[3][..]));
        let want: Vec<u8> = net.buffers[3..].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(var.data(), want);
        // PyTorch's `num_batches_tracked`: an int64 scalar, the steps taken.
        let counter = file.tensor("bn.num_batches_tracked").unwrap();
        assert_eq!((counter.dtype(), counter.shape()), (Dtype::I64, &[][..]));
        assert_eq!(counter.data(), 12i64.to_le_bytes());
    }

    #[test]
    fn missing_buffer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.safetensors");
        write_tiny_bn(&path, |t| t.retain(|e| e.0 != "bn.running_var"));
        let err = load_safetensors::<TinyBn>(&path).unwrap_err();
        match &err {
            Error::MissingTensor { tensor, expected, .. } => {
                assert_eq!(tensor, "bn.running_var");
                assert_eq!(expected, &[3]);
            }
            other => panic!("expected MissingTensor, got {other:?}"),
        }
        assert!(err.to_string().contains("`bn.running_var`"), "{err}");

        // Parameters are reported before buffers.
        write_tiny_bn(&path, |t| t.retain(|e| e.0 != "bn.running_mean" && e.0 != "bn.bias"));
        let err = load_safetensors::<TinyBn>(&path).unwrap_err();
        assert!(
            matches!(&err, Error::MissingTensor { tensor, .. } if tensor == "bn.bias"),
            "{err:?}"
        );
        let mut net = tiny_bn();
        load_safetensors_into(&mut net, &path).unwrap_err();
        assert!(is_tiny_bn(&net));
    }

    #[test]
    fn absent_step_counter_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-counter.safetensors");
        write_tiny_bn(&path, |t| t.retain(|e| e.0 != "bn.num_batches_tracked"));

        let net: TinyBn = load_safetensors(&path).unwrap();
        assert_eq!(net.buffers, [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
        assert_eq!(net.state, TrainState::default());

        // Loaded into a network, the step count is left as it was.
        let mut into = tiny_bn();
        load_safetensors_into(&mut into, &path).unwrap();
        assert_eq!(into.buffers, [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
        assert_eq!(into.state, TrainState { seed: 9, steps: 12 });
    }

    #[test]
    fn step_counter_must_be_a_non_negative_i64_scalar() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter.safetensors");
        let cases: [(Dtype, Vec<usize>, Vec<u8>, &str); 5] = [
            (
                Dtype::F32,
                vec![],
                5f32.to_le_bytes().to_vec(),
                "has dtype F32, expected I64",
            ),
            (
                Dtype::I32,
                vec![],
                5i32.to_le_bytes().to_vec(),
                "has dtype I32, expected I64",
            ),
            (
                Dtype::F64,
                vec![],
                5f64.to_le_bytes().to_vec(),
                "has dtype F64, expected I64",
            ),
            // PyTorch writes a scalar; `[1]` is another shape.
            (
                Dtype::I64,
                vec![1],
                5i64.to_le_bytes().to_vec(),
                "has shape [1], but the network declares []",
            ),
            (
                Dtype::I64,
                vec![],
                (-3i64).to_le_bytes().to_vec(),
                "holds -3; a count of training steps cannot be negative",
            ),
        ];
        for (dtype, shape, bytes, want) in cases {
            write_tiny_bn(&path, |t| {
                t[5] = ("bn.num_batches_tracked", dtype, shape.clone(), bytes)
            });
            let err = load_safetensors::<TinyBn>(&path).unwrap_err();
            match (&err, dtype, shape.as_slice()) {
                (Error::DtypeMismatch { tensor, expected, .. }, _, _) => {
                    assert_eq!((tensor.as_str(), expected.as_str()), ("bn.num_batches_tracked", "I64"))
                }
                (Error::ShapeMismatch { expected, got, .. }, Dtype::I64, [1]) => {
                    assert_eq!((expected.as_slice(), got.as_slice()), (&[][..], &[1][..]))
                }
                (Error::Safetensors { .. }, Dtype::I64, []) => {}
                _ => panic!("{dtype:?} {shape:?}: {err:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(&format!("`bn.num_batches_tracked` {want}")), "{msg}");

            let mut net = tiny_bn();
            load_safetensors_into(&mut net, &path).unwrap_err();
            assert!(is_tiny_bn(&net), "{want}");
        }
    }

    #[test]
    fn largest_step_count_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.safetensors");
        let counter = |steps: i64| steps.to_le_bytes().to_vec();
        let mut tensors = vec![
            ("fc.weight", Dtype::F32, &[2, 2][..], f32_bytes(4)),
            ("bn1.running_mean", Dtype::F32, &[2][..], f32_bytes(2)),
            ("bn1.running_var", Dtype::F32, &[2][..], f32_bytes(2)),
            ("bn2.running_mean", Dtype::F32, &[2][..], f32_bytes(2)),
            ("bn2.running_var", Dtype::F32, &[2][..], f32_bytes(2)),
            ("bn2.num_batches_tracked", Dtype::I64, &[][..], counter(4)),
        ];
        write_raw(&path, &tensors);
        assert_eq!(load_safetensors::<TwoBn>(&path).unwrap().state.steps, 4);
        tensors.push(("bn1.num_batches_tracked", Dtype::I64, &[][..], counter(11)));
        write_raw(&path, &tensors);
        assert_eq!(load_safetensors::<TwoBn>(&path).unwrap().state.steps, 11);
    }

    #[test]
    fn unexpected_step_counter_or_buffer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extra.safetensors");
        // A step counter of a BatchNorm the network does not have.
        write_tiny_bn(&path, |t| {
            t.push((
                "bn2.num_batches_tracked",
                Dtype::I64,
                vec![],
                0i64.to_le_bytes().to_vec(),
            ))
        });
        let err = load_safetensors::<TinyBn>(&path).unwrap_err();
        assert!(
            matches!(&err, Error::UnexpectedTensor { tensor, .. } if tensor == "bn2.num_batches_tracked"),
            "{err:?}"
        );
        let mut net = tiny_bn();
        load_safetensors_into(&mut net, &path).unwrap_err();
        assert!(is_tiny_bn(&net));

        // A network without BatchNorm has no buffers and no step counter.
        write_raw(
            &path,
            &[
                ("fc.weight", Dtype::F32, &[3, 4], f32_bytes(12)),
                ("fc.bias", Dtype::F32, &[3], f32_bytes(3)),
                ("fc.num_batches_tracked", Dtype::I64, &[], 0i64.to_le_bytes().to_vec()),
            ],
        );
        let err = load_safetensors::<Tiny>(&path).unwrap_err();
        assert!(
            matches!(&err, Error::UnexpectedTensor { tensor, .. } if tensor == "fc.num_batches_tracked"),
            "{err:?}"
        );
    }

    #[test]
    fn wrong_buffer_dtype_or_shape_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("buffer.safetensors");
        let f64s: Vec<u8> = (0..3).flat_map(|i| f64::from(i).to_le_bytes()).collect();
        write_tiny_bn(&path, |t| t[3] = ("bn.running_mean", Dtype::F64, vec![3], f64s));
        let err = load_safetensors::<TinyBn>(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("`bn.running_mean` has dtype F64, expected F32"),
            "{err}"
        );

        write_tiny_bn(&path, |t| {
            t[4] = ("bn.running_var", Dtype::F32, vec![1, 3], f32_bytes(3))
        });
        let err = load_safetensors::<TinyBn>(&path).unwrap_err();
        assert!(
            matches!(&err, Error::ShapeMismatch { tensor, .. } if tensor == "bn.running_var"),
            "{err:?}"
        );
    }

    #[test]
    fn non_finite_buffers_and_negative_variances_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("buffers.safetensors");
        let cases = [
            (
                1,
                f32::NAN,
                "`bn.running_mean` holds NaN at index [1] (element 1 of 3); running statistics must be finite",
            ),
            (
                5,
                f32::INFINITY,
                "`bn.running_var` holds inf at index [2] (element 2 of 3); running statistics must be finite",
            ),
            (
                4,
                -0.5,
                "`bn.running_var` holds -0.5 at index [1] (element 1 of 3); a variance cannot be negative",
            ),
        ];
        for (at, value, want) in cases {
            let mut net = tiny_bn();
            net.buffers[at] = value;
            // Saving writes the value as it is...
            save_safetensors(&net, &path).unwrap();
            // ...but loading refuses it, naming the tensor and the index.
            let err = load_safetensors::<TinyBn>(&path).unwrap_err();
            assert!(matches!(err, Error::Safetensors { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(want), "{msg}");

            let mut into = tiny_bn();
            load_safetensors_into(&mut into, &path).unwrap_err();
            assert!(is_tiny_bn(&into), "{want}");
        }

        // A negative running mean is fine, and so is a variance of -0.
        let mut net = tiny_bn();
        net.buffers[3] = -0.0;
        save_safetensors(&net, &path).unwrap();
        let back: TinyBn = load_safetensors(&path).unwrap();
        assert_eq!(bits(&back.buffers), bits(&net.buffers));
    }

    #[test]
    fn size_bound_counts_buffers_and_step_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large.safetensors");
        // 18 parameters, 6 buffer elements and 1 step counter: at most 200 data bytes.
        save_safetensors(&tiny_bn(), &path).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes.resize(bytes.len() + 200, 0);
        fs::write(&path, &bytes).unwrap();
        let msg = load_safetensors::<TinyBn>(&path).unwrap_err().to_string();
        assert!(
            msg.contains("at most 200 bytes of data (8 per parameter, buffer element and step counter)"),
            "{msg}"
        );

        // Every tensor in an 8-byte dtype is exactly that bound: read, and reported as a
        // dtype mismatch.
        write_tiny_bn(&path, |t| {
            for (_, dtype, shape, bytes) in t.iter_mut().filter(|e| e.1 == Dtype::F32) {
                *dtype = Dtype::F64;
                *bytes = vec![0; 8 * shape.iter().product::<usize>()];
            }
        });
        let err = load_safetensors::<TinyBn>(&path).unwrap_err();
        assert!(
            matches!(&err, Error::DtypeMismatch { tensor, .. } if tensor == "fc.weight"),
            "{err:?}"
        );
    }

    #[test]
    fn header_entry_limit_counts_buffers_and_step_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("header.safetensors");
        let header = |n: usize| {
            let entries: Vec<String> = (0..n)
                .map(|i| format!(r#""t{i}":{{"dtype":"F32","shape":[],"data_offsets":[0,0]}}"#))
                .collect();
            let json = format!("{{{}}}", entries.join(","));
            let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(json.as_bytes());
            bytes
        };
        // TinyBn has 6 tensors: 6 + `__metadata__` + 64 entries pass the structure check (and
        // fail later, on their own), one more does not.
        fs::write(&path, header(71)).unwrap();
        let msg = load_safetensors::<TinyBn>(&path).unwrap_err().to_string();
        assert!(!msg.contains("entries"), "{msg}");
        fs::write(&path, header(72)).unwrap();
        let msg = load_safetensors::<TinyBn>(&path).unwrap_err().to_string();
        assert!(
            msg.contains("more than 71 entries, but the network has 3 parameters, 2 buffers and 1 step counter"),
            "{msg}"
        );
    }

    /// `../shared/golden/{resnet_tiny,bn_mlp,depthwise}/weights.safetensors` were written by
    /// `safetensors.torch.save_file(model.state_dict(), path)` (`../shared/golden/README.md`):
    /// random parameters and running statistics, every `num_batches_tracked` 7. They load as
    /// they are, and saved again they give the same tensors, byte for byte: what PyTorch wrote
    /// is what PyTorch reads back with `strict=True`.
    #[test]
    fn pytorch_state_dicts_load_and_save_back_unchanged() {
        fn check<N: Network>(case: &str) {
            let path = Path::new(GOLDEN).join(case).join("weights.safetensors");
            let theirs = fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; the golden files of ../shared must be beside the repository",
                    path.display()
                )
            });
            let theirs = SafeTensors::deserialize(&theirs).unwrap();
            let net: N = load_safetensors(&path).unwrap();
            assert_eq!(net.train_state(), TrainState { seed: 0, steps: 7 }, "{case}");
            for (layout, values) in [(N::PARAMS, net.params()), (N::BUFFERS, net.buffers())] {
                for info in layout {
                    let want: Vec<f32> = theirs
                        .tensor(info.name)
                        .unwrap()
                        .data()
                        .chunks_exact(4)
                        .map(f32_le)
                        .collect();
                    assert_eq!(values[info.range()], want, "{case}: {}", info.name);
                }
            }

            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ours.safetensors");
            save_safetensors(&net, &path).unwrap();
            let ours = fs::read(&path).unwrap();
            let ours = SafeTensors::deserialize(&ours).unwrap();
            let (mut names, mut want) = (ours.names(), theirs.names());
            names.sort();
            want.sort();
            assert_eq!(names, want, "{case}");
            for name in names {
                let (a, b) = (ours.tensor(name).unwrap(), theirs.tensor(name).unwrap());
                assert_eq!(
                    (a.dtype(), a.shape(), a.data()),
                    (b.dtype(), b.shape(), b.data()),
                    "{case}: {name}"
                );
            }
        }
        check::<ResNetTiny>("resnet_tiny");
        check::<BnMlp>("bn_mlp");
        check::<Depthwise>("depthwise");
    }
}
