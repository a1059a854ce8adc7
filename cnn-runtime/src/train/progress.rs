//! What a run shows while it trains: a progress bar on a terminal, plain lines otherwise, and
//! every line also in the run folder's `log.txt`.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{EpochMetrics, Progress, TrainError};

/// Steps between two updates of the bar's message.
const MESSAGE_EVERY: usize = 8;

pub(crate) struct Reporter {
    show: Show,
    bar: Option<ProgressBar>,
    /// `log.txt`; `None` on the ranks of a distributed run other than 0, which show nothing.
    log: Option<File>,
    epoch_start: Instant,
    last_accuracy: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Show {
    Bar,
    Plain,
    Silent,
}

impl Reporter {
    /// A reporter that appends to `log_path`.
    pub fn new(progress: Progress, log_path: &Path) -> Result<Self, TrainError> {
        let show = match progress {
            Progress::Auto if std::io::stdout().is_terminal() => Show::Bar,
            Progress::Auto | Progress::Plain => Show::Plain,
            Progress::Silent => Show::Silent,
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(TrainError::io(log_path))?;
        Ok(Reporter {
            show,
            bar: None,
            log: Some(log),
            epoch_start: Instant::now(),
            last_accuracy: None,
        })
    }

    /// A reporter that shows and writes nothing: the other ranks' of a distributed run.
    pub fn mute() -> Self {
        Reporter {
            show: Show::Silent,
            bar: None,
            log: None,
            epoch_start: Instant::now(),
            last_accuracy: None,
        }
    }

    /// Prints `text` (above the bar, if one is drawn) and appends it to the log.
    pub fn line(&mut self, text: &str) {
        match (&self.bar, self.show) {
            (Some(bar), _) => bar.println(text),
            (None, Show::Silent) => {}
            (None, _) => println!("{text}"),
        }
        // The log is a convenience: a full disk must not stop training.
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "{text}");
        }
    }

    /// The column header of the per-epoch lines.
    pub fn header(&mut self) {
        self.line(&format!(
            "{:>5}  {:>10}  {:>9}  {:>9}  {:>9}  {:>9}  {:>8}",
            "epoch", "train loss", "test loss", "test acc", "lr", "images/s", "time (s)"
        ));
    }

    /// Starts the bar of an epoch of `images` training images.
    pub fn start_epoch(&mut self, epoch: usize, epochs: usize, images: usize) {
        self.epoch_start = Instant::now();
        if self.show != Show::Bar {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(images as u64), ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos:>6}/{len} {msg} ({elapsed} < {eta})")
            .map(|s| s.progress_chars("=> "));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar.set_prefix(format!("{epoch}/{epochs}"));
        bar.enable_steady_tick(Duration::from_millis(250));
        self.bar = Some(bar);
    }

    /// After step `step`: `images` images done this epoch, running mean loss `loss`.
    pub fn step(&mut self, step: usize, images: usize, loss: f64) {
        let Some(bar) = &self.bar else { return };
        bar.set_position(images as u64);
        if step % MESSAGE_EVERY == 1 {
            let rate = images as f64 / self.epoch_start.elapsed().as_secs_f64().max(1e-9);
            let acc = self
                .last_accuracy
                .map_or(String::new(), |a| format!(" | test acc {:.2}%", 100.0 * a));
            bar.set_message(format!("loss {loss:.4}{acc} | {rate:.0} img/s"));
        }
    }

    /// Ends the epoch's bar and prints its line.
    pub fn finish_epoch(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.last_accuracy = Some(m.test_accuracy);
        self.line(&format!(
            "{:>5}  {:>10.4}  {:>9.4}  {:>8.2}%  {:>9.3e}  {:>9.0}  {:>8.1}",
            m.epoch,
            m.train_loss,
            m.test_loss,
            100.0 * m.test_accuracy,
            m.lr,
            m.images_per_sec,
            m.epoch_time_s
        ));
    }

    /// Clears the bar without a line, when the epoch fails.
    pub fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
