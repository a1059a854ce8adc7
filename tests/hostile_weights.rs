//! Damaged weight files through the public API: every mutation of a real safetensors file
//! (`tests/golden/{mlp,lenet5}/weights.safetensors`, written by PyTorch) ends in an `Err`
//! that names the problem, or in `Ok` with a network whose every parameter is finite, and
//! never in a panic. The allocation bound is checked separately, in `hostile_alloc.rs`.

mod common;

use common::LeNet5;

use cnn::prelude::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

cnn! {
    struct Mlp {
        input: [20],
        fc1: Dense(32) -> Relu,
        fc2: Dense(16) -> Tanh,
        fc3: Dense(5),
    }
}

/// The bytes of `tests/golden/{case}/weights.safetensors`, read once per test binary.
fn golden(case: &str) -> Vec<u8> {
    static FILES: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let mut files = FILES.get_or_init(Default::default).lock().unwrap();
    files
        .entry(case.to_owned())
        .or_insert_with(|| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden")
                .join(case)
                .join("weights.safetensors");
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .clone()
}

/// A file name no other test uses, in a directory that lives as long as the test.
struct Scratch {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostile.safetensors");
        Scratch { _dir: dir, path }
    }

    /// Writes `bytes` and loads them as an `N`.
    fn load<N: Network>(&self, bytes: &[u8]) -> Result<N, cnn::Error> {
        std::fs::write(&self.path, bytes).unwrap();
        cnn::io::load_safetensors(&self.path)
    }
}

/// The contract for any file: an error that names the file and says something, or a network
/// with `PARAM_COUNT` finite parameters.
fn check_outcome<N: Network>(result: Result<N, cnn::Error>) -> Result<N, String> {
    match result {
        Ok(net) => {
            assert_eq!(net.params().len(), N::PARAM_COUNT);
            assert!(
                net.params().iter().all(|x| x.is_finite()),
                "a loaded network holds a non-finite weight"
            );
            Ok(net)
        }
        Err(err) => {
            let msg = err.to_string();
            assert!(
                msg.contains("hostile.safetensors"),
                "the error does not name the file: {msg}"
            );
            assert!(
                msg.len() > "hostile.safetensors: ".len() + 10,
                "the error says nothing: {msg}"
            );
            Err(msg)
        }
    }
}

/// The header (as JSON) and the data section of a safetensors file.
fn split(bytes: &[u8]) -> (Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&bytes[8..8 + n]).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

/// A safetensors file from a header and a data section, the header padded with spaces to a
/// multiple of 8 as safetensors writes it.
fn join(header: &Value, data: &[u8]) -> Vec<u8> {
    let mut text = serde_json::to_vec(header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&text);
    bytes.extend_from_slice(data);
    bytes
}

fn expect_err<N: Network>(scratch: &Scratch, bytes: &[u8], wants: &[&str]) {
    let Err(msg) = check_outcome(scratch.load::<N>(bytes)) else {
        panic!("a damaged file loaded");
    };
    for want in wants {
        assert!(msg.contains(want), "expected {want:?} in: {msg}");
    }
}

#[test]
fn the_golden_files_load() {
    let s = Scratch::new();
    check_outcome(s.load::<Mlp>(&golden("mlp"))).unwrap();
    check_outcome(s.load::<LeNet5>(&golden("lenet5"))).unwrap();
}

