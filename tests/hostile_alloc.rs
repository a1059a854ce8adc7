//! How much the loaders allocate for hostile files, measured with a counting global allocator
//! (this test binary's only purpose: the allocator sees every allocation of the process).
//!
//! Only allocations made by the measuring thread while a measurement runs are counted, so
//! the test harness and other tests running in parallel do not disturb the numbers.
//!
//! The promises checked:
//! - weights: no single allocation is larger than the file (plus a small constant for
//!   paths and messages), whatever the file holds;
//! - IDX: no single allocation is larger than the size the header declares plus one byte
//!   (plus the gzip decoder's fixed buffers), nor than twice what the file really holds, so a
//!   header that lies costs nothing and a gzip bomb is never inflated.

mod common;

use common::LeNet5;

use cnn::prelude::*;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::Path;

/// Forwards to the system allocator and, on threads that asked for it, records the largest
/// single allocation and the peak of bytes live at once.
struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK_LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Records that `size` bytes were allocated (`freed` bytes released in the same call).
/// `try_with`: a thread being torn down has no thread-locals left, and is not measured.
fn record(size: usize, freed: usize) {
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            LARGEST.with(|l| l.set(l.get().max(size)));
            LIVE.with(|live| {
                live.set(live.get() + size as isize - freed as isize);
                PEAK_LIVE.with(|p| p.set(p.get().max(live.get())));
            });
        }
    });
}

fn record_free(size: usize) {
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            LIVE.with(|live| live.set(live.get() - size as isize));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; the bookkeeping only touches
// const-initialized thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size(), 0);
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size(), 0);
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record_free(layout.size());
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size, layout.size());
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one measured call allocated.
#[derive(Debug)]
struct Usage {
    /// The largest single allocation (or reallocation's new size), in bytes.
    largest: usize,
    /// The most bytes live at once, counting only what the call allocated.
    peak_live: usize,
}

/// Runs `f` on this thread with counting on.
fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    LARGEST.with(|l| l.set(0));
    LIVE.with(|l| l.set(0));
    PEAK_LIVE.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    let result = f();
    TRACKING.with(|t| t.set(false));
    let usage = Usage {
        largest: LARGEST.with(Cell::get),
        peak_live: PEAK_LIVE.with(Cell::get).max(0) as usize,
    };
    (result, usage)
}

cnn! {
    struct Mlp {
        input: [20],
        fc1: Dense(32) -> Relu,
        fc2: Dense(16) -> Tanh,
        fc3: Dense(5),
    }
}

/// Slack for the path, the error message and the like.
const SMALL: usize = 4096;

fn golden(case: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(case)
            .join("weights.safetensors"),
    )
    .unwrap()
}

fn safetensors(header: &Value, data: &[u8]) -> Vec<u8> {
    safetensors_text(&serde_json::to_vec(header).unwrap(), data)
}

fn safetensors_text(header: &[u8], data: &[u8]) -> Vec<u8> {
    [&(header.len() as u64).to_le_bytes()[..], header, data].concat()
}

/// Loads `bytes` as an `N` and checks that no allocation was larger than the file.
fn check_weights<N: Network>(dir: &Path, what: &str, bytes: &[u8]) -> Usage {
    let path = dir.join("w.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let (result, usage) = measure(|| cnn::io::load_safetensors::<N>(&path).map(|_| ()));
    assert!(
        usage.largest <= bytes.len() + SMALL,
        "{what}: a {}-byte file made a {}-byte allocation ({result:?})",
        bytes.len(),
        usage.largest
    );
    usage
}

/// One test, so that the measurements run one after another on one thread.
#[test]
fn loaders_never_allocate_more_than_the_input_justifies() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    weights(dir);
    idx(dir);
}

