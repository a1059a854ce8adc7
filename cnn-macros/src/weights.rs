//! Pass 2, for `#[weights = "file.safetensors"]`: read the file while expanding and check it
//! against the declaration, so that a file that does not fit the architecture is a compile
//! error, not a run-time one.
//!
//! The file is read and checked by the same rules as `cnn::io::load_safetensors` at run time
//! (`cnn_runtime::safetensors_rules`): the same bound on its size, the same header checks and
//! parser, the same refusal of NaN and infinite values (and of a negative `running_var`). On
//! top, every mismatch is reported at once, each missing or mismatched tensor on the stage that
//! declares it, each unexpected one on the attribute.

use crate::ir::{Model, Param};
use crate::messages as msg;
use crate::parse::{Body, Decl, Entry};
use crate::report::Errors;
use cnn_runtime::safetensors_rules::{self as rules, Dtype, SafeTensors, MAX_DTYPE_BYTES, MAX_HEADER_LEN};
use proc_macro2::Span;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use syn::{Attribute, Expr, ExprLit, Lit, LitStr, Meta};

/// Where the checked weights come from, for `expand`.
pub struct Embedded {
    /// The file, absolute, for `include_bytes!`.
    pub path: String,
    /// For each declared parameter, in declaration order: where its bytes start in the file,
    /// and how many there are.
    pub moves: Vec<(usize, usize)>,
    /// The same for each buffer (BatchNorm's running statistics).
    pub buffer_moves: Vec<(usize, usize)>,
}

/// `Ok(None)` without the attribute; every problem of the attribute or the file as errors.
pub fn check(decl: &Decl, model: &Model) -> syn::Result<Option<Embedded>> {
    let attrs = &decl.header.weights;
    let Some(attr) = attrs.first() else { return Ok(None) };
    if let Some(second) = attrs.get(1) {
        return Err(syn::Error::new_spanned(second, msg::weights_twice()));
    }
    let lit = path_of(attr)?;
    let file = lit.value();
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = dir.join(&file);
    let bytes = read_bounded(&path, model).map_err(|e| syn::Error::new_spanned(lit, e.message(&file)))?;
    let counters = counters(model);
    let tensors = model.params.len() + model.buffers.len() + counters.len();
    let which = format!("{tensors} tensors");
    let parsed = rules::parse(&bytes, tensors, &which)
        .map_err(|e| syn::Error::new_spanned(lit, msg::weights_damaged(&file, &e)))?;
    compare(decl, model, &file, attr, &parsed, &counters)?;
    let start = bytes.as_ptr() as usize;
    let moves = |list: &[Param]| {
        list.iter()
            .filter_map(|p| parsed.tensor(&p.name).ok())
            .map(|t| (t.data().as_ptr() as usize - start, t.data().len()))
            .collect()
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    Ok(Some(Embedded {
        path: path.to_string_lossy().into_owned(),
        moves: moves(&model.params),
        buffer_moves: moves(&model.buffers),
    }))
}

/// Every BatchNorm's `num_batches_tracked`, which a file may hold.
fn counters(model: &Model) -> Vec<String> {
    model
        .buffers
        .iter()
        .filter_map(|b| b.name.strip_suffix(rules::RUNNING_MEAN))
        .map(|stage| format!("{stage}{}", rules::NUM_BATCHES_TRACKED))
        .collect()
}

fn path_of(attr: &Attribute) -> syn::Result<&LitStr> {
    if let Meta::NameValue(nv) = &attr.meta {
        if let Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) = &nv.value {
            return Ok(s);
        }
    }
    Err(syn::Error::new_spanned(attr, msg::weights_form()))
}

enum ReadError {
    Io(std::io::Error),
    Damaged(String),
}

impl ReadError {
    fn message(&self, file: &str) -> String {
        match self {
            ReadError::Io(e) => msg::weights_unreadable(file, &e.to_string()),
            ReadError::Damaged(what) => msg::weights_damaged(file, what),
        }
    }
}

