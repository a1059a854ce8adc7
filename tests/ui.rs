//! Compile-fail cases for `cnn!`: one mistake per file, grouped by the pass that catches it
//! (`parse/`: the declaration's structure, names and input; `args/`: a layer's arguments;
//! `shape/`: shapes flowing between stages, overflow, and code using an erroneous network;
//! `blocks/`: groups (`Sequential`, `Residual`, `Shortcut`), their names and paths;
//! `weights/`: a `#[weights = "..."]` file that does not fit, one per kind of mismatch or damage,
//! with the files in `weights/fixtures/`, written by its `make.py`), and `pass/`: declarations
//! that must compile and run.
//! Each `.stderr` is what a user sees; regenerate with `TRYBUILD=overwrite cargo test --test ui`
//! and read the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn ui() {
    copy_weight_fixtures();
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/parse/*.rs");
    t.compile_fail("tests/ui/args/*.rs");
    t.compile_fail("tests/ui/shape/*.rs");
    t.compile_fail("tests/ui/blocks/*.rs");
    t.compile_fail("tests/ui/weights/*.rs");
    t.pass("tests/ui/pass/*.rs");
}

/// trybuild builds the cases as a crate of its own in `<target dir>/tests/trybuild/cnn/`, which
/// is their CARGO_MANIFEST_DIR, the folder `#[weights = "..."]` paths are relative to. The
/// weight cases name `fixtures/NAME.safetensors`: copy `tests/ui/weights/fixtures/` there, so
/// they work wherever the target folder is (`CARGO_TARGET_DIR`, `build.target-dir`, ...).
fn copy_weight_fixtures() {
    let project = trybuild_target_dir()
        .join("tests")
        .join("trybuild")
        .join(env!("CARGO_PKG_NAME"));
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/weights/fixtures");
    let to = project.join("fixtures");
    // Start afresh, so a fixture removed from the repository is gone here too.
    if to.exists() {
        std::fs::remove_dir_all(&to).unwrap_or_else(|e| panic!("cannot clear {}: {e}", to.display()));
    }
    std::fs::create_dir_all(&to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    for entry in std::fs::read_dir(&from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "safetensors") {
            let dest = to.join(path.file_name().unwrap());
            std::fs::copy(&path, &dest)
                .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", path.display(), dest.display()));
        }
    }
}

/// The target directory exactly as trybuild finds it: `cargo metadata --no-deps
/// --format-version=1` run with `$CARGO` from this process's working directory (the package's
/// root), which honours `CARGO_TARGET_DIR` and the `.cargo/config.toml` files as trybuild sees them.
fn trybuild_target_dir() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version=1"])
        .output()
        .expect("cannot run `cargo metadata`");
    assert!(
        output.status.success(),
        "`cargo metadata` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("`cargo metadata` printed no JSON");
    let dir = metadata["target_directory"]
        .as_str()
        .expect("`cargo metadata` gave no target_directory");
    PathBuf::from(dir)
}
