//! Train a ResNet-8 on CIFAR-10 (binary version), evaluating on the test set after every epoch.
//!
//! ```text
//! cargo run --release --example cifar -- --data DIR [--epochs 1 --batch-size 32 --lr 0.1 --seed 1]
//! cargo run --release --example cifar -- --data DIR --no-augment
//! cargo run --release --example cifar -- --resume runs/NAME [--epochs 5]
//! cargo build --release --features distributed --example cifar
//! mpirun -np 2 target/release/examples/cifar --distributed --data DIR [--threads 1 ...]
//! ```
//!
//! `DIR` holds CIFAR-10's binary version (`data_batch_1.bin` .. `data_batch_5.bin`,
//! `test_batch.bin`, or the folder `cifar-10-batches-bin` the archive unpacks to), or any data
//! set of 32x32 RGB images: an image folder (`train/<class>/*.png`, `test/<class>/*.png`) too.
//!
//! Defaults, chosen for short runs (one epoch, ~1 minute on 2 cores): batch 32 (on the CPU a
//! smaller batch costs no throughput and gives a one-epoch run 1,563 steps instead of 391), SGD
//! with Nesterov momentum 0.9, lr 0.1 decayed to 0 along a cosine at every step over the epochs
//! asked for, weight decay 5e-4, inputs normalized by the training split's per-channel mean and
//! deviation; augmentation (CIFAR's RandomCrop(32, padding = 4) and horizontal flips) from 3
//! epochs on, flips alone below: on so short a run the network underfits, and crops only slow
//! it down. `--crop-padding N` sets the crop (0: off) whatever the epochs; `--no-augment` turns
//! both off.
//!
//! With `--distributed` (built with `--features distributed`, started by `mpirun`), every process
//! trains on its share of each batch of `--batch-size`; rank 0 prints, writes the run folder and
//! saves the weights (see `cnn::train::Mpi`).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use cnn::data::{load_any, Augment, Splits};
use cnn::train::{exit_code, LrSchedule, Mpi, OptimizerConfig, TrainConfig, TrainOutcome, Trainer};

#[path = "common/resnet8.rs"]
mod resnet8;
use resnet8::ResNet8;