/// Cut lengths of every class: inside the length prefix, every length inside the header
/// and just past it, at and around every tensor boundary, and a stride through the data.
fn truncations(bytes: &[u8]) -> Vec<usize> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let (header, _) = split(bytes);
    let mut cuts: Vec<usize> = (0..8 + n + 9).collect();
    for entry in header.as_object().unwrap().values() {
        let offsets = &entry["data_offsets"];
        for edge in [offsets[0].as_u64().unwrap(), offsets[1].as_u64().unwrap()] {
            let at = 8 + n + edge as usize;
            cuts.extend([at - 1, at, at + 1]);
        }
    }
    cuts.extend((8 + n..bytes.len()).step_by(bytes.len() / 50));
    cuts.extend(bytes.len() - 4..bytes.len());
    cuts.retain(|&cut| cut < bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[test]
fn every_class_of_truncation_is_an_error_saying_truncated() {
    let s = Scratch::new();
    let mlp = golden("mlp");
    for cut in truncations(&mlp) {
        expect_err::<Mlp>(&s, &mlp[..cut], &["truncated"]);
    }
    let lenet = golden("lenet5");
    for cut in truncations(&lenet) {
        expect_err::<LeNet5>(&s, &lenet[..cut], &["truncated"]);
    }
}

#[test]
fn length_prefix_past_the_end_or_huge_is_an_error() {
    let s = Scratch::new();
    let mlp = golden("mlp");
    let n = u64::from_le_bytes(mlp[..8].try_into().unwrap());
    let with_prefix = |prefix: u64| [&prefix.to_le_bytes()[..], &mlp[8..]].concat();
    for prefix in [u64::MAX, u64::MAX / 2, 1 << 32, 100_000_001, (1 << 20) + 1] {
        expect_err::<Mlp>(&s, &with_prefix(prefix), &[&format!("{prefix}-byte header")]);
    }
    // Past the end of this file, but under the limit.
    expect_err::<Mlp>(&s, &with_prefix(mlp.len() as u64), &["past the end"]);
    // Inside the file but wrong: the JSON is cut, or runs into the data.
    for prefix in [0, 1, n - 1, n + 1, n + 8] {
        expect_err::<Mlp>(&s, &with_prefix(prefix), &["not a valid safetensors file"]);
    }
}

#[test]
fn broken_json_is_an_error() {
    let s = Scratch::new();
    let mlp = golden("mlp");
    let n = u64::from_le_bytes(mlp[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&mlp[8..8 + n]).unwrap();
    let edits = [
        header.replacen('{', "[", 1),
        header.replacen('}', " ", 1),
        header.replacen(':', ",", 1),
        header.replacen("\"dtype\"", " dtype ", 1),
        header.replacen("\"F32\"", " F32 ", 1),
        header.replacen("[32]", "[32 ", 1),
        header.replacen("[0,128]", "[0;128]", 1),
        header.replacen("\"fc1.bias\"", "\"fc1.bias\u{7f}", 1),
        format!("{}\"", &header[..n - 1]),
    ];
    for edit in edits {
        assert_eq!(edit.len(), n, "keep the length so only the JSON is wrong");
        let bytes = [&mlp[..8], edit.as_bytes(), &mlp[8 + n..]].concat();
        expect_err::<Mlp>(&s, &bytes, &["not a valid safetensors file"]);
    }
    // Not UTF-8.
    let mut bytes = mlp.clone();
    bytes[10] = 0xff;
    expect_err::<Mlp>(&s, &bytes, &["UTF-8"]);
}

#[test]
fn bad_offsets_are_errors() {
    let s = Scratch::new();
    let (header, data) = split(&golden("mlp"));
    let len = data.len() as u64;
    // (tensor, new offsets, what the message says)
    let cases: [(&str, Value, &str); 8] = [
        // Beyond the data section.
        ("fc3.weight", json!([4820, len + 4]), "does not match"),
        // Overlapping the tensor before.
        ("fc1.weight", json!([124, 2684]), "`fc1.weight`"),
        // Leaving a gap after the tensor before.
        ("fc1.weight", json!([132, 2692]), "`fc1.weight`"),
        // Reversed.
        ("fc2.bias", json!([2752, 2688]), "`fc2.bias`"),
        // The last tensor ends early.
        ("fc3.weight", json!([4820, 5136]), "does not match"),
        // Huge.
        ("fc3.weight", json!([4820, u64::MAX]), "not"),
        ("fc1.bias", json!([u64::MAX - 1, u64::MAX]), "not"),
        // Not two numbers.
        ("fc1.bias", json!([0]), "not valid safetensors JSON"),
    ];
    for (tensor, offsets, want) in cases {
        let mut h = header.clone();
        h[tensor]["data_offsets"] = offsets.clone();
        expect_err::<Mlp>(&s, &join(&h, &data), &[want]);
    }
    // Offsets that do not cover the data section: bytes after the last tensor.
    let longer = [&data[..], &[0; 4]].concat();
    expect_err::<Mlp>(&s, &join(&header, &longer), &["does not match the header's offsets"]);
}

#[test]
fn dtype_and_shape_mismatches_name_the_tensor() {
    let s = Scratch::new();
    let (header, data) = split(&golden("mlp"));
    let with = |tensor: &str, field: &str, value: Value| {
        let mut h = header.clone();
        h[tensor][field] = value;
        join(&h, &data)
    };
    // Same size, other dtype: read, and refused by name.
    expect_err::<Mlp>(
        &s,
        &with("fc2.bias", "dtype", json!("I32")),
        &["`fc2.bias` has dtype I32, expected F32"],
    );
    expect_err::<Mlp>(
        &s,
        &with("fc2.bias", "dtype", json!("U32")),
        &["`fc2.bias` has dtype U32"],
    );
    // Other size: the offsets no longer match.
    expect_err::<Mlp>(
        &s,
        &with("fc2.bias", "dtype", json!("F16")),
        &["does not match its shape and dtype"],
    );
    expect_err::<Mlp>(
        &s,
        &with("fc2.bias", "dtype", json!("F8")),
        &["not valid safetensors JSON"],
    );
    // Same element count, other shape.
    expect_err::<Mlp>(
        &s,
        &with("fc1.weight", "shape", json!([20, 32])),
        &["`fc1.weight` has shape [20, 32]", "[32, 20]"],
    );
    expect_err::<Mlp>(
        &s,
        &with("fc1.weight", "shape", json!([640])),
        &["`fc1.weight` has shape [640]"],
    );
    expect_err::<Mlp>(
        &s,
        &with("fc3.bias", "shape", json!([5, 1, 1])),
        &["`fc3.bias` has shape [5, 1, 1]"],
    );
    // Overflowing and degenerate shapes.
    expect_err::<Mlp>(&s, &with("fc3.bias", "shape", json!([u64::MAX, 2])), &["overflows"]);
    expect_err::<Mlp>(&s, &with("fc3.bias", "shape", json!([0])), &["does not match"]);
    expect_err::<Mlp>(
        &s,
        &with("fc3.bias", "shape", json!([-5])),
        &["not valid safetensors JSON"],
    );
    // A tensor renamed: missing (reported first) and unexpected.
    let mut h = header.clone();
    let t = h.as_object_mut().unwrap().remove("fc2.weight").unwrap();
    h["fc2.weights"] = t;
    expect_err::<Mlp>(&s, &join(&h, &data), &["missing tensor `fc2.weight`"]);
}

#[test]
fn non_finite_weights_are_refused_naming_tensor_and_index() {
    let s = Scratch::new();
    let mlp = golden("mlp");
    let (header, _) = split(&mlp);
    let data_start = mlp.len() - 5140;
    // fc1.weight is [32, 20] at data bytes 128..2688: element 47 is [2, 7].
    let at = data_start + 128 + 47 * 4;
    for (value, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")] {
        let mut bytes = mlp.clone();
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        expect_err::<Mlp>(
            &s,
            &bytes,
            &[
                &format!("`fc1.weight` holds {shown} at index [2, 7] (element 47 of 640)"),
                "must be finite",
            ],
        );
    }
    assert_eq!(header["fc1.weight"]["data_offsets"], json!([128, 2688]));
    // Every NaN bit pattern counts, signalling and negative ones too.
    for bits in [0x7f80_0001u32, 0xffc0_0000, 0x7fff_ffff] {
        let mut bytes = mlp.clone();
        bytes[mlp.len() - 4..].copy_from_slice(&bits.to_le_bytes());
        expect_err::<Mlp>(
            &s,
            &bytes,
            &["`fc3.weight` holds NaN at index [4, 15] (element 79 of 80)"],
        );
    }
}

#[test]
fn costly_headers_are_refused() {
    let s = Scratch::new();
    let (header, data) = split(&golden("mlp"));
    let mut long_shape = header.clone();
    long_shape["fc3.bias"]["shape"] = json!(vec![1; 100]);
    expect_err::<Mlp>(&s, &join(&long_shape, &data), &["more than 64 members"]);

    let mut many_metadata = header.clone();
    let entries: serde_json::Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    many_metadata["__metadata__"] = Value::Object(entries);
    expect_err::<Mlp>(&s, &join(&many_metadata, &data), &["more than 64 members"]);

    let mut many_tensors = header.clone();
    for i in 0..100 {
        many_tensors[format!("extra{i}")] = json!({"dtype": "F32", "shape": [0], "data_offsets": [0, 0]});
    }
    expect_err::<Mlp>(
        &s,
        &join(&many_tensors, &data),
        &["more than 71 entries, but the network has 6 parameters"],
    );

    let mut deep = header.clone();
    deep["__metadata__"] = json!({"a": [[[[[[[[[1]]]]]]]]]});
    expect_err::<Mlp>(&s, &join(&deep, &data), &["more than 8 levels"]);

    // A few extra tensors are still reported by name.
    let mut one_extra = header.clone();
    one_extra["zz.extra"] = json!({"dtype": "F32", "shape": [0], "data_offsets": [5140, 5140]});
    expect_err::<Mlp>(&s, &join(&one_extra, &data), &["unexpected tensor `zz.extra`"]);
}

#[test]
fn a_file_far_larger_than_the_network_is_refused() {
    let s = Scratch::new();
    let mut bytes = golden("mlp");
    bytes.resize(bytes.len() + 8 * 1285, 0);
    expect_err::<Mlp>(&s, &bytes, &["at most 10280 bytes of data (8 per parameter)"]);
}

/// A change to a safetensors file.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    Flip {
        at: usize,
        mask: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Prefix(u64),
    /// Sets a field of one tensor in the header to an arbitrary JSON value.
    Field {
        tensor: usize,
        field: usize,
        value: Value,
    },
}

/// Integers that break size arithmetic, and ordinary ones.
fn awkward_int() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX / 4),
        Just(1 << 32),
        Just(usize::MAX as u64 / 4 + 1),
        0u64..6000,
        any::<u64>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        awkward_int().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|x| json!(x)),
        prop::sample::select(vec![
            "F32", "F64", "F16", "BF16", "I32", "U8", "BOOL", "F8_E4M3", "f32", ""
        ])
        .prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(Value::Array)
    })
}

