//! The training loop: epochs of shuffled batches, evaluation, checkpoints, metrics, plots.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::batches::{for_each_batch, Loader};
use super::checkpoint::{self, Checkpoint, CheckpointInfo};
use super::distributed::Group;
use super::evaluate::evaluate_shared;
use super::optimizer::Optimizer;
use super::progress::Reporter;
use super::run_dir::{self, ConfigFile, DataInfo, ModelInfo};
use super::step::{self, adopt_root_state};
use super::{
    epoch_order, metrics, plot, read_metrics, ConfusionMatrix, EpochMetrics, Evaluation, Progress, Samples,
    TrainConfig, TrainError,
};
use crate::Network;

/// Trains a network as its [`TrainConfig`] says, in a run folder of its own, or resumes a run.
///
/// ```
/// # use cnn::prelude::*;
/// # cnn::cnn! { struct Tiny { input: [1, 28, 28], flatten: Flatten, fc: Dense(10) } }
/// # let runs = tempfile::tempdir().unwrap();
/// use cnn::train::{Progress, Subset, TrainConfig, Trainer};
///
/// let mnist = cnn::data::Mnist::load("../data/mnist")?;
/// let (train, test) = (Subset::new(&mnist.train, 0..256), Subset::new(&mnist.test, 0..128));
/// let config = TrainConfig::new().epochs(1).runs_dir(runs.path()).run_name("tiny").progress(Progress::Silent);
/// let first = Trainer::new(config).fit(Tiny::new(1), &train, &test)?;
/// assert_eq!(first.history.len(), 1);
///
/// // Later: one more epoch, from the last checkpoint.
/// let more = Trainer::resume(runs.path().join("tiny"))?.epochs(2).fit(Tiny::new(1), &train, &test)?;
/// assert_eq!(more.history.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Trainer {
    config: TrainConfig,
    resume: Option<PathBuf>,
}

/// What a finished run leaves besides its folder.
pub struct TrainOutcome<N> {
    /// The trained network (the last epoch's, not necessarily the best).
    pub net: N,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Every epoch of the run, resumed sessions included.
    pub history: Vec<EpochMetrics>,
    /// The best test accuracy, in 0..=1, and its epoch (`None` if no epoch ran).
    pub best: Option<(f64, usize)>,
    /// The final network's confusion matrix on the test set.
    pub confusion: ConfusionMatrix,
}

impl Trainer {
    /// A trainer for a new run.
    pub fn new(config: TrainConfig) -> Self {
        Trainer { config, resume: None }
    }

    /// A trainer that continues the run in folder `run_dir` from its last checkpoint, with the
    /// hyperparameters of its `config.json`. [`Trainer::epochs`], [`Trainer::threads`],
    /// [`Trainer::distributed`] and [`Trainer::progress`] may change before [`Trainer::fit`];
    /// with one thread and the same processes throughout, the result is bitwise that of an
    /// uninterrupted run. In a distributed run every rank calls it (and so reads the files).
    ///
    /// # Errors
    ///
    /// [`TrainError::Io`] if the folder has no readable `config.json`,
    /// [`TrainError::BadRunFile`] if it is not a run configuration.
    pub fn resume(run_dir: impl AsRef<Path>) -> Result<Self, TrainError> {
        let dir = run_dir.as_ref();
        let file = ConfigFile::read(dir)?;
        let mut config = file.training;
        config.runs_dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        config.run_name = Some(file.name);
        config.data_dir = file.data.dir;
        config.summary = file.model.summary;
        Ok(Trainer {
            config,
            resume: Some(dir.to_path_buf()),
        })
    }

    /// The configuration (for a resumed run, the one read from its `config.json`).
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The run folder being resumed, if any.
    pub fn resuming(&self) -> Option<&Path> {
        self.resume.as_deref()
    }

