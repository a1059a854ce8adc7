//! Scratch memory that a network reuses from call to call.

use std::sync::{Mutex, TryLockError};

/// A growable `f32` buffer owned by a network, so that `forward` and training steps allocate
/// nothing after their first call with a given batch size.
///
/// It is behind a lock so networks stay `Sync`: a call that finds the buffer busy (another
/// thread is using the same network) works in a fresh buffer instead of waiting. Cloning gives
/// an empty workspace.
///
/// ```
/// use cnn_runtime::workspace::Workspace;
/// let ws = Workspace::default();
/// let sum = ws.with(3, |buf| { buf.fill(1.0); buf.iter().sum::<f32>() });
/// assert_eq!(sum, 3.0);
/// ```
#[derive(Default)]
pub struct Workspace {
    buf: Mutex<Vec<f32>>,
}

impl Workspace {
    /// Runs `f` on a buffer of exactly `len` elements (contents unspecified).
    pub fn with<R>(&self, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        let mut guard = match self.buf.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return f(&mut vec![0.0; len]),
        };
        if guard.len() < len {
            guard.resize(len, 0.0);
        }
        f(&mut guard[..len])
    }
}

impl Clone for Workspace {
    fn clone(&self) -> Self {
        Workspace::default()
    }
}

impl core::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Workspace").finish_non_exhaustive()
    }
}
