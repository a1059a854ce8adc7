//! Pass 2, for `#[weights = "file.safetensors"]`: read the file's header while expanding and
//! check every tensor's name, dtype and shape against the declared parameters, so that a file
//! that does not fit the architecture is a compile error, not a run-time one.
//!
//! A safetensors file is an 8-byte little-endian header length `N`, `N` bytes of JSON mapping
//! each tensor's name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets into the
//! data that follows the header; an optional `"__metadata__"` entry maps strings to strings),
//! then the data. The JSON is parsed with `serde_json`.

use crate::ir::Model;
use crate::messages as msg;
use crate::parse::{Body, Decl, Entry};
use crate::report::Errors;
use proc_macro2::Span;
use serde_json::Value;
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

/// A header longer than this is taken for damage (the `safetensors` library's own limit).
const MAX_HEADER: u64 = 100_000_000;

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
    let tensors = read_header(&path).map_err(|e| syn::Error::new_spanned(lit, e.message(&file)))?;
    compare(decl, model, &file, attr, &tensors)?;
    let moves = |list: &[crate::ir::Param]| {
        list.iter()
            .filter_map(|p| tensors.get(&p.name).map(|t| (t.start, t.len)))
            .collect()
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    Ok(Some(Embedded {
        path: path.to_string_lossy().into_owned(),
        moves: moves(&model.params),
        buffer_moves: moves(&model.buffers),
    }))
}

fn path_of(attr: &Attribute) -> syn::Result<&LitStr> {
    if let Meta::NameValue(nv) = &attr.meta {
        if let Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) = &nv.value {
            return Ok(s);
        }
    }
    Err(syn::Error::new_spanned(attr, msg::weights_form()))
}

/// One tensor of the header, its offsets already checked against the file.
struct Tensor {
    dtype: String,
    shape: Vec<usize>,
    /// Byte offset of the data in the file.
    start: usize,
    len: usize,
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

fn damaged<T>(what: String) -> Result<T, ReadError> {
    Err(ReadError::Damaged(what))
}

/// Reads and validates the header alone: the data is only measured, never read.
fn read_header(path: &Path) -> Result<HashMap<String, Tensor>, ReadError> {
    let mut f = File::open(path).map_err(ReadError::Io)?;
    let file_len = f.metadata().map_err(ReadError::Io)?.len();
    if file_len < 8 {
        return damaged(format!(
            "it has {file_len} bytes, fewer than the 8 of the header length"
        ));
    }
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(ReadError::Io)?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER || n > file_len - 8 {
        return damaged(format!(
            "its header length {n} runs past the end of the file ({file_len} bytes)"
        ));
    }
    let mut json = vec![0u8; n as usize];
    f.read_exact(&mut json).map_err(ReadError::Io)?;
    let header: Value = match serde_json::from_slice(&json) {
        Ok(v) => v,
        Err(e) => return damaged(format!("its header is not valid JSON ({e})")),
    };
    let Value::Object(entries) = header else {
        return damaged("its header is not a JSON object".into());
    };
    let data_start = 8 + n as usize;
    let data_len = (file_len - 8 - n) as usize;
    let mut tensors = HashMap::new();
    for (name, entry) in &entries {
        if name == "__metadata__" {
            continue;
        }
        let tensor = parse_tensor(name, entry, data_len)?;
        tensors.insert(
            name.clone(),
            Tensor {
                start: data_start + tensor.start,
                ..tensor
            },
        );
    }
    // Tensors must not share bytes: each one's data is its own.
    let mut spans: Vec<(usize, usize, &str)> = tensors
        .iter()
        .map(|(name, t)| (t.start, t.start + t.len, name.as_str()))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return damaged(format!("the data of `{}` and `{}` overlap", w[0].2, w[1].2));
        }
    }
    Ok(tensors)
}

