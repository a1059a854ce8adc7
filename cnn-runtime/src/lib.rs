//! Kernels and everything generic behind the `cnn!` macro: convolution, pooling, dense layers,
//! activations, the loss, optimizers, the [`Network`] trait, weight I/O and data sets.
//!
//! Users normally depend on the `cnn` facade crate, which re-exports this one.

pub mod activation;
pub mod conv;
pub mod data;
pub mod dense;
mod error;
pub mod gemm;
pub mod init;
pub mod io;
pub mod layout;
pub mod loss;
mod network;
pub mod optim;
pub mod parallel;
pub mod pool;
pub mod shape;
pub mod simd;
#[cfg(test)]
pub(crate) mod testutil;
pub mod train;
pub mod workspace;

pub use error::Error;
pub use network::{Network, ParamInfo};