/// The file's bytes, if it is no longer than a file for this network can be: the length
/// prefix, a header of at most `MAX_HEADER_LEN` bytes, and at most `MAX_DTYPE_BYTES` per value
/// (the loader's bound).
fn read_bounded(path: &Path, model: &Model) -> Result<Vec<u8>, ReadError> {
    let mut f = File::open(path).map_err(ReadError::Io)?;
    let file_len = f.metadata().map_err(ReadError::Io)?.len();
    // The header's length first, so that an oversized header is named as such.
    let mut prefix = [0u8; 8];
    if file_len >= 8 {
        f.read_exact(&mut prefix).map_err(ReadError::Io)?;
        let header_len = u64::from_le_bytes(prefix);
        if header_len > MAX_HEADER_LEN as u64 {
            return Err(ReadError::Damaged(format!(
                "its header is {header_len} bytes long, more than the {MAX_HEADER_LEN} bytes accepted"
            )));
        }
    }
    let values = (model.param_count + model.buffer_count + counters(model).len()) as u64;
    let limit = (8 + MAX_HEADER_LEN as u64).saturating_add(values.saturating_mul(MAX_DTYPE_BYTES as u64));
    if file_len > limit {
        return Err(ReadError::Damaged(format!(
            "it is {file_len} bytes long, more than a file for this network can be ({limit}: a header of at most {MAX_HEADER_LEN} bytes and {MAX_DTYPE_BYTES} bytes per value)"
        )));
    }
    let mut bytes = Vec::with_capacity(file_len as usize);
    bytes.extend_from_slice(&prefix[..file_len.min(8) as usize]);
    f.take(limit + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    Ok(bytes)
}

/// The declared parameters and buffers against the file's tensors: all mismatches at once,
/// then the values of those that match.
fn compare(
    decl: &Decl,
    model: &Model,
    file: &str,
    attr: &Attribute,
    tensors: &SafeTensors<'_>,
    counters: &[String],
) -> syn::Result<()> {
    let mut stage_spans: HashMap<String, Span> = HashMap::new();
    stage_names("", &decl.entries, &mut stage_spans);
    let stage_of = |param: &str| {
        let stage = param.rsplit_once('.').map_or(param, |(s, _)| s);
        stage_spans.get(stage).copied()
    };
    let mut errors = Errors::default();
    let mut report = |name: &str, message: String| match stage_of(name) {
        Some(span) => errors.error(span, message),
        None => errors.push(syn::Error::new_spanned(attr, message)),
    };
    let dtype_name = |d: Dtype| format!("{d:?}");
    for p in model.params.iter().chain(&model.buffers) {
        let message = match tensors.tensor(&p.name) {
            Err(_) => msg::tensor_missing(&p.name, file, &p.shape),
            Ok(t) if t.dtype() != Dtype::F32 => msg::tensor_dtype(&p.name, file, &dtype_name(t.dtype())),
            Ok(t) if t.shape() != p.shape => msg::tensor_shape(&p.name, &p.shape, file, t.shape()),
            // The loader's rule: a trained network holds no NaN or infinity, and no negative
            // running variance.
            Ok(t) => match rules::first_bad_value(&p.name, t.data()) {
                Some((index, value)) => msg::tensor_value(&p.name, file, &rules::unravel(index, &p.shape), value),
                None => continue,
            },
        };
        report(&p.name, message);
    }
    for name in counters {
        if let Ok(t) = tensors.tensor(name) {
            let count = <[u8; 8]>::try_from(t.data()).map(i64::from_le_bytes);
            if t.dtype() != Dtype::I64 || !t.shape().is_empty() || count.is_ok_and(|c| c < 0) {
                report(name, msg::counter_form(name, file, &dtype_name(t.dtype()), t.shape()));
            }
        }
    }
    let declared: Vec<&str> = model
        .params
        .iter()
        .chain(&model.buffers)
        .map(|p| p.name.as_str())
        .collect();
    let mut extra: Vec<String> = tensors
        .names()
        .into_iter()
        .filter(|name| !declared.contains(&name.as_str()) && !counters.contains(name))
        .cloned()
        .collect();
    extra.sort();
    for name in extra {
        let shape = tensors.tensor(&name).map(|t| t.shape().to_vec()).unwrap_or_default();
        errors.push(syn::Error::new_spanned(
            attr,
            msg::tensor_unexpected(&name, file, &shape, &declared),
        ));
    }
    errors.into_result()
}

/// The span of every stage's name, by its full path, groups included.
fn stage_names(prefix: &str, entries: &[Entry], out: &mut HashMap<String, Span>) {
    for entry in entries {
        let Entry::Stage(stage) = entry else { continue };
        let path = format!("{prefix}{}", stage.name);
        if let Body::Group(group) = &stage.body {
            stage_names(&format!("{path}."), &group.entries, out);
        }
        out.insert(path, stage.name.span);
    }
}