/// One header entry, with `start` relative to the data.
fn parse_tensor(name: &str, entry: &Value, data_len: usize) -> Result<Tensor, ReadError> {
    let bad = |what: &str| damaged(format!("the header entry of `{name}` {what}"));
    let Some(dtype) = entry.get("dtype").and_then(Value::as_str) else {
        return bad("has no string `dtype`");
    };
    let ints = |key: &str| -> Option<Vec<usize>> {
        let items = entry.get(key)?.as_array()?;
        items
            .iter()
            .map(|v| v.as_u64().and_then(|x| usize::try_from(x).ok()))
            .collect()
    };
    let Some(shape) = ints("shape") else {
        return bad("has no `shape` list of non-negative integers");
    };
    let offsets = match ints("data_offsets") {
        Some(o) if o.len() == 2 => o,
        _ => return bad("has no `data_offsets` pair of non-negative integers"),
    };
    let (begin, end) = (offsets[0], offsets[1]);
    if begin > end || end > data_len {
        return damaged(format!(
            "the data_offsets [{begin}, {end}] of `{name}` run past the {data_len} bytes of data"
        ));
    }
    let size = dtype_size(dtype);
    let elements = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let want = elements.zip(size).and_then(|(e, s)| e.checked_mul(s));
    match want {
        Some(want) if want != end - begin => {
            return damaged(format!(
                "`{name}` ({dtype} {shape:?}) needs {want} bytes but its data_offsets [{begin}, {end}] hold {}",
                end - begin
            ))
        }
        None if size.is_some() => return bad("has a shape too large to exist"),
        _ => {}
    }
    Ok(Tensor {
        dtype: dtype.to_string(),
        shape,
        start: begin,
        len: end - begin,
    })
}

/// Bytes per element of a safetensors dtype; `None` for one this checker does not know (which
/// is then only reported as not F32).
fn dtype_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// The declared parameters against the file's tensors: all mismatches at once, each missing
/// or mismatched tensor on the stage that declares it, each unexpected one on the attribute.
fn compare(
    decl: &Decl,
    model: &Model,
    file: &str,
    attr: &Attribute,
    tensors: &HashMap<String, Tensor>,
) -> syn::Result<()> {
    let mut stage_spans: HashMap<String, Span> = HashMap::new();
    stage_names("", &decl.entries, &mut stage_spans);
    let stage_of = |param: &str| {
        let stage = param.rsplit_once('.').map_or(param, |(s, _)| s);
        stage_spans.get(stage).copied()
    };
    let mut errors = Errors::default();
    for p in model.params.iter().chain(&model.buffers) {
        let message = match tensors.get(&p.name) {
            None => msg::tensor_missing(&p.name, file, &p.shape),
            Some(t) if t.dtype != "F32" => msg::tensor_dtype(&p.name, file, &t.dtype),
            Some(t) if t.shape != p.shape => msg::tensor_shape(&p.name, &p.shape, file, &t.shape),
            Some(_) => continue,
        };
        match stage_of(&p.name) {
            Some(span) => errors.error(span, message),
            None => errors.push(syn::Error::new_spanned(attr, message)),
        }
    }
    let declared: Vec<&str> = model
        .params
        .iter()
        .chain(&model.buffers)
        .map(|p| p.name.as_str())
        .collect();
    // PyTorch's BatchNorm also saves how many batches it has seen: an optional I64 scalar.
    let counters: Vec<String> = model
        .buffers
        .iter()
        .filter_map(|b| b.name.strip_suffix(".running_mean"))
        .map(|stage| format!("{stage}.num_batches_tracked"))
        .collect();
    for name in &counters {
        if let Some(t) = tensors.get(name) {
            if t.dtype != "I64" || !t.shape.is_empty() {
                let span = stage_of(name);
                let message = msg::counter_form(name, file, &t.dtype, &t.shape);
                match span {
                    Some(span) => errors.error(span, message),
                    None => errors.push(syn::Error::new_spanned(attr, message)),
                }
            }
        }
    }
    let mut extra: Vec<(&String, &Tensor)> = tensors
        .iter()
        .filter(|(name, _)| !declared.contains(&name.as_str()) && !counters.contains(name))
        .collect();
    extra.sort_by_key(|(name, _)| *name);
    for (name, t) in extra {
        errors.push(syn::Error::new_spanned(
            attr,
            msg::tensor_unexpected(name, file, &t.shape, &declared),
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
