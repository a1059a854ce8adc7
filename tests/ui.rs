//! Compile-fail cases for `cnn!`: one mistake per file, grouped by the pass that catches it
//! (`parse/`: the declaration's structure, names and input; `args/`: a layer's arguments;
//! `shape/`: shapes flowing between stages, overflow, and code using an erroneous network;
//! `weights/`: a `#[weights = "..."]` file that does not fit, one per kind of mismatch or damage,
//! with the files in `weights/fixtures/`, written by its `make.py`).
//! Each `.stderr` is what a user sees; regenerate with `TRYBUILD=overwrite cargo test --test ui`
//! and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/parse/*.rs");
    t.compile_fail("tests/ui/args/*.rs");
    t.compile_fail("tests/ui/shape/*.rs");
    // The weight paths assume the default target directory (trybuild builds the cases in
    // `target/tests/trybuild/cnn/`, their CARGO_MANIFEST_DIR).
    t.compile_fail("tests/ui/weights/*.rs");
}
