//! The trainer end to end on a few hundred MNIST images: the run folder's files read back,
//! resume equality, divergence, and a refused overwrite.

use std::path::Path;
use std::sync::OnceLock;

use cnn::data::Mnist;
use cnn::prelude::*;
use cnn::train::{
    read_metrics, Checkpoint, EpochMetrics, LrSchedule, OptimizerConfig, Progress, RunSummary, Subset, TrainConfig,
    TrainError, TrainOutcome, Trainer,
};
use serde_json::Value;

cnn! {
    /// Small enough that an epoch over 320 images takes a blink.
    struct Small {
        input: [1, 28, 28],
        conv: Conv2d(4, kernel = 5, stride = 2) -> Relu,   // [4, 12, 12]
        pool: MaxPool2d(2),                                // [4, 6, 6]
        flatten: Flatten,
        fc1: Dense(32) -> Relu,
        fc2: Dense(10),
    }
}

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist");

fn mnist() -> &'static Mnist {
    static MNIST: OnceLock<Mnist> = OnceLock::new();
    MNIST.get_or_init(|| Mnist::load(DATA).expect("MNIST is in data/mnist"))
}

/// 320 training and 200 test images; one thread, so runs are bitwise reproducible.
fn config(runs: &Path, name: &str) -> TrainConfig {
    TrainConfig::new()
        .epochs(2)
        .batch_size(32)
        .optimizer(OptimizerConfig::sgd(0.05).with_momentum(0.9))
        .seed(3)
        .threads(1)
        .normalize(0.1307, 0.3081)
        .runs_dir(runs)
        .run_name(name)
        .progress(Progress::Silent)
}

fn fit(trainer: Trainer) -> Result<TrainOutcome<Small>, TrainError> {
    let m = mnist();
    trainer.fit(
        Small::new(3),
        &Subset::new(&m.train, 0..320),
        &Subset::new(&m.test, 0..200),
    )
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// No temporary file of an atomic write is left behind anywhere in the run folder.
fn assert_no_temporaries(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.') && !name.ends_with(".tmp"),
            "left over: {}",
            path.display()
        );
        if path.is_dir() {
            assert_no_temporaries(&path);
        }
    }
}

fn assert_png(path: &Path, size: (u32, u32)) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), size, "{}", path.display());
}