fn mutation(len: usize) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..len).prop_map(Mutation::Truncate),
        (0..len, 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (0..len, any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (0..=len, prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (0..len, 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        awkward_int().prop_map(Mutation::Prefix),
        (0usize..6, 0usize..3, json_value()).prop_map(|(tensor, field, value)| Mutation::Field {
            tensor,
            field,
            value
        }),
    ]
}

fn apply(original: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Truncate(cut) => bytes.truncate(*cut),
            Mutation::Flip { at, mask } if *at < len => bytes[*at] ^= mask,
            Mutation::Set { at, byte } if *at < len => bytes[*at] = *byte,
            Mutation::Insert { at, bytes: new } => {
                let at = (*at).min(len);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Delete { at, len: n } if *at < len => {
                bytes.drain(*at..(*at + n).min(len));
            }
            Mutation::Prefix(prefix) if len >= 8 => bytes[..8].copy_from_slice(&prefix.to_le_bytes()),
            Mutation::Field { tensor, field, value } => {
                // Only while the header still parses; byte mutations may have broken it.
                let Some(n) = bytes.get(..8).map(|p| u64::from_le_bytes(p.try_into().unwrap())) else {
                    continue;
                };
                let Some(text) = usize::try_from(n)
                    .ok()
                    .and_then(|n| bytes.get(8..8usize.checked_add(n)?))
                else {
                    continue;
                };
                let Ok(mut header) = serde_json::from_slice::<Value>(text) else {
                    continue;
                };
                let data = bytes[8 + text.len()..].to_vec();
                let Some(obj) = header.as_object_mut() else { continue };
                let mut names: Vec<String> = obj.keys().cloned().collect();
                names.sort();
                let Some(name) = names.get(tensor % names.len().max(1)) else {
                    continue;
                };
                if let Some(entry) = obj.get_mut(name).and_then(Value::as_object_mut) {
                    entry.insert(["dtype", "shape", "data_offsets"][*field].to_owned(), value.clone());
                }
                bytes = join(&header, &data);
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random byte and header damage to the MLP's file: never a panic; an `Ok` is a network
    /// of finite weights; an error names the file.
    #[test]
    fn mutated_mlp_file_never_panics(mutations in prop::collection::vec(mutation(5564), 1..4)) {
        let s = Scratch::new();
        let bytes = apply(&golden("mlp"), &mutations);
        let _ = check_outcome(s.load::<Mlp>(&bytes));
    }

    /// Header-only damage: a file whose header changed is refused unless the change is
    /// invisible (same value written back).
    #[test]
    fn header_field_changes_are_refused(tensor in 0usize..6, field in 0usize..3, value in json_value()) {
        let s = Scratch::new();
        let original = golden("mlp");
        let (header, _) = split(&original);
        let mut names: Vec<&String> = header.as_object().unwrap().keys().collect();
        names.sort();
        let same = header[names[tensor].as_str()][["dtype", "shape", "data_offsets"][field]] == value;
        let bytes = apply(&original, &[Mutation::Field { tensor, field, value }]);
        let outcome = check_outcome(s.load::<Mlp>(&bytes));
        prop_assert_eq!(outcome.is_ok(), same, "{:?}", outcome.err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_lenet5_file_never_panics(mutations in prop::collection::vec(mutation(247_560), 1..4)) {
        let s = Scratch::new();
        let bytes = apply(&golden("lenet5"), &mutations);
        let _ = check_outcome(s.load::<LeNet5>(&bytes));
    }
}