    /// Trains until `epochs` epochs are complete in all (to extend a resumed run).
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.config.epochs = epochs;
        self
    }

    /// Threads per step (0: every core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.config.threads = threads;
        self
    }

    /// Whether to train over every process of the MPI job; see [`TrainConfig::distributed`].
    /// A run may be resumed with other processes than it started with: the batches stay the
    /// same.
    pub fn distributed(mut self, distributed: bool) -> Self {
        self.config.distributed = distributed;
        self
    }

    /// How progress is shown.
    pub fn progress(mut self, progress: Progress) -> Self {
        self.config.progress = progress;
        self
    }

    /// Trains `net` on `train`, evaluating on `test` after every epoch, and writes the run
    /// folder: `config.json`, `metrics.jsonl`, `metrics.csv`, `checkpoints/last.safetensors`
    /// and `checkpoints/best.safetensors`, `curves.svg`/`.png`, `confusion.svg`/`.png` and
    /// `log.txt`. When resuming, `net` is replaced by the last checkpoint's network: its
    /// parameters, buffers and [`TrainState`](crate::TrainState), so that Dropout's masks and
    /// BatchNorm's running statistics continue as in an uninterrupted run.
    ///
    /// The last checkpoint is written before the first step (epoch 0) and after every epoch;
    /// the best whenever the test accuracy improves.
    ///
    /// # Distributed runs
    ///
    /// With [`TrainConfig::distributed`], every process of the MPI job calls `fit` alike (see
    /// [`Mpi`](super::Mpi)). What is synchronized:
    ///
    /// - the network: every rank starts from rank 0's parameters and buffers, and takes the same
    ///   step from one allreduce of the gradients (each rank's share weighted by its size, so the
    ///   sum is the gradient of the mean loss over the whole batch), so the parameters and the
    ///   optimizer's state stay equal;
    /// - the batches: the same shuffled order and augmentation on every rank, rank `r` of `n`
    ///   training on the contiguous part `r*b/n..(r+1)*b/n` of each batch of `b`;
    /// - BatchNorm's running statistics are not: each rank updates its own from its shares
    ///   (the batch statistics of a step are those of the share), and rank 0's are broadcast
    ///   after every epoch, before evaluation and checkpoints;
    /// - Dropout's masks are each rank's own;
    /// - evaluation is split across the ranks and summed, the train loss summed with the
    ///   gradients: every rank returns the same history;
    /// - rank 0 alone prints, writes the run folder (its `config.json` records `world_size`)
    ///   and checkpoints; a failure on any rank stops every rank (see [`TrainError::OtherRank`]).
    ///
    /// The time spent in the allreduce is logged after every epoch.
    ///
    /// # Errors
    ///
    /// - [`TrainError::Config`] if the configuration cannot work, the samples do not match
    ///   the network's input, or a set is empty;
    /// - [`TrainError::RunExists`] if a new run's named folder exists;
    /// - [`TrainError::Diverged`] if the loss, a parameter or a buffer (BatchNorm's running
    ///   statistics) becomes NaN or infinite: the message names the epoch and the step, and the
    ///   last good checkpoint stays on disk;
    /// - [`TrainError::Io`], [`TrainError::BadRunFile`] or [`TrainError::Plot`] if a run file
    ///   cannot be written or read back;
    /// - [`TrainError::OtherRank`] in a distributed run, on every rank but the one that
    ///   reports the error.
    pub fn fit<N, T, U>(&self, net: N, train: &T, test: &U) -> Result<TrainOutcome<N>, TrainError>
    where
        N: Network,
        T: Samples + Sync + ?Sized,
        U: Samples + ?Sized,
    {
        let config = &self.config;
        let group = Group::new(config.distributed)?;
        // Each rank checks what it read: the ranks of a job may have read different files.
        group.agree(self.check::<N, T, U>(train, test))?;
        // Every core by default, or the ranks on a machine share its cores.
        let threads = match (config.threads, group.local_size()) {
            (0, 1) => 0,
            (0, local) => std::thread::available_parallelism()
                .map_or(1, |n| n.get() / local)
                .max(1),
            (threads, _) => threads,
        };
        crate::parallel::set_threads(threads);

        // Rank 0 creates the run folder (or every rank opens the one resumed), and only rank
        // 0 reports.
        let opened = self.open_run(&group, net, train, test).and_then(|run| {
            // mpirun gives every rank a terminal of its own, whatever its own output is: the
            // bar cannot tell, so a job of several processes prints plain lines.
            let progress = match (config.progress, group.size()) {
                (Progress::Auto, 2..) => Progress::Plain,
                (progress, _) => progress,
            };
            let reporter = match group.is_root() {
                true => Reporter::new(progress, &run.dir.join("log.txt"))?,
                false => Reporter::mute(),
            };
            Ok((run, reporter))
        });
        let (mut run, reporter) = group.agree(opened)?;
        run.dir = PathBuf::from(group.broadcast_string(run.dir.to_string_lossy().into_owned()));
        if run.name.is_empty() {
            run.name = run
                .dir
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        }
        let mut sync = Vec::new();
        adopt_root_state(&group, &mut run.net, &mut sync);
        self.train(group, run, reporter, sync, train, test)
    }

    /// What would fail later in [`Trainer::fit`], before anything is written.
    fn check<N, T, U>(&self, train: &T, test: &U) -> Result<(), TrainError>
    where
        N: Network,
        T: Samples + ?Sized,
        U: Samples + ?Sized,
    {
        let config = &self.config;
        config.validate().map_err(TrainError::Config)?;
        for (what, set) in [("training", train.input_len()), ("test", test.input_len())] {
            if set != N::INPUT_LEN {
                return Err(TrainError::Config(format!(
                    "the {what} samples hold {set} inputs each, but the network takes {} (shape {:?})",
                    N::INPUT_LEN,
                    N::INPUT_SHAPE
                )));
            }
        }
        if let Some(n) = &config.normalize {
            let channels = n.mean.len();
            let fits = match train.shape() {
                Some([c, ..]) => channels == 1 || channels == c,
                None => train.input_len().is_multiple_of(channels),
            };
            if !fits {
                return Err(TrainError::Config(format!(
                    "normalization gives {channels} means and deviations, but the samples (shape {:?}) have another number of channels",
                    train.shape().map_or(vec![train.input_len()], |s| s.to_vec())
                )));
            }
        }
        if !config.augment.is_none() && train.shape().is_none() {
            return Err(TrainError::Config(
                "augmentation needs image samples: the training set has no shape [C, H, W] (Samples::shape)".into(),
            ));
        }
        if train.is_empty() || test.is_empty() {
            return Err(TrainError::Config(format!(
                "the training set ({} samples) and the test set ({}) must not be empty",
                train.len(),
                test.len()
            )));
        }
        Ok(())
    }

    /// The epochs of [`Trainer::fit`], once the run is open on every rank.
    fn train<N, T, U>(
        &self,
        mut group: Group,
        mut run: Run<N>,
        mut reporter: Reporter,
        mut sync: Vec<f32>,
        train: &T,
        test: &U,
    ) -> Result<TrainOutcome<N>, TrainError>
    where
        N: Network,
        T: Samples + Sync + ?Sized,
        U: Samples + ?Sized,
    {
        let config = &self.config;
        let dir = run.dir.clone();
        let last_path = dir.join("checkpoints").join("last.safetensors");
        let best_path = dir.join("checkpoints").join("best.safetensors");
        let steps = train.len().div_ceil(config.batch_size);
        let processes = match group.size() {
            1 => String::new(),
            n => format!(" in each of {n} processes"),
        };
        reporter.line(&format!(
            "{} run {}: {} training and {} test samples, {} parameters, {} lr {} ({} schedule), batch {}, {} epochs, {} threads{processes}",
            if self.resume.is_some() { format!("resuming at epoch {}:", run.info.epoch + 1) } else { "starting".to_owned() },
            dir.display(),
            train.len(),
            test.len(),
            N::PARAM_COUNT,
            config.optimizer.name(),
            config.optimizer.lr(),
            config.schedule.name(),
            config.batch_size,
            config.epochs,
            crate::parallel::threads()
        ));
        if !config.augment.is_none() {
            let a = config.augment;
            reporter.line(&format!(
                "augmentation on the fly: random crop padding {}, random shift {}, horizontal flip {}",
                a.crop_padding,
                a.shift,
                if a.flip { "on" } else { "off" }
            ));
        }
        reporter.header();

        let session = Instant::now();
        let wall_before = run.history.last().map_or(0.0, |m| m.wall_time_s);
        let mut grad = vec![0.0f32; step::gradient_len::<N>()];
        let mut last_eval: Option<Evaluation> = None;
        let diverged = |what: String, epoch: usize, step: usize| TrainError::Diverged {
            what,
            epoch,
            step,
            steps,
            checkpoint: Some(last_path.clone()),
        };

        let loader = Loader {
            set: train,
            normalize: config.normalize.as_ref(),
            augment: config.augment,
            seed: config.seed,
        };
        for epoch in run.info.epoch..config.epochs {
            let epoch_start = Instant::now();
            let lr = config.schedule.lr_at(config.optimizer.lr(), epoch, 0, steps);
            let order = epoch_order(config.shuffle, config.seed, epoch, train.len());
            reporter.start_epoch(epoch + 1, config.epochs, train.len());
            let mut loss_sum = 0.0f64;
            let mut seen = 0usize;
            for_each_batch(
                &loader,
                epoch,
                &order,
                config.batch_size,
                group.share(),
                |step, batch, data| {
                    run.optimizer
                        .set_lr(config.schedule.lr_at(config.optimizer.lr(), epoch, step, steps));
                    // The loss of the whole batch, the same on every rank.
                    let loss = step::gradient(&mut group, &mut run.net, data, batch.len(), &mut grad);
                    if !loss.is_finite() {
                        reporter.abandon();
                        return Err(group.shared_error(diverged(format!("the loss is {loss}"), epoch + 1, step + 1)));
                    }
                    run.optimizer.step(run.net.params_mut(), &grad[..N::PARAM_COUNT]);
                    run.info.global_step += 1;
                    loss_sum += f64::from(loss) * batch.len() as f64;
                    seen += batch.len();
                    reporter.step(step + 1, seen, loss_sum / seen as f64);
                    Ok(())
                },
            )?;
            let train_time = epoch_start.elapsed().as_secs_f64();
            let reduce_time = group.take_reduce_time().as_secs_f64();
            adopt_root_state(&group, &mut run.net, &mut sync);
            if let Some(what) = first_non_finite(&run.net) {
                reporter.abandon();
                return Err(group.shared_error(diverged(what, epoch + 1, steps)));
            }
            let eval = evaluate_shared(&group, &run.net, test, config.normalize.as_ref());
            if !eval.loss.is_finite() {
                reporter.abandon();
                return Err(group.shared_error(diverged(format!("the test loss is {}", eval.loss), epoch + 1, steps)));
            }

            let m = EpochMetrics {
                epoch: epoch + 1,
                train_loss: loss_sum / seen as f64,
                test_loss: eval.loss,
                test_accuracy: eval.accuracy,
                lr,
                images_per_sec: seen as f64 / train_time.max(1e-9),
                epoch_time_s: epoch_start.elapsed().as_secs_f64(),
                wall_time_s: wall_before + session.elapsed().as_secs_f64(),
            };
            run.history.push(m.clone());
            run.info.epoch = epoch + 1;
            let best = run.info.best_epoch == 0 || eval.accuracy > run.info.best_accuracy;
            if best {
                run.info.best_accuracy = eval.accuracy;
                run.info.best_epoch = epoch + 1;
            }
            let saved = match group.is_root() {
                true => save_epoch(&run, best, &best_path, &last_path),
                false => Ok(()),
            };
            group.agree(saved)?;
            reporter.finish_epoch(&m);
            if group.size() > 1 {
                reporter.line(&format!(
                    "       allreduce: {steps} of {} values, {reduce_time:.2} s ({:.3} ms each, {:.1}% of the training time) on rank 0",
                    grad.len(),
                    1e3 * reduce_time / steps as f64,
                    100.0 * reduce_time / train_time.max(1e-9)
                ));
            }
            last_eval = Some(eval);
        }

        let eval = match last_eval {
            Some(eval) => eval,
            None => evaluate_shared(&group, &run.net, test, config.normalize.as_ref()),
        };
        let written = match group.is_root() {
            true => finish_files(&run, &eval.confusion),
            false => Ok(()),
        };
        group.agree(written)?;
        reporter.line(&format!(
            "confusion matrix on the test set (rows: true class, columns: predicted):\n{}",
            eval.confusion.to_table().trim_end()
        ));
        let best = (run.info.best_epoch > 0).then_some((run.info.best_accuracy, run.info.best_epoch));
        if let Some((acc, epoch)) = best {
            reporter.line(&format!(
                "best test accuracy {:.2}% at epoch {epoch}; run folder {}",
                100.0 * acc,
                dir.display()
            ));
        }
        Ok(TrainOutcome {
            net: run.net,
            run_dir: dir,
            history: run.history,
            best,
            confusion: eval.confusion,
        })
    }

    /// Creates a new run folder, or opens the one being resumed, and returns the state to
    /// train from. In a distributed run, every rank reads the run resumed, rank 0 alone writes;
    /// the other ranks of a new run do not know its folder yet (`dir` and `name` are empty).
    fn open_run<N, T, U>(&self, group: &Group, net: N, train: &T, test: &U) -> Result<Run<N>, TrainError>
    where
        N: Network,
        T: Samples + ?Sized,
        U: Samples + ?Sized,
    {
        let config = &self.config;
        let mut optimizer = Optimizer::new(&config.optimizer);
        if let Some(dir) = &self.resume {
            let mut file = ConfigFile::read(dir)?;
            if file.model.param_count != N::PARAM_COUNT {
                return Err(TrainError::bad_file(
                    dir.join("config.json"),
                    format!(
                        "the run trained a network of {} parameters, this one has {}",
                        file.model.param_count,
                        N::PARAM_COUNT
                    ),
                ));
            }
            let last = dir.join("checkpoints").join("last.safetensors");
            let Checkpoint {
                net,
                info,
                optimizer: state,
            } = Checkpoint::<N>::load(&last)?;
            optimizer
                .restore(state)
                .map_err(|reason| TrainError::bad_file(&last, reason))?;
            // Epochs after the checkpoint (a crash between writing metrics and the checkpoint)
            // are trained again.
            let history: Vec<EpochMetrics> = read_metrics(dir)?
                .into_iter()
                .filter(|m| m.epoch <= info.epoch)
                .collect();
            if group.is_root() {
                file.training = config.clone();
                file.threads_used = crate::parallel::threads();
                file.world_size = group.size();
                file.write(dir)?;
            }
            return Ok(Run {
                dir: dir.clone(),
                name: file.name,
                net,
                optimizer,
                info,
                history,
            });
        }

        let info = CheckpointInfo {
            epoch: 0,
            global_step: 0,
            best_accuracy: 0.0,
            best_epoch: 0,
            optimizer: config.optimizer.name().to_owned(),
        };
        if !group.is_root() {
            return Ok(Run {
                dir: PathBuf::new(),
                name: String::new(),
                net,
                optimizer,
                info,
                history: Vec::new(),
            });
        }
        let (dir, name) = run_dir::create(config)?;
        let (git_commit, git_dirty) = run_dir::git_state();
        let files = match &config.data_dir {
            Some(data) => run_dir::checksums(data)?,
            None => Vec::new(),
        };
        let file = ConfigFile {
            name: name.clone(),
            created: run_dir::timestamp(std::time::SystemTime::now()),
            crate_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_commit,
            git_dirty,
            model: ModelInfo {
                param_count: N::PARAM_COUNT,
                input_shape: N::INPUT_SHAPE.to_vec(),
                output_len: N::OUTPUT_LEN,
                summary: config.summary.clone(),
            },
            data: DataInfo {
                dir: config.data_dir.clone(),
                train_samples: train.len(),
                test_samples: test.len(),
                files,
            },
            training: config.clone(),
            threads_used: crate::parallel::threads(),
            world_size: group.size(),
        };
        file.write(&dir)?;
        checkpoint::save(
            &dir.join("checkpoints").join("last.safetensors"),
            &net,
            &optimizer.state(),
            &info,
        )?;
        Ok(Run {
            dir,
            name,
            net,
            optimizer,
            info,
            history: Vec::new(),
        })
    }
}

