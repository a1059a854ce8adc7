//! Kernels and everything generic behind the `cnn!` macro: convolution, pooling, dense layers,
//! activations, the loss, optimizers, the [`Network`] trait, weight I/O and data sets.
//!
//! Users normally depend on the `cnn` facade crate, which re-exports this one.
//!
//! # Features
//!
//! `std` (on by default) brings weight files ([`io`]), data sets, training runs, the thread pool,
//! the Vec-based optimizers and run-time CPU feature detection. Without it the crate is
//! `#![no_std]` and needs no allocator: the kernels, the loss, [`optim::sgd_step`] and
//! [`embedded`] remain, and the SIMD paths are those enabled at compile time
//! (`-C target-feature=+avx2,+fma`).
#![cfg_attr(not(feature = "std"), no_std)]

// The safetensors rules need `String` and `Vec` even when the rest of the crate is `no_std`.
#[cfg(all(feature = "rules", not(feature = "std")))]
extern crate std;

pub mod activation;
#[cfg(feature = "std")]
mod atomic;
pub mod batchnorm;
#[doc(hidden)]
pub mod compiled;
pub mod conv;
pub mod conv_groups;
#[cfg(feature = "std")]
pub mod data;
pub mod dense;
pub mod dropout;
pub mod embedded;
#[cfg(feature = "std")]
mod error;
pub mod init;
#[cfg(feature = "std")]
pub mod io;
pub mod layout;
pub mod loss;
mod math;
mod network;
pub mod optim;
#[cfg(feature = "std")]
pub mod parallel;
pub mod parts;
pub mod pool;
pub mod residual;
#[cfg(feature = "rules")]
pub mod safetensors_rules;
pub mod shape;
pub(crate) mod simd;
mod split;
#[cfg(test)]
pub(crate) mod testutil;
#[cfg(feature = "std")]
pub mod train;
mod winograd;
#[cfg(feature = "std")]
pub mod workspace;

#[cfg(feature = "std")]
pub use error::Error;
pub use network::{Network, ParamInfo, TrainState};
pub use simd::kernels;