#[test]
fn a_short_run_writes_every_file_with_the_right_content() {
    let runs = tempfile::tempdir().unwrap();
    let config = config(runs.path(), "short")
        .schedule(LrSchedule::Step {
            step_size: 1,
            gamma: 0.5,
        })
        .data_dir(DATA)
        .summary(Small::summary());
    let outcome = fit(Trainer::new(config)).unwrap();
    let dir = runs.path().join("short");
    assert_eq!(outcome.run_dir, dir);

    // config.json: hyperparameters, model, data with checksums, provenance.
    let c = read_json(&dir.join("config.json"));
    assert_eq!(c["name"], "short");
    assert_eq!(c["crate_version"], env!("CARGO_PKG_VERSION"));
    assert!(c["created"].as_str().unwrap().ends_with('Z'));
    assert!(
        c["git_commit"].is_null() || c["git_commit"].as_str().unwrap().len() == 40,
        "{}",
        c["git_commit"]
    );
    assert_eq!(c["model"]["param_count"], Small::PARAM_COUNT);
    assert_eq!(c["model"]["input_shape"], serde_json::json!([1, 28, 28]));
    assert_eq!(c["model"]["summary"], Small::summary());
    let t = &c["training"];
    assert_eq!(t["epochs"], 2);
    assert_eq!(t["batch_size"], 32);
    assert_eq!(
        t["optimizer"],
        serde_json::json!({"kind": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": false})
    );
    assert_eq!(
        t["schedule"],
        serde_json::json!({"kind": "step", "step_size": 1, "gamma": 0.5})
    );
    assert_eq!(t["seed"], 3);
    assert_eq!(t["shuffle"], "every_epoch");
    assert_eq!(t["threads"], 1);
    assert_eq!(t["normalize"], serde_json::json!({"mean": 0.1307, "std": 0.3081}));
    assert_eq!(c["threads_used"], 1);
    assert_eq!(
        (c["data"]["train_samples"].as_u64(), c["data"]["test_samples"].as_u64()),
        (Some(320), Some(200))
    );
    let files = c["data"]["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz"
        ]
    );
    for f in files {
        let sha = f["sha256"].as_str().unwrap();
        assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()), "{sha}");
    }

    // metrics.jsonl and metrics.csv: one row per epoch, the same numbers.
    let history = read_metrics(&dir).unwrap();
    assert_eq!(history, outcome.history);
    assert_eq!(history.iter().map(|m| m.epoch).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(history.iter().map(|m| m.lr).collect::<Vec<_>>(), [0.05, 0.025]);
    for m in &history {
        assert!(m.train_loss > 0.0 && m.train_loss < 2.5, "{m:?}");
        assert!(m.test_loss > 0.0 && (0.0..=1.0).contains(&m.test_accuracy), "{m:?}");
        assert!(m.images_per_sec > 0.0 && m.epoch_time_s > 0.0, "{m:?}");
    }
    assert!(history[1].wall_time_s > history[0].wall_time_s);
    assert!(
        history[1].test_loss < history[0].test_loss && history[1].test_accuracy > 0.2,
        "two epochs on 320 images learn something: {history:?}"
    );
    let jsonl = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(jsonl.lines().next().unwrap())
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,train_loss,test_loss,test_accuracy,lr,images_per_sec,epoch_time_s,wall_time_s"
    );
    assert_eq!(lines.len(), 3);
    for (line, m) in lines[1..].iter().zip(&history) {
        let cols: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(cols.len(), 8);
        assert_eq!(cols[0], m.epoch as f64);
        assert_eq!(
            (cols[1], cols[2], cols[3]),
            (m.train_loss, m.test_loss, m.test_accuracy)
        );
        assert_eq!(cols[4] as f32, m.lr);
    }

    // Checkpoints: last is the final network; best is the best epoch's.
    let last: Checkpoint<Small> = Checkpoint::load(dir.join("checkpoints/last.safetensors")).unwrap();
    assert_eq!(last.net.params(), outcome.net.params());
    assert_eq!(
        (last.info.epoch, last.info.global_step, last.info.optimizer.as_str()),
        (2, 20, "sgd")
    );
    let best: Checkpoint<Small> = Checkpoint::load(dir.join("checkpoints/best.safetensors")).unwrap();
    let (best_acc, best_epoch) = outcome.best.unwrap();
    assert_eq!(
        (best.info.epoch, best.info.best_epoch, best.info.best_accuracy),
        (best_epoch, best_epoch, best_acc)
    );
    assert_eq!(best_acc, history.iter().map(|m| m.test_accuracy).fold(0.0, f64::max));
    // The checkpoint is a plain safetensors file: parameters by name, and the SGD momentum.
    let bytes = std::fs::read(dir.join("checkpoints/last.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        [
            "conv.bias",
            "conv.weight",
            "fc1.bias",
            "fc1.weight",
            "fc2.bias",
            "fc2.weight",
            "optim.momentum"
        ]
    );
    assert_eq!(st.tensor("optim.momentum").unwrap().shape(), [Small::PARAM_COUNT]);

    // Plots: SVG with text (the labels render without system fonts), PNG of the right size.
    let curves = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    for text in [
        "<svg",
        "short: training curves",
        "epoch",
        "train loss",
        "test loss",
        "test accuracy",
        "accuracy (%)",
    ] {
        assert!(curves.contains(text), "curves.svg lacks {text:?}");
    }
    assert_png(&dir.join("curves.png"), (1000, 420));
    let confusion = std::fs::read_to_string(dir.join("confusion.svg")).unwrap();
    for text in ["<svg", "predicted", "true", "test accuracy"] {
        assert!(confusion.contains(text), "confusion.svg lacks {text:?}");
    }
    assert_png(&dir.join("confusion.png"), (560, 620));
    assert_eq!(outcome.confusion.total(), 200);
    assert_eq!(outcome.confusion.accuracy(), history[1].test_accuracy);

    // The log holds the epoch lines and the confusion matrix table.
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert!(
        log.contains("train loss") && log.contains("true\\pred") && log.contains("recall"),
        "{log}"
    );
    assert_eq!(
        log.lines().filter(|l| l.trim_start().starts_with("2 ")).count(),
        2,
        "the epoch 2 line and the table's row 2:\n{log}"
    );

    // The comparison summary reads the folder back.
    let summary = RunSummary::load(&dir).unwrap();
    assert_eq!(
        (
            summary.name.as_str(),
            summary.epochs_done,
            summary.epochs_planned,
            summary.batch_size
        ),
        ("short", 2, 2, 32)
    );
    assert_eq!(summary.best, outcome.best);
    assert!(RunSummary::table(&mut [summary]).contains("short"));

    assert_no_temporaries(&dir);
}

