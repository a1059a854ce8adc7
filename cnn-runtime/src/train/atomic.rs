//! Writing run files so that a reader (or a crash) never sees half of one.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::TrainError;

/// Writes `bytes` to a fresh hidden file beside `path`, flushes it to disk and renames it over
/// `path`: rename within one folder is atomic, so `path` holds either the old content or the
/// new, never a mix. The temporary file is removed if anything fails.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = temporary_path(path);
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(source) = written {
        // Best effort: the error that matters is the one that stopped the write.
        let _ = fs::remove_file(&tmp);
        return Err(TrainError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

/// `dir/.NAME.PID-N.tmp` beside `dir/NAME`, unique per process and call.
fn temporary_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failure_names_the_file() {
        let err = write_atomically(Path::new("/no/such/dir/a.json"), b"x").unwrap_err();
        assert!(err.to_string().contains("/no/such/dir/a.json"), "{err}");
    }
}
