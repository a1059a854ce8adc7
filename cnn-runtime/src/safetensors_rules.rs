//! The rules every safetensors file of `cnn` passes, whoever reads it: the weight loader
//! ([`crate::io`]) at run time and the `cnn!` macro's `#[weights = "..."]` at compile time read
//! a file through [`parse`] and check its values with [`first_bad_value`], so a file one of
//! them refuses the other refuses too.
//!
//! A safetensors file is an 8-byte little-endian header length `N`, `N` bytes of JSON mapping
//! each tensor's name to `{"dtype", "shape", "data_offsets": [begin, end]}` (an optional
//! `"__metadata__"` entry maps strings to strings), then the data. The `safetensors` crate
//! parses it and checks that the tensors' byte ranges match their shapes and dtypes and cover
//! the data without gaps or overlaps; before that, the header's length and structure are
//! bounded here.

use safetensors::SafeTensorError;
pub use safetensors::{Dtype, SafeTensors};
use std::borrow::ToOwned;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// Longest JSON header accepted, in bytes. A header lists names, dtypes, shapes and offsets:
/// about 100 bytes per tensor, a few KB for any network `cnn!` declares. (safetensors itself
/// accepts up to 100 MB.)
pub const MAX_HEADER_LEN: usize = 1 << 20;

/// Most bytes per value (parameter, buffer element, step counter) a file is allowed before it
/// is read: the size of the widest safetensors dtype (`F64`, `I64`, `U64`), so that a file of
/// the right shapes in a wrong dtype is read and reported as a dtype mismatch.
pub const MAX_DTYPE_BYTES: usize = 8;

/// Deepest nesting of objects and arrays in a header; a valid one nests 3 deep.
pub const MAX_DEPTH: usize = 8;

/// Most members of any object or array in a header other than the top-level one; a tensor
/// entry has 3, a shape as many as its dimensions.
pub const MAX_MEMBERS: usize = 64;

/// Top-level header entries tolerated beyond the network's tensors and `__metadata__`.
pub const EXTRA_ENTRIES: usize = 64;

/// `state_dict` name suffixes: a BatchNorm `X` has the buffers `X.running_mean` and
/// `X.running_var`, and the step counter `X.num_batches_tracked`.
pub const RUNNING_MEAN: &str = ".running_mean";
pub const RUNNING_VAR: &str = ".running_var";
pub const NUM_BATCHES_TRACKED: &str = ".num_batches_tracked";

/// Checks the header's structure ([`check_header_structure`]; `tensors` and `which` describe
/// what the file should hold), then parses the file: a sentence saying what is wrong if it is
/// not a well-formed safetensors file whose header is at most [`MAX_HEADER_LEN`] bytes.
///
/// ```
/// use cnn_runtime::safetensors_rules::parse;
/// let mut file = Vec::new();
/// let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
/// file.extend_from_slice(&(header.len() as u64).to_le_bytes());
/// file.extend_from_slice(header);
/// file.extend_from_slice(&1.5f32.to_le_bytes());
/// assert_eq!(parse(&file, 1, "1 tensor").unwrap().names(), ["w"]);
/// assert!(parse(&file[..file.len() - 1], 1, "1 tensor").is_err());
/// ```
pub fn parse<'data>(bytes: &'data [u8], tensors: usize, which: &str) -> Result<SafeTensors<'data>, String> {
    if let Some(prefix) = bytes.get(..8) {
        let mut len = [0u8; 8];
        len.copy_from_slice(prefix);
        let len = u64::from_le_bytes(len);
        if len > MAX_HEADER_LEN as u64 {
            return Err(format!(
                "the length prefix gives a {len}-byte header, more than the {MAX_HEADER_LEN} \
                 bytes accepted; damaged, or not a safetensors file"
            ));
        }
    }
    // A header reaching past the end of the file is left for `deserialize` to report.
    if let Some(header) = header_of(bytes) {
        check_header_structure(header, tensors, which)?;
    }
    SafeTensors::deserialize(bytes).map_err(|e| describe(&e))
}

/// The first value of an `F32` tensor's little-endian `data` that a trained network cannot
/// hold, with its position: a NaN or an infinity anywhere (one NaN spreads to every output it
/// touches), or a negative value in a `running_var` (BatchNorm would take the square root of a
/// negative number).
///
/// ```
/// use cnn_runtime::safetensors_rules::first_bad_value;
/// let data: Vec<u8> = [1.0f32, -2.0, f32::NAN].iter().flat_map(|x| x.to_le_bytes()).collect();
/// assert_eq!(first_bad_value("fc.weight", &data).map(|(i, _)| i), Some(2));
/// assert_eq!(first_bad_value("bn.running_var", &data).map(|(i, _)| i), Some(1));
/// ```
pub fn first_bad_value(tensor: &str, data: &[u8]) -> Option<(usize, f32)> {
    let variance = tensor.ends_with(RUNNING_VAR);
    data.chunks_exact(4)
        .map(f32_le)
        .enumerate()
        .find(|&(_, x)| !x.is_finite() || (variance && x < 0.0))
}

/// The JSON header of a safetensors file: the `n` bytes after the 8-byte length prefix `n`,
/// if the file holds them.
pub fn header_of(bytes: &[u8]) -> Option<&[u8]> {
    let prefix: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let len = usize::try_from(u64::from_le_bytes(prefix)).ok()?;
    bytes.get(8..8usize.checked_add(len)?)
}

/// Refuses a header shaped so that parsing it would cost far more memory than its size.
///
/// safetensors parses the header through serde's `flatten`, which first buffers every JSON
/// value as a generic tree of 32-byte nodes: an array of a million zeros (2 MB of text) would
/// become a 32 MB allocation. A valid header for a network is one object holding, per
/// tensor (parameter, buffer or step counter), an object of three fields with two short arrays
/// (`shape`, `data_offsets`), plus an optional `__metadata__` object of strings. So, lexically
/// and before any parsing: nesting at most [`MAX_DEPTH`] deep, the top-level object at most the
/// network's `tensors` plus `__metadata__` plus [`EXTRA_ENTRIES`] (so a few unexpected tensors
/// are still reported by name), and every other object or array at most [`MAX_MEMBERS`]
/// members. Valid files are far inside these bounds. `which` says what the tensors are.
pub fn check_header_structure(header: &[u8], tensors: usize, which: &str) -> Result<(), String> {
    let top_limit = tensors + 1 + EXTRA_ENTRIES;
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
                         {which}"
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

/// A sentence for a safetensors error, whose `Display` is only its variant name.
pub fn describe(e: &SafeTensorError) -> String {
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

/// The multi-dimensional index of element `flat` of a row-major tensor of `shape`.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &dim) in index.iter_mut().zip(shape).rev() {
        *i = flat % dim.max(1);
        flat /= dim.max(1);
    }
    index
}

/// The `f32` in the first four bytes of `chunk`, little-endian (`chunks_exact(4)` gives four).
pub fn f32_le(chunk: &[u8]) -> f32 {
    f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])
}
