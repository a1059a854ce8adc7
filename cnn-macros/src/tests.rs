//! Expansion tests without a compiler: declarations in, parsed Rust or errors out.