/// Without the network, which need not be `Debug` (and would print every parameter).
impl<N> std::fmt::Debug for TrainOutcome<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainOutcome")
            .field("run_dir", &self.run_dir)
            .field("history", &self.history)
            .field("best", &self.best)
            .finish_non_exhaustive()
    }
}

/// Writes what an epoch leaves in the run folder: the checkpoints (the best one if `best`),
/// the metrics and the curves.
fn save_epoch<N: Network>(run: &Run<N>, best: bool, best_path: &Path, last_path: &Path) -> Result<(), TrainError> {
    let state = run.optimizer.state();
    if best {
        checkpoint::save(best_path, &run.net, &state, &run.info)?;
    }
    checkpoint::save(last_path, &run.net, &state, &run.info)?;
    metrics::write(&run.dir, &run.history)?;
    plot::write_curves(&run.dir, &format!("{}: training curves", run.name), &run.history)
}

/// Writes what the end of a run leaves in its folder: the confusion matrix, and for a run of
/// no epoch at all (epochs = 0) every other file, empty.
fn finish_files<N>(run: &Run<N>, confusion: &ConfusionMatrix) -> Result<(), TrainError> {
    if run.history.is_empty() {
        metrics::write(&run.dir, &run.history)?;
        plot::write_curves(&run.dir, &format!("{}: training curves", run.name), &run.history)?;
    }
    plot::write_confusion(&run.dir, &format!("{}: test set", run.name), confusion)
}