/// What to say when no data set is given.
const WHERE_TO_GET_CIFAR: &str = "\
this example needs CIFAR-10, binary version, which does not ship with the project.
Download and unpack it (163 MB; the 'CIFAR-10 binary version (suitable for C programs)' of
https://www.cs.toronto.edu/~kriz/cifar.html):

    curl -O https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
    tar xzf cifar-10-binary.tar.gz        # creates cifar-10-batches-bin/

then run

    cargo run --release --example cifar -- --data cifar-10-batches-bin

--data also takes an image folder of 32x32 RGB images (train/<class>/*.png, test/<class>/*.png).";

/// Train a ResNet-8 on CIFAR-10 (binary version) or any data set of 32x32 RGB images in 10 classes.
#[derive(Parser, Debug)]
#[command(long_about = None)]
struct Args {
    /// Epochs to train (in all, when resuming) [default: 1]
    #[arg(long)]
    epochs: Option<usize>,
    /// Samples per step [default: 32]
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate at the start of the cosine [default: 0.1 for SGD, 0.002 for Adam]
    #[arg(long)]
    lr: Option<f32>,
    /// The optimizer [default: sgd]
    #[arg(long, value_enum)]
    optimizer: Option<Optimizer>,
    /// SGD momentum (Nesterov) [default: 0.9]
    #[arg(long)]
    momentum: Option<f32>,
    /// L2 penalty [default: 5e-4]
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Learning-rate schedule: cosine (per step, to 0 over --epochs), constant, or step (x0.1 every --step-size epochs) [default: cosine]
    #[arg(long, value_enum)]
    schedule: Option<Schedule>,
    /// Epochs between two decays of the step schedule [default: 1]
    #[arg(long)]
    step_size: Option<usize>,
    /// No augmentation (by default: random crop with padding 4 and flips from 3 epochs on, flips alone below)
    #[arg(long)]
    no_augment: bool,
    /// Padding of the random crop; 0 turns it off [default: 4 from 3 epochs on, 0 below]
    #[arg(long)]
    crop_padding: Option<usize>,
    /// Threads per training step; 0 uses every core [default: 0]
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the initialization, the shuffling and the augmentation [default: 1]
    #[arg(long)]
    seed: Option<u64>,
    /// The data set: a CIFAR-10 binary folder (data_batch_1.bin .. test_batch.bin) or an image folder of 32x32 RGB images [required, or the resumed run's]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Folder that holds the run folders [default: runs]
    #[arg(long)]
    runs_dir: Option<PathBuf>,
    /// Name of the run folder [default: the start time]
    #[arg(long)]
    run_name: Option<String>,
    /// Continue the run in this folder from its last checkpoint
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Where to save the final weights [default: models/resnet8.safetensors]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Data-parallel over the processes mpirun starts (`mpirun -np 2 ... --distributed`): each takes its share of every batch; needs a build with `--features distributed`
    #[arg(long)]
    distributed: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Optimizer {
    Sgd,
    Adam,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Schedule {
    Cosine,
    Constant,
    Step,
}

/// The default augmentation for a run of `epochs` epochs (see the module docs).
fn default_augment(epochs: usize, crop_padding: Option<usize>) -> Augment {
    let padding = crop_padding.unwrap_or(if epochs >= 3 { 4 } else { 0 });
    Augment::none().with_crop(padding).with_flip()
}

/// A new run's configuration from the flags, the defaults and the training split's statistics.
fn new_config(a: &Args, data: &Path, mean: &[f32], std: &[f32]) -> TrainConfig {
    let epochs = a.epochs.unwrap_or(1);
    let decay = a.weight_decay.unwrap_or(5e-4);
    let optimizer = match a.optimizer.unwrap_or(Optimizer::Sgd) {
        Optimizer::Sgd => match OptimizerConfig::sgd(a.lr.unwrap_or(0.1)).with_momentum(a.momentum.unwrap_or(0.9)) {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                dampening,
                ..
            } => OptimizerConfig::Sgd {
                lr,
                momentum,
                dampening,
                weight_decay: decay,
                nesterov: momentum > 0.0,
            },
            adam => adam,
        },
        Optimizer::Adam => OptimizerConfig::adam(a.lr.unwrap_or(2e-3)).with_weight_decay(decay),
    };
    let schedule = match a.schedule.unwrap_or(Schedule::Cosine) {
        Schedule::Constant => LrSchedule::Constant,
        Schedule::Step => LrSchedule::Step {
            step_size: a.step_size.unwrap_or(1),
            gamma: 0.1,
        },
        Schedule::Cosine => LrSchedule::CosineSteps {
            t_max: epochs.max(1),
            min_lr: 0.0,
        },
    };
    let augment = if a.no_augment {
        Augment::none()
    } else {
        default_augment(epochs, a.crop_padding)
    };
    let mut config = TrainConfig::new()
        .epochs(epochs)
        .batch_size(a.batch_size.unwrap_or(32))
        .optimizer(optimizer)
        .schedule(schedule)
        .seed(a.seed.unwrap_or(1))
        .threads(a.threads.unwrap_or(0))
        .normalize_channels(mean, std)
        .augment(augment)
        .runs_dir(a.runs_dir.clone().unwrap_or_else(|| "runs".into()))
        .data_dir(data)
        .summary(ResNet8::summary())
        .distributed(a.distributed);
    if let Some(name) = &a.run_name {
        config = config.run_name(name.clone());
    }
    config
}

fn main() -> ExitCode {
    let args = Args::parse();
    // With --distributed, MPI runs until `mpi` is dropped at the end of `main`; in an MPI job
    // one rank reports a failure, the others stop without a word.
    let mpi = match args.distributed.then(Mpi::init).transpose() {
        Ok(mpi) => mpi,
        Err(e) => return exit_code(Err(e.into())),
    };
    exit_code(run(args, mpi.as_ref()))
}

fn run(a: Args, mpi: Option<&Mpi>) -> Result<(), Box<dyn Error>> {
    // Rank 0 (or the one process) prints and saves.
    let root = mpi.is_none_or(|mpi| mpi.rank() == 0);
    let prepared = prepare(&a, root);
    // Every rank of a job goes on, or none: a rank that could not read its data stops them all.
    let (trainer, splits, data, out) = match mpi {
        Some(mpi) => mpi.agree(prepared)?,
        None => prepared?,
    };
    if root {
        println!(
            "{}: {} ({} training and {} test images, {:.0} MB as u8)",
            data.display(),
            splits.format.name(),
            splits.train.len(),
            splits.test.len(),
            (splits.train.memory_bytes() + splits.test.memory_bytes()) as f64 / 1e6
        );
        println!("{}", ResNet8::summary());
    }
    let start = Instant::now();
    let outcome = trainer.fit(ResNet8::new(trainer.config().seed), &splits.train, &splits.test)?;
    match root {
        true => report(&outcome, &out, start),
        false => Ok(()),
    }
}

/// The trainer, the data, its folder and where to save the weights (that file's folder
/// created if `root`), from the flags.
fn prepare(a: &Args, root: bool) -> Result<(Trainer, Splits, PathBuf, PathBuf), Box<dyn Error>> {
    let resumed = match &a.resume {
        Some(dir) => Some(resume(a, dir)?),
        None => None,
    };
    let data = a
        .data
        .clone()
        .or_else(|| resumed.as_ref().and_then(|t| t.config().data_dir.clone()))
        .ok_or(WHERE_TO_GET_CIFAR)?;
    let splits = load_any(&data, [3, 32, 32])?;
    let classes = splits.class_names.len();
    if classes != ResNet8::OUTPUT_LEN {
        return Err(format!(
            "{} holds {classes} classes ({}), but this ResNet-8 classifies into {}",
            data.display(),
            splits.class_names.join(", "),
            ResNet8::OUTPUT_LEN
        )
        .into());
    }
    let trainer = match resumed {
        Some(trainer) => trainer,
        None => {
            let (mean, std) = splits.train.channel_mean_std();
            Trainer::new(new_config(a, &data, &mean, &std))
        }
    };
    let out = a.out.clone().unwrap_or_else(|| "models/resnet8.safetensors".into());
    if let Some(dir) = out.parent().filter(|d| root && !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    Ok((trainer, splits, data, out))
}

/// The trainer of a resumed run: only `--epochs`, `--threads`, `--distributed` and `--data` may
/// be given.
fn resume(a: &Args, dir: &Path) -> Result<Trainer, Box<dyn Error>> {
    let fixed = [
        ("--batch-size", a.batch_size.is_some()),
        ("--lr", a.lr.is_some()),
        ("--optimizer", a.optimizer.is_some()),
        ("--momentum", a.momentum.is_some()),
        ("--weight-decay", a.weight_decay.is_some()),
        ("--schedule", a.schedule.is_some()),
        ("--step-size", a.step_size.is_some()),
        ("--no-augment", a.no_augment),
        ("--crop-padding", a.crop_padding.is_some()),
        ("--seed", a.seed.is_some()),
        ("--runs-dir", a.runs_dir.is_some()),
        ("--run-name", a.run_name.is_some()),
    ];
    if let Some((flag, _)) = fixed.iter().find(|(_, given)| *given) {
        return Err(format!(
            "{flag} cannot change when resuming: a resumed run keeps the hyperparameters in {}",
            dir.join("config.json").display()
        )
        .into());
    }
    let mut trainer = Trainer::resume(dir)?;
    if trainer.config().summary.as_deref() != Some(ResNet8::summary()) {
        return Err(format!("{} trains another network than this example's ResNet-8", dir.display()).into());
    }
    if let Some(epochs) = a.epochs {
        trainer = trainer.epochs(epochs);
    }
    if let Some(threads) = a.threads {
        trainer = trainer.threads(threads);
    }
    Ok(trainer.distributed(a.distributed))
}

/// Saves the trained network and prints the closing line.
fn report(outcome: &TrainOutcome<ResNet8>, out: &Path, start: Instant) -> Result<(), Box<dyn Error>> {
    cnn::io::save_safetensors(&outcome.net, out)?;
    let accuracy = outcome
        .history
        .last()
        .map_or(outcome.confusion.accuracy(), |m| m.test_accuracy);
    println!(
        "test accuracy {:.2}% after {} epochs in {:.1} s; weights saved to {}; run folder {}",
        accuracy * 100.0,
        outcome.history.len(),
        start.elapsed().as_secs_f64(),
        out.display(),
        outcome.run_dir.display()
    );
    Ok(())
}