/// Two epochs straight, against one epoch, stopped, and resumed for the second: the same
/// weights to the bit, for SGD with momentum and for Adam with a cosine schedule.
#[test]
fn a_resumed_run_ends_with_bitwise_the_same_weights() {
    let runs = tempfile::tempdir().unwrap();
    let setups = [
        (
            "sgd",
            OptimizerConfig::sgd(0.05).with_momentum(0.9),
            LrSchedule::Constant,
        ),
        (
            "adam",
            OptimizerConfig::adam(2e-3).with_weight_decay(1e-4),
            LrSchedule::Cosine { t_max: 2, min_lr: 1e-4 },
        ),
    ];
    for (name, optimizer, schedule) in setups {
        let straight = fit(Trainer::new(
            config(runs.path(), &format!("{name}-straight"))
                .optimizer(optimizer)
                .schedule(schedule),
        ))
        .unwrap();

        let stopped = config(runs.path(), &format!("{name}-stopped"))
            .optimizer(optimizer)
            .schedule(schedule)
            .epochs(1);
        let first = fit(Trainer::new(stopped)).unwrap();
        assert_eq!(first.history.len(), 1);
        let dir = first.run_dir;
        // Resumed with another progress mode and the default thread count restated: only
        // `epochs` and `threads` may change, and threads stay 1 here.
        let trainer = Trainer::resume(&dir)
            .unwrap()
            .epochs(2)
            .threads(1)
            .progress(Progress::Silent);
        assert_eq!(trainer.config().optimizer, optimizer);
        assert_eq!(trainer.config().schedule, schedule);
        let resumed = fit(trainer).unwrap();

        let same = straight
            .net
            .params()
            .iter()
            .zip(resumed.net.params())
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same,
            "{name}: the resumed run's weights differ from the uninterrupted run's"
        );
        assert_eq!(resumed.history.len(), 2);
        assert_eq!(
            resumed.history[0], first.history[0],
            "{name}: epoch 1 is kept as it was"
        );
        let strip = |m: &EpochMetrics| (m.epoch, m.train_loss, m.test_loss, m.test_accuracy, m.lr);
        assert_eq!(strip(&resumed.history[1]), strip(&straight.history[1]), "{name}");
        assert_eq!(read_metrics(&dir).unwrap().len(), 2);
        let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
        assert!(log.contains("resuming at epoch 2"), "{log}");
        let c = read_json(&dir.join("config.json"));
        assert_eq!(c["training"]["epochs"], 2, "config.json records the extended run");
    }
}

/// The learning rate jumps to 1e28 in epoch 2: the run stops there with an error naming the
/// epoch and the step, and the checkpoint of epoch 1 stays, intact.
#[test]
fn divergence_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let runs = tempfile::tempdir().unwrap();
    let exploding = config(runs.path(), "diverges").schedule(LrSchedule::Step {
        step_size: 1,
        gamma: 1e30,
    });
    let err = fit(Trainer::new(exploding)).unwrap_err();
    let dir = runs.path().join("diverges");
    let last = dir.join("checkpoints/last.safetensors");
    match &err {
        TrainError::Diverged {
            epoch,
            step,
            steps,
            checkpoint,
            ..
        } => {
            assert_eq!((*epoch, *steps), (2, 10));
            assert!((1..=10).contains(step));
            assert_eq!(checkpoint.as_deref(), Some(last.as_path()));
        }
        other => panic!("expected Diverged, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("training diverged") && msg.contains("at epoch 2, step "),
        "{msg}"
    );
    assert!(
        msg.contains("last good checkpoint") && msg.contains("last.safetensors"),
        "{msg}"
    );

    // The checkpoint is epoch 1's: the same weights as a run that stopped there.
    let kept: Checkpoint<Small> = Checkpoint::load(&last).unwrap();
    assert_eq!(kept.info.epoch, 1);
    assert!(kept.net.params().iter().all(|p| p.is_finite()));
    let one_epoch = fit(Trainer::new(config(runs.path(), "one-epoch").epochs(1))).unwrap();
    assert_eq!(kept.net.params(), one_epoch.net.params());
    assert_eq!(
        read_metrics(&dir).unwrap().len(),
        1,
        "nothing of the diverged epoch is recorded"
    );
    assert_no_temporaries(&dir);
}

#[test]
fn a_named_run_is_not_overwritten_and_bad_settings_are_refused() {
    let runs = tempfile::tempdir().unwrap();
    fit(Trainer::new(config(runs.path(), "taken").epochs(0))).unwrap();
    let err = fit(Trainer::new(config(runs.path(), "taken").epochs(0))).unwrap_err();
    assert!(matches!(err, TrainError::RunExists { .. }), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");

    let err = fit(Trainer::new(config(runs.path(), "b").batch_size(0))).unwrap_err();
    assert!(err.to_string().contains("batch size"), "{err}");
    assert!(!runs.path().join("b").exists(), "no folder for a run that cannot start");

    let err = Trainer::resume(runs.path().join("nope")).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
