//! How many threads the training step may use.
//!
//! A training step splits its batch into one contiguous chunk per thread, computes each
//! chunk's gradient, and sums the chunks in a fixed order, so a given thread count always gives
//! bitwise the same result. The default is every core of the machine.

use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 means "not set": use every core.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads a training step uses (at least 1; 0 restores the default, every
/// core).
///
/// ```
/// cnn_runtime::parallel::set_threads(1);
/// assert_eq!(cnn_runtime::parallel::threads(), 1);
/// cnn_runtime::parallel::set_threads(0);
/// assert!(cnn_runtime::parallel::threads() >= 1);
/// ```
pub fn set_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// The number of threads a training step uses.
///
/// The default, every core, is asked of the operating system once per process (which reads
/// cgroup files and allocates); every later call is an atomic load.
pub fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    }
}

/// The machine's cores as the operating system reported them the first time they were needed.
static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
