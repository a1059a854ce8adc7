//! Any bytes as a weight file: `load_safetensors` returns `Ok` with finite weights or `Err`,
//! and never panics. Seed the corpus with `tests/golden/*/weights.safetensors`.
#![no_main]

use cnn::prelude::*;
use libfuzzer_sys::fuzz_target;

cnn! {
    struct Mlp {
        input: [20],
        fc1: Dense(32) -> Relu,
        fc2: Dense(16) -> Tanh,
        fc3: Dense(5),
    }
}

fuzz_target!(|data: &[u8]| {
    // The loader reads a path; one file per fuzzing process.
    let path = std::env::temp_dir().join(format!("cnn-fuzz-weights-{}.safetensors", std::process::id()));
    std::fs::write(&path, data).unwrap();
    if let Ok(net) = cnn::io::load_safetensors::<Mlp>(&path) {
        assert!(net.params().iter().all(|x| x.is_finite()));
    }
});