/// Says which parameter or buffer of `net` is the first that is not finite, if one is: a
/// checkpoint of it could not be loaded, and every later step would spread it.
fn first_non_finite<N: Network>(net: &N) -> Option<String> {
    [
        ("parameter", N::PARAMS, net.params()),
        ("buffer", N::BUFFERS, net.buffers()),
    ]
    .into_iter()
    .find_map(|(what, layout, values)| {
        let i = values.iter().position(|x| !x.is_finite())?;
        let name = layout.iter().find(|p| p.range().contains(&i)).map_or("?", |p| p.name);
        Some(format!("{what} {i} (in `{name}`) is not finite after the update"))
    })
}

/// Where a run stands.
struct Run<N> {
    dir: PathBuf,
    name: String,
    net: N,
    optimizer: Optimizer,
    info: CheckpointInfo,
    history: Vec<EpochMetrics>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::toy::{Toy, ToyData};
    use crate::train::OptimizerConfig;
    use crate::TrainState;

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|x| x.to_bits()).collect()
    }

    fn config(runs: &Path, name: &str, optimizer: OptimizerConfig, epochs: usize) -> TrainConfig {
        TrainConfig::new()
            .epochs(epochs)
            .batch_size(4)
            .optimizer(optimizer)
            .seed(5)
            .threads(1)
            .runs_dir(runs)
            .run_name(name)
            .progress(Progress::Silent)
    }

    /// A run stopped after one epoch and resumed ends bitwise where an uninterrupted one does:
    /// parameters, running statistics and `TrainState`. Dropout's masks depend on the steps
    /// taken, so this holds only because the checkpoint keeps them: resumed from a checkpoint
    /// whose step count was reset, the run ends elsewhere.
    #[test]
    fn resumed_run_equals_an_uninterrupted_one_bitwise() {
        let (train, test) = (ToyData { len: 24, offset: 0 }, ToyData { len: 10, offset: 100 });
        let runs = tempfile::tempdir().unwrap();
        let runs = runs.path();
        for optimizer in [
            OptimizerConfig::sgd(0.1).with_momentum(0.9),
            OptimizerConfig::adam(0.01),
        ] {
            let name = optimizer.name();
            let fit = |run: &str, epochs: usize| {
                Trainer::new(config(runs, &format!("{name}-{run}"), optimizer, epochs))
                    .fit(Toy::new(11), &train, &test)
                    .unwrap()
            };
            let straight = fit("straight", 3);
            assert_eq!(straight.net.train_state(), TrainState { seed: 11, steps: 18 });

            let first = fit("stopped", 1);
            // The network passed in is replaced by the checkpoint's, seed included.
            let resumed = Trainer::resume(&first.run_dir)
                .unwrap()
                .epochs(3)
                .fit(Toy::new(999), &train, &test)
                .unwrap();
            assert_eq!(bits(resumed.net.params()), bits(straight.net.params()), "{name}");
            assert_eq!(bits(resumed.net.buffers()), bits(straight.net.buffers()), "{name}");
            assert_eq!(resumed.net.train_state(), straight.net.train_state(), "{name}");
            assert_eq!(resumed.history.len(), 3);
            for (a, b) in resumed.history.iter().zip(&straight.history) {
                assert_eq!((a.train_loss, a.test_loss), (b.train_loss, b.test_loss), "{name}");
            }

            // The same, from a checkpoint that lost the step count: other masks, other weights.
            let lost = fit("lost", 1);
            let last = lost.run_dir.join("checkpoints").join("last.safetensors");
            let mut ck = Checkpoint::<Toy>::load(&last).unwrap();
            ck.net.set_train_state(TrainState { seed: 11, steps: 0 });
            checkpoint::save(&last, &ck.net, &ck.optimizer, &ck.info).unwrap();
            let resumed = Trainer::resume(&lost.run_dir)
                .unwrap()
                .epochs(3)
                .fit(Toy::new(11), &train, &test)
                .unwrap();
            assert_ne!(bits(resumed.net.params()), bits(straight.net.params()), "{name}");
        }
    }

    #[test]
    fn checkpoints_hold_the_networks_state() {
        let (train, test) = (ToyData { len: 24, offset: 0 }, ToyData { len: 10, offset: 100 });
        let runs = tempfile::tempdir().unwrap();
        let config = config(runs.path(), "run", OptimizerConfig::sgd(0.1), 2);
        let outcome = Trainer::new(config).fit(Toy::new(3), &train, &test).unwrap();
        let dir = outcome.run_dir.join("checkpoints");

        let last = Checkpoint::<Toy>::load(dir.join("last.safetensors")).unwrap();
        assert_eq!(bits(last.net.params()), bits(outcome.net.params()));
        assert_eq!(bits(last.net.buffers()), bits(outcome.net.buffers()));
        assert_eq!(last.net.train_state(), TrainState { seed: 3, steps: 12 });
        // Training moved the running statistics away from their initial values.
        assert_ne!(last.net.buffers(), Toy::from_params(last.net.params()).buffers());

        // The best checkpoint is the network of its epoch, with that epoch's step count.
        let best = Checkpoint::<Toy>::load(dir.join("best.safetensors")).unwrap();
        assert_eq!(best.net.train_state().steps, 6 * best.info.epoch as u64);

        // Before the first step: the network as given.
        let runs = tempfile::tempdir().unwrap();
        let config = self::config(runs.path(), "none", OptimizerConfig::sgd(0.1), 0);
        let outcome = Trainer::new(config).fit(Toy::new(4), &train, &test).unwrap();
        let initial = Checkpoint::<Toy>::load(outcome.run_dir.join("checkpoints/last.safetensors")).unwrap();
        assert_eq!(initial.net.train_state(), TrainState { seed: 4, steps: 0 });
        assert_eq!(bits(initial.net.params()), bits(Toy::new(4).params()));
    }

    #[test]
    fn non_finite_buffer_stops_the_run() {
        let (train, test) = (ToyData { len: 24, offset: 0 }, ToyData { len: 10, offset: 100 });
        let runs = tempfile::tempdir().unwrap();
        let config = config(runs.path(), "nan", OptimizerConfig::sgd(0.1), 1);
        let mut net = Toy::new(3);
        // A running variance that is already infinite stays so: the loss is fine, the buffer not.
        net.buffers_mut()[4] = f32::INFINITY;
        let err = Trainer::new(config).fit(net, &train, &test).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, TrainError::Diverged { epoch: 1, .. }) && msg.contains("buffer 4 (in `bn.running_var`)"),
            "{msg}"
        );
    }
}
