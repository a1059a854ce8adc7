//! Data-parallel training over MPI (README, "Beyond one machine"), with `mpirun -np 2` on a few
//! hundred MNIST images: the weights equal those of one process on the same global batch within
//! float32 rounding, the ranks end with the same network, one run folder is written, a resumed
//! run resumes on both ranks, and a failing rank stops the job with one error message.
//!
//! This test binary is also the MPI program: each test starts `mpirun -np 2` on the binary
//! itself, running only the ignored test `rank`, which reads what to do from `CNN_RANK_*`
//! variables. Needs `mpirun` (Open MPI or MPICH) on the PATH; `.ci/run` installs Open MPI.
#![cfg(feature = "distributed")]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cnn::data::Mnist;
use cnn::prelude::*;
use cnn::train::{Mpi, OptimizerConfig, Progress, Subset, TrainConfig, TrainError, Trainer};
use serde_json::Value;

cnn! {
    /// Small enough that an epoch over 501 images takes a blink.
    struct Small {
        input: [1, 28, 28],
        conv: Conv2d(4, kernel = 5, stride = 2) -> Relu,   // [4, 12, 12]
        pool: MaxPool2d(2),                                // [4, 6, 6]
        flatten: Flatten,
        fc1: Dense(32) -> Relu,
        fc2: Dense(10),
    }
}

cnn! {
    /// With BatchNorm, whose running statistics each rank updates from its own shares.
    struct Normed {
        input: [1, 28, 28],
        conv: Conv2d(4, kernel = 5, stride = 2),           // [4, 12, 12]
        bn: BatchNorm2d,
        relu: Relu,
        pool: MaxPool2d(2),                                // [4, 6, 6]
        flatten: Flatten,
        fc: Dense(10),
    }
}

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist");

/// What one process of a test run does, read from the environment by [`rank`].
#[derive(Clone, Debug, Default)]
struct Job {
    /// `small` or `normed`.
    model: &'static str,
    distributed: bool,
    epochs: usize,
    lr: f32,
    runs: PathBuf,
    /// Where each rank saves its final network, as `rank<R>.safetensors`.
    out: PathBuf,
    /// The run folder to resume, if any.
    resume: Option<PathBuf>,
    /// The rank that reads a data folder that does not exist, if any.
    bad_rank: Option<usize>,
}

impl Job {
    fn new(dir: &Path, distributed: bool) -> Job {
        Job {
            model: "small",
            distributed,
            epochs: 2,
            lr: 0.05,
            runs: dir.join("runs"),
            out: dir.join("out"),
            ..Job::default()
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CNN_RANK_MODEL", self.model.to_owned()),
            ("CNN_RANK_DISTRIBUTED", u8::from(self.distributed).to_string()),
            ("CNN_RANK_EPOCHS", self.epochs.to_string()),
            ("CNN_RANK_LR", self.lr.to_string()),
            ("CNN_RANK_RUNS", self.runs.display().to_string()),
            ("CNN_RANK_OUT", self.out.display().to_string()),
        ];
        if let Some(dir) = &self.resume {
            env.push(("CNN_RANK_RESUME", dir.display().to_string()));
        }
        if let Some(rank) = self.bad_rank {
            env.push(("CNN_RANK_BAD", rank.to_string()));
        }
        env
    }

    fn from_env() -> Option<Job> {
        let var = |name: &str| std::env::var(name).ok();
        Some(Job {
            model: match var("CNN_RANK_MODEL")?.as_str() {
                "normed" => "normed",
                _ => "small",
            },
            distributed: var("CNN_RANK_DISTRIBUTED")? == "1",
            epochs: var("CNN_RANK_EPOCHS")?.parse().ok()?,
            lr: var("CNN_RANK_LR")?.parse().ok()?,
            runs: var("CNN_RANK_RUNS")?.into(),
            out: var("CNN_RANK_OUT")?.into(),
            resume: var("CNN_RANK_RESUME").map(PathBuf::from),
            bad_rank: var("CNN_RANK_BAD").and_then(|r| r.parse().ok()),
        })
    }
}

/// One process of a test run, started by the tests below (alone, or by `mpirun`); does
/// nothing when run otherwise. Mirrors the examples' `main`: every rank prints its error
/// unless another rank reports it, and exits with status 3 on an error.
#[test]
#[ignore = "one rank of the MPI runs the other tests start"]
fn rank() {
    let Some(job) = Job::from_env() else { return };
    let mpi = job.distributed.then(|| Mpi::init().expect("MPI starts"));
    let result = run_rank(&job, mpi.as_ref());
    // Print before `MPI_Finalize`, as the examples' `main` does: once a rank has finalized and
    // exited with an error, `mpirun` may kill the others before they print theirs.
    if let Err(e) = &result {
        if !matches!(e, TrainError::OtherRank { .. }) {
            eprintln!("error: {e}");
        }
    }
    drop(mpi);
    if result.is_err() {
        std::process::exit(3);
    }
}

