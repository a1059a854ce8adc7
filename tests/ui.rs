//! Compile-fail cases for `cnn!`: one mistake per file, grouped by the pass that catches it
//! (`parse/`: the declaration's structure, names and input; `args/`: a layer's arguments;
//! `shape/`: shapes flowing between stages, overflow, and code using an erroneous network).
//! Each `.stderr` is what a user sees; regenerate with `TRYBUILD=overwrite cargo test --test ui`
//! and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/parse/*.rs");
    t.compile_fail("tests/ui/args/*.rs");
    t.compile_fail("tests/ui/shape/*.rs");
}
