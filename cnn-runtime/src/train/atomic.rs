//! Writing run files so that a reader (or a crash) never sees half of one.

use std::path::Path;

use super::TrainError;

/// [`crate::atomic::write_atomically`], its error naming the file as a run's errors do.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    crate::atomic::write_atomically(path, bytes).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_the_file() {
        let err = write_atomically(Path::new("/no/such/dir/a.json"), b"x").unwrap_err();
        assert!(err.to_string().contains("/no/such/dir/a.json"), "{err}");
    }
}