fn run_rank(job: &Job, mpi: Option<&Mpi>) -> Result<(), TrainError> {
    let rank = mpi.map_or(0, Mpi::rank);
    let data = match job.bad_rank == Some(rank) {
        true => Path::new("/no/such/mnist"),
        false => Path::new(DATA),
    };
    let loaded = Mnist::load(data).map_err(TrainError::from);
    let mnist = match mpi {
        Some(mpi) => mpi.agree(loaded)?,
        None => loaded?,
    };
    // 501 training images: the last batch of 53 splits into 26 and 27.
    let (train, test) = (Subset::new(&mnist.train, 0..501), Subset::new(&mnist.test, 0..300));
    let trainer = match &job.resume {
        Some(dir) => Trainer::resume(dir)?.epochs(job.epochs).distributed(job.distributed),
        None => Trainer::new(
            TrainConfig::new()
                .epochs(job.epochs)
                .batch_size(64)
                .optimizer(OptimizerConfig::sgd(job.lr).with_momentum(0.9))
                .seed(3)
                .threads(1)
                .normalize(0.1307, 0.3081)
                .distributed(job.distributed)
                .runs_dir(&job.runs)
                .run_name("run")
                .progress(Progress::Silent),
        ),
    };
    let out = job.out.join(format!("rank{rank}.safetensors"));
    std::fs::create_dir_all(&job.out).map_err(|source| TrainError::Io {
        path: job.out.clone(),
        source,
    })?;
    match job.model {
        "normed" => cnn::io::save_safetensors(&trainer.fit(Normed::new(3), &train, &test)?.net, out)?,
        _ => cnn::io::save_safetensors(&trainer.fit(Small::new(3), &train, &test)?.net, out)?,
    }
    Ok(())
}

/// What a process or a job left: its exit status and its standard error.
struct Finished {
    status: ExitStatus,
    stderr: String,
}

/// Runs `job` in `ranks` processes (under `mpirun` when `ranks > 1`), and waits for them, at
/// most two minutes: a job that hangs fails the test.
fn launch(job: &Job, ranks: usize, dir: &Path) -> Finished {
    let exe = std::env::current_exe().expect("the test binary's path");
    let harness = ["rank", "--exact", "--ignored", "--nocapture", "--test-threads=1"];
    let mut command = match ranks {
        1 => Command::new(&exe),
        n => {
            let mut mpirun = Command::new("mpirun");
            mpirun.args(["-np", &n.to_string()]);
            for (name, _) in job.env() {
                mpirun.args(["-x", name]);
            }
            mpirun.arg(&exe);
            mpirun
        }
    };
    command.args(harness).envs(job.env());
    // Open MPI: as root (CI), more ranks than cores, over TCP, which works in any container.
    command
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("OMPI_MCA_btl", "tcp,self");
    let stderr_path = dir.join(format!("stderr-{}", std::process::id()));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?} ({e}); is mpirun (Open MPI) installed?"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{command:?} did not finish within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    std::fs::remove_file(&stderr_path).unwrap();
    Finished { status, stderr }
}

/// Runs `job` and fails the test, with its standard error, unless every process succeeds.
fn run_ok(job: &Job, ranks: usize, dir: &Path) {
    let done = launch(job, ranks, dir);
    assert!(done.status.success(), "{ranks} process(es) failed: {}", done.stderr);
}

/// The parameters and buffers a rank saved.
fn saved(job: &Job, rank: usize) -> (Vec<f32>, Vec<f32>) {
    let path = job.out.join(format!("rank{rank}.safetensors"));
    match job.model {
        "normed" => {
            let net: Normed = cnn::io::load_safetensors(&path).unwrap();
            (net.params().to_vec(), net.buffers().to_vec())
        }
        _ => {
            let net: Small = cnn::io::load_safetensors(&path).unwrap();
            (net.params().to_vec(), net.buffers().to_vec())
        }
    }
}

fn folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|x| x.to_bits()).collect()
}