fn weights(dir: &Path) {
    let mlp = golden("mlp");
    let lenet = golden("lenet5");
    let n = u64::from_le_bytes(mlp[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&mlp[8..8 + n]).unwrap();
    let data = &mlp[8 + n..];

    // Valid files: the network itself is the largest allocation, and it is in the file.
    let usage = check_weights::<LeNet5>(dir, "lenet5", &lenet);
    assert!(usage.largest >= 61_706 * 4, "{usage:?}");
    check_weights::<Mlp>(dir, "mlp", &mlp);

    // Truncations and lying length prefixes: nothing is sized by what the file claims.
    for cut in [0, 7, 8, 100, n + 8, lenet.len() / 2, lenet.len() - 1] {
        check_weights::<LeNet5>(dir, &format!("cut at {cut}"), &lenet[..cut]);
    }
    for prefix in [u64::MAX, 1 << 40, 100_000_000, 1 << 20, lenet.len() as u64 * 2] {
        let bytes = [&prefix.to_le_bytes()[..], &lenet[8..]].concat();
        check_weights::<LeNet5>(dir, &format!("prefix {prefix}"), &bytes);
    }
    // Shapes and offsets that overflow or point far away.
    for (field, value) in [
        ("shape", json!([u64::MAX, u64::MAX])),
        ("data_offsets", json!([0, u64::MAX])),
        ("shape", json!([1u64 << 40])),
    ] {
        let mut h = header.clone();
        h["fc1.weight"][field] = value;
        check_weights::<Mlp>(dir, field, &safetensors(&h, data));
    }

    // Headers built to be expensive to parse, each at the largest size the limits allow or
    // just past them. serde's `flatten` buffers every JSON value as a 32-byte node, so these
    // are the shapes that could turn a small file into a large allocation.
    let zeros = |k: usize| json!(vec![0; k]);
    let mut long_shapes = header.clone();
    long_shapes["fc1.bias"]["shape"] = zeros(64);
    long_shapes["fc2.bias"]["shape"] = zeros(100_000);
    let mut many_members = header.clone();
    many_members["__metadata__"] = Value::Object((0..80_000).map(|i| (format!("{i}"), json!(""))).collect());
    let mut many_tensors = header.clone();
    for i in 0..15_000 {
        many_tensors[format!("t{i}")] = json!({"dtype": "F32", "shape": [], "data_offsets": [0, 0]});
    }
    // 1 MiB of escaped strings: each becomes a String no longer than the header.
    let mut escaped = header.clone();
    escaped["__metadata__"] = json!({"note": "\"\\".repeat(170_000)});
    // Within the limits: 71 top-level entries of 64-member objects of 64-member arrays.
    let mut widest = serde_json::Map::new();
    for i in 0..71 {
        let fields: serde_json::Map<String, Value> = (0..64).map(|j| (format!("f{j}"), zeros(64))).collect();
        widest.insert(format!("t{i}"), Value::Object(fields));
    }
    for (what, h) in [
        ("long shapes", long_shapes),
        ("many metadata members", many_members),
        ("many tensors", many_tensors),
        ("escaped strings", escaped),
        ("widest allowed", Value::Object(widest)),
    ] {
        let bytes = safetensors(&h, data);
        let usage = check_weights::<Mlp>(dir, what, &bytes);
        eprintln!(
            "{what}: {} bytes, largest allocation {}, peak live {}",
            bytes.len(),
            usage.largest,
            usage.peak_live
        );
    }
    // 500,000 nested arrays (built as text: `serde_json::Value` would recurse that deep).
    let deep = format!(r#"{{"a":{}0{}}}"#, "[".repeat(500_000), "]".repeat(500_000));
    check_weights::<Mlp>(dir, "deep nesting", &safetensors_text(deep.as_bytes(), data));

    // Random damage: the bound holds whatever the bytes.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for round in 0..200 {
        let mut bytes = mlp.clone();
        for _ in 0..1 + round % 4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = state as usize % bytes.len();
            bytes[at] ^= (state >> 32) as u8 | 1;
        }
        check_weights::<Mlp>(dir, &format!("flips round {round}"), &bytes);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn idx_file(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

/// The gzip decoder's own buffers (a 32 KiB read buffer, the inflate state and its 32 KiB
/// window): fixed, whatever the stream.
const DECODER: usize = 128 << 10;

fn idx(dir: &Path) {
    let (images_path, labels_path) = (dir.join("images"), dir.join("labels"));
    let labels = idx_file(0x0801, &[10], &[3; 10]);
    std::fs::write(&labels_path, &labels).unwrap();
    let load = |images: &[u8]| {
        std::fs::write(&images_path, images).unwrap();
        measure(|| cnn::data::Dataset::load(&images_path, &labels_path))
    };

    // A valid pair: the pixels are the largest allocation, exactly their size plus one byte.
    let pixels: Vec<u8> = (0..10 * 28 * 28).map(|i| i as u8).collect();
    let valid = idx_file(0x0803, &[10, 28, 28], &pixels);
    let (result, usage) = load(&valid);
    result.unwrap();
    assert!(usage.largest <= 7841 + SMALL, "{usage:?}");
    let (result, usage) = load(&gzip(&valid));
    result.unwrap();
    assert!(usage.largest <= 7841 + DECODER, "{usage:?}");

    // Headers that claim far more than the file holds: 4 GiB, or 2^32 images of 2^32 pixels.
    for dims in [[u32::MAX, 1, 1], [u32::MAX, u32::MAX, 1], [10, 1 << 16, 1 << 16]] {
        let lying = idx_file(0x0803, &dims, &pixels);
        let (result, usage) = load(&lying);
        assert!(result.is_err());
        assert!(usage.largest <= SMALL, "plain {dims:?}: {usage:?}");
        let (result, usage) = load(&gzip(&lying));
        assert!(result.is_err());
        // The buffer grows with what the stream delivers: at most twice the 7856 bytes there.
        assert!(usage.largest <= 2 * lying.len() + DECODER, "gzip {dims:?}: {usage:?}");
    }

    // Gzip bombs: 10 images declared (7856 bytes), then 50 MiB of zeros. Inflation stops one
    // byte past the declared size.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(&idx_file(0x0803, &[10, 28, 28], &[])).unwrap();
    for _ in 0..50 {
        encoder.write_all(&[0; 1 << 20]).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    let (result, usage) = load(&bomb);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("trailing bytes"), "{err}");
    assert!(usage.largest <= 7841 + DECODER, "bomb: {usage:?}");
    assert!(usage.peak_live <= 7841 + 2 * DECODER, "bomb: {usage:?}");
    eprintln!(
        "gzip bomb of {} bytes: largest allocation {}, peak live {}",
        bomb.len(),
        usage.largest,
        usage.peak_live
    );

    // A bomb whose header declares 4 GiB: it is inflated only as far as it goes (50 MiB),
    // within twice that.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(&idx_file(0x0803, &[u32::MAX, 1, 1], &[])).unwrap();
    for _ in 0..50 {
        encoder.write_all(&[0; 1 << 20]).unwrap();
    }
    let (result, usage) = load(&encoder.finish().unwrap());
    assert!(result.unwrap_err().to_string().contains("truncated"));
    assert!(usage.largest <= 2 * (50 << 20) + DECODER, "4 GiB bomb: {usage:?}");
}
