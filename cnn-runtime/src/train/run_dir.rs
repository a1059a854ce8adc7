//! The run folder and its `config.json`: what was trained, on what, with which code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::atomic::write_atomically;
use super::{TrainConfig, TrainError};

/// The content of `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ConfigFile {
    /// The run folder's name.
    pub name: String,
    /// When the run started, UTC, `2024-05-01T12:00:00Z`.
    pub created: String,
    /// The version of `cnn-runtime` that trained it.
    pub crate_version: String,
    /// `git rev-parse HEAD` in the working folder, when it is a git checkout.
    pub git_commit: Option<String>,
    /// Whether that checkout had uncommitted changes.
    pub git_dirty: Option<bool>,
    pub model: ModelInfo,
    pub data: DataInfo,
    /// The hyperparameters.
    pub training: TrainConfig,
    /// The thread count the steps used (`training.threads` with 0 resolved), in each process.
    pub threads_used: usize,
    /// The processes that trained together (`training.distributed`): the MPI job's size, 1
    /// for a run of one process (and in files written before distributed runs).
    #[serde(default = "one")]
    pub world_size: usize,
}

fn one() -> usize {
    1
}

/// What `config.json` records of the network.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ModelInfo {
    pub param_count: usize,
    pub input_shape: Vec<usize>,
    pub output_len: usize,
    pub summary: Option<String>,
}

/// What `config.json` records of the data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DataInfo {
    pub dir: Option<PathBuf>,
    pub train_samples: usize,
    pub test_samples: usize,
    /// The IDX files of `dir`, with their SHA-256.
    pub files: Vec<FileChecksum>,
}

/// One data file and its checksum.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FileChecksum {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

impl ConfigFile {
    pub fn write(&self, dir: &Path) -> Result<(), TrainError> {
        let mut json = serde_json::to_string_pretty(self).expect("config serializes");
        json.push('\n');
        write_atomically(&dir.join("config.json"), json.as_bytes())
    }

    pub fn read(dir: &Path) -> Result<ConfigFile, TrainError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(TrainError::io(&path))?;
        serde_json::from_str(&text).map_err(|e| TrainError::bad_file(&path, format!("not a run configuration: {e}")))
    }
}

/// Creates the run folder for `config` (and `checkpoints/` in it) and returns its path and
/// name. A given name must be new; without one, the start time names it, with `-2`, `-3`, ...
/// appended if that is taken.
pub(crate) fn create(config: &TrainConfig) -> Result<(PathBuf, String), TrainError> {
    std::fs::create_dir_all(&config.runs_dir).map_err(TrainError::io(&config.runs_dir))?;
    let base = config.run_name.clone().unwrap_or_else(|| {
        timestamp(SystemTime::now())
            .replace(':', "-")
            .trim_end_matches('Z')
            .to_owned()
    });
    let mut name = base.clone();
    for n in 2.. {
        let path = config.runs_dir.join(&name);
        match std::fs::create_dir(&path) {
            Ok(()) => {
                let checkpoints = path.join("checkpoints");
                std::fs::create_dir(&checkpoints).map_err(TrainError::io(&checkpoints))?;
                return Ok((path, name));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if config.run_name.is_some() {
                    return Err(TrainError::RunExists { path });
                }
                name = format!("{base}-{n}");
            }
            Err(e) => return Err(TrainError::Io { path, source: e }),
        }
    }
    unreachable!("the loop returns")
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC.
pub(crate) fn timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The current commit and whether the checkout is dirty, if `git` runs here.
pub(crate) fn git_state() -> (Option<String>, Option<bool>) {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty());
    let dirty = commit
        .as_ref()
        .and_then(|_| run(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}

/// SHA-256 of every IDX file (a name with `-idx` in it) and CIFAR batch (`*.bin`) directly in
/// `dir`, by name. (An image folder's files are not summed: there may be millions.)
pub(crate) fn checksums(dir: &Path) -> Result<Vec<FileChecksum>, TrainError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(TrainError::io(dir))? {
        let entry = entry.map_err(TrainError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !(name.contains("-idx") || name.ends_with(".bin")) || !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(TrainError::io(&path))?;
        let digest = Sha256::digest(&bytes);
        files.push(FileChecksum {
            name,
            bytes: bytes.len() as u64,
            sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // date -u -d @1709210096: Thu Feb 29 12:34:56 UTC 2024 (a leap day).
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "2024-02-29T12:34:56Z"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_868_799)),
            "2000-02-29T23:59:59Z"
        );
    }

    #[test]
    fn named_run_must_be_new_and_unnamed_runs_get_suffixes() {
        let dir = tempfile::tempdir().unwrap();
        let config = TrainConfig::new().runs_dir(dir.path()).run_name("a");
        let (path, name) = create(&config).unwrap();
        assert_eq!(name, "a");
        assert!(path.join("checkpoints").is_dir());
        assert!(matches!(create(&config), Err(TrainError::RunExists { .. })));

        let config = TrainConfig::new().runs_dir(dir.path());
        let (_, first) = create(&config).unwrap();
        let (_, second) = create(&config).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn checksums_cover_idx_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), b"abc").unwrap();
        std::fs::write(dir.path().join("README.md"), b"x").unwrap();
        let files = checksums(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        // sha256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            files[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