/// Two ranks, each on half of every batch of 64, end where one process on the whole batches
/// ends, up to the order of the sums: within float32 rounding (6e-8 here), while training
/// moved the weights 0.17. Both ranks hold the same network, and rank 0 alone wrote
/// the run folder, which records the two processes.
#[test]
fn two_ranks_train_the_network_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let alone = Job::new(&dir.path().join("alone"), false);
    let pair = Job::new(&dir.path().join("pair"), true);
    run_ok(&alone, 1, dir.path());
    run_ok(&pair, 2, dir.path());

    let (want, _) = saved(&alone, 0);
    let (got, _) = saved(&pair, 0);
    let initial = Small::new(3);
    let moved = want
        .iter()
        .zip(initial.params())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let off = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(moved > 0.05, "training moved the weights by at most {moved}");
    assert!(
        off < 2e-6,
        "two ranks differ from one process by {off} (training moved them {moved})"
    );
    assert_eq!(
        bits(&saved(&pair, 1).0),
        bits(&got),
        "the ranks end with different weights"
    );

    assert_eq!(folders(&pair.runs), ["run"], "one run folder");
    let config = read_json(&pair.runs.join("run/config.json"));
    assert_eq!(
        (
            config["world_size"].as_u64(),
            config["training"]["distributed"].as_bool()
        ),
        (Some(2), Some(true))
    );
    assert_eq!(read_json(&alone.runs.join("run/config.json"))["world_size"], 1);
    // The same epochs, losses and accuracy as one process, up to rounding.
    let metrics = |job: &Job| cnn::train::read_metrics(job.runs.join("run")).unwrap();
    let (one, two) = (metrics(&alone), metrics(&pair));
    assert_eq!(two.len(), 2);
    for (a, b) in one.iter().zip(&two) {
        assert!((a.train_loss - b.train_loss).abs() < 1e-5, "{a:?} {b:?}");
        assert!((a.test_loss - b.test_loss).abs() < 1e-5, "{a:?} {b:?}");
        assert_eq!(a.test_accuracy, b.test_accuracy);
    }
}

/// With BatchNorm, each rank normalizes with the statistics of its share, so the run is not
/// one process's; but rank 0's running statistics are broadcast before the checkpoints, so
/// both ranks end with one network, the one the last checkpoint holds.
#[test]
fn ranks_end_with_rank_zeros_running_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let job = Job {
        model: "normed",
        epochs: 1,
        ..Job::new(dir.path(), true)
    };
    run_ok(&job, 2, dir.path());
    let (params, buffers) = saved(&job, 0);
    assert_eq!(saved(&job, 1), (params.clone(), buffers.clone()));
    assert_ne!(buffers, Normed::new(3).buffers(), "the running statistics moved");
    let last: cnn::train::Checkpoint<Normed> =
        cnn::train::Checkpoint::load(job.runs.join("run/checkpoints/last.safetensors")).unwrap();
    assert_eq!(
        (bits(last.net.params()), bits(last.net.buffers())),
        (bits(&params), bits(&buffers))
    );
}

/// A distributed run stopped after one epoch and resumed on both ranks ends bitwise where an
/// uninterrupted distributed run does.
#[test]
fn a_resumed_run_resumes_on_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let straight = Job::new(&dir.path().join("straight"), true);
    run_ok(&straight, 2, dir.path());
    let stopped = Job {
        epochs: 1,
        ..Job::new(&dir.path().join("stopped"), true)
    };
    run_ok(&stopped, 2, dir.path());
    let resumed = Job {
        resume: Some(stopped.runs.join("run")),
        ..Job::new(&dir.path().join("stopped"), true)
    };
    run_ok(&resumed, 2, dir.path());
    assert_eq!(bits(&saved(&resumed, 0).0), bits(&saved(&straight, 0).0));
    assert_eq!(bits(&saved(&resumed, 1).0), bits(&saved(&straight, 0).0));
    assert_eq!(folders(&resumed.runs), ["run"]);
    assert_eq!(cnn::train::read_metrics(resumed.runs.join("run")).unwrap().len(), 2);
}

/// A rank that cannot read its data stops both: the job fails, its error is printed once, and
/// no run folder is made. A loss that diverges on both ranks is reported once too.
#[test]
fn a_failing_rank_stops_the_job_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad_data = Job {
        bad_rank: Some(1),
        ..Job::new(&dir.path().join("bad"), true)
    };
    let done = launch(&bad_data, 2, dir.path());
    assert!(!done.status.success());
    assert_eq!(done.stderr.matches("error: ").count(), 1, "{}", done.stderr);
    assert!(done.stderr.contains("/no/such/mnist"), "{}", done.stderr);
    assert!(folders(&bad_data.runs).is_empty());

    let diverging = Job {
        lr: 1e30,
        ..Job::new(&dir.path().join("nan"), true)
    };
    let done = launch(&diverging, 2, dir.path());
    assert!(!done.status.success());
    assert_eq!(done.stderr.matches("error: ").count(), 1, "{}", done.stderr);
    assert!(done.stderr.contains("training diverged"), "{}", done.stderr);
    assert_eq!(folders(&diverging.runs), ["run"]);
}
