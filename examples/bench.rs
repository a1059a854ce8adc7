//! Benchmarks: LeNet-5 and the CIFAR-10 ResNet-8 of `../shared/bench` (and a small CIFAR-sized
//! network), inference and training, on the protocol of `../shared/bench` (medians after
//! warm-up, batch-1 latency, batch-64 throughput, a batch-64 training step of forward, mean
//! cross-entropy, backward and a plain SGD update, lr 0.01), and a batch-256 training step, whose
//! time from 1 to 2 threads shows the scaling. Inference runs in eval mode (BatchNorm's running
//! statistics), the training step in train mode (batch statistics), as the peers do.
//!
//! ```text
//! cargo run --release --example bench                    # readable table, 1 and 2 threads
//! cargo run --release --example bench -- --json          # one JSON object per line
//! cargo run --release --example bench -- --net resnet8 --threads "1 2 default"
//! cargo run --release --example bench -- --layers        # per-layer GFLOP/s of LeNet-5
//! cargo run --release --example bench -- --threads 1 --secs 2 --net lenet5
//! ```
//!
//! `--only b1|b64|train|train256` takes one measurement (for a profiler).
//! `--threads default` measures what a user gets without calling `cnn::set_threads`: every
//! core, decided once per process.

use cnn::optim::Sgd;
use cnn::prelude::*;
use std::hint::black_box;
use std::time::Instant;

cnn! {
    /// LeNet-5 for 28x28 grayscale digits.
    pub struct LeNet5 {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2) -> Relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, kernel = 5) -> Relu,
        pool2: MaxPool2d(2),
        flatten: Flatten,
        fc1: Dense(120) -> Relu,
        fc2: Dense(84) -> Relu,
        fc3: Dense(10),
    }
}

cnn! {
    /// A CIFAR-sized network: two 3x3 conv blocks of 32 and 64 channels, two dense layers.
    pub struct Cifar {
        input: [3, 32, 32],
        conv1: Conv2d(32, kernel = 3, padding = 1) -> Relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, kernel = 3, padding = 1) -> Relu,
        pool2: MaxPool2d(2),
        flatten: Flatten,
        fc1: Dense(256) -> Relu,
        fc2: Dense(10),
    }
}

#[path = "common/resnet8.rs"]
mod resnet8;
use resnet8::ResNet8;

/// A thread setting to measure: a count given to `cnn::set_threads`, or the default.
#[derive(Clone, Copy)]
enum Threads {
    Count(usize),
    Default,
}

impl Threads {
    fn apply(self) {
        match self {
            Threads::Count(n) => cnn::set_threads(n),
            Threads::Default => cnn::set_threads(0),
        }
    }

    /// As JSON: the count, or `"default"`.
    fn json(self) -> String {
        match self {
            Threads::Count(n) => n.to_string(),
            Threads::Default => "\"default\"".into(),
        }
    }

    fn label(self) -> String {
        match self {
            Threads::Count(n) => n.to_string(),
            Threads::Default => "default".into(),
        }
    }
}

struct Options {
    json: bool,
    layers: bool,
    threads: Vec<Threads>,
    secs: f64,
    nets: Vec<String>,
    only: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        json: false,
        layers: false,
        threads: vec![Threads::Count(1), Threads::Count(2)],
        secs: 1.0,
        nets: vec!["lenet5".into(), "resnet8".into()],
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--json" => o.json = true,
            "--layers" => o.layers = true,
            "--threads" => {
                o.threads = value()?
                    .split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(|s| match s {
                        "default" => Ok(Threads::Default),
                        n => n.parse().map(Threads::Count).map_err(|e| format!("--threads: {e}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--secs" => o.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--net" => o.nets = value()?.split(',').map(String::from).collect(),
            "--only" => o.only = Some(value()?),
            "--bench" => {} // passed by `cargo bench`-style runners; ignored
            _ => {
                return Err(format!(
                    "unknown flag {flag}; expected --json, --layers, --threads, --secs, --net, --only"
                ))
            }
        }
    }
    Ok(o)
}

/// Median wall time of `f` in seconds: `warmup` calls, then at least `min_iters` calls and at
/// least `secs` seconds (the protocol of ../shared/bench/py/benchlib.py).
///
/// With `CNN_BENCH_CPU_TIME=1`, the mean on-CPU time of this thread per call instead (from
/// /proc/thread-self/schedstat), which a busy machine disturbs much less than wall time; for
/// comparing kernels while other work runs, with one thread (other threads' time is not
/// counted), not for the published figures.
fn median_secs(warmup: usize, min_iters: usize, secs: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    if std::env::var_os("CNN_BENCH_CPU_TIME").is_some() {
        let on_cpu = || -> f64 {
            let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
            s.split_whitespace()
                .next()
                .and_then(|t| t.parse::<f64>().ok())
                .unwrap_or(0.0)
                * 1e-9
        };
        let (start, t0) = (Instant::now(), on_cpu());
        let mut n = 0;
        while n < min_iters || start.elapsed().as_secs_f64() < secs {
            f();
            n += 1;
        }
        return (on_cpu() - t0) / n as f64;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < min_iters || start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Deterministic pseudo-random floats in [-1, 1).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

struct Record {
    infer_b1_us: f64,
    infer_b64_img_s: f64,
    train_b64_ms: f64,
    train_b256_ms: f64,
}

/// Which measurements to take: all, or one (`--only b1|b64|train|train256`, for profiling).
fn wanted(only: &Option<String>, what: &str) -> bool {
    only.as_deref().is_none_or(|o| o == what)
}

fn measure<N: Network>(new: impl Fn(u64) -> N, secs: f64, only: &Option<String>) -> Record {
    let mut net = new(0);
    let x1 = noise(N::INPUT_LEN, 1);
    let x64 = noise(64 * N::INPUT_LEN, 2);
    let labels: Vec<u32> = (0..64).map(|i| (i * 7 % N::OUTPUT_LEN) as u32).collect();
    let mut out1 = vec![0.0; N::OUTPUT_LEN];
    let mut out64 = vec![0.0; 64 * N::OUTPUT_LEN];
    let skip = f64::NAN;
    let b1 = if wanted(only, "b1") {
        median_secs(200, 200, secs, || {
            net.forward_batch(black_box(&x1), black_box(&mut out1))
        })
    } else {
        skip
    };
    let b64 = if wanted(only, "b64") {
        median_secs(20, 30, secs, || {
            net.forward_batch(black_box(&x64), black_box(&mut out64))
        })
    } else {
        skip
    };
    let mut grad = vec![0.0; N::PARAM_COUNT];
    let mut opt = Sgd::new(0.01);
    let train = if wanted(only, "train") {
        median_secs(10, 20, secs, || {
            black_box(net.loss_and_grad(&x64, &labels, &mut grad));
            opt.step(net.params_mut(), &grad);
        })
    } else {
        skip
    };
    // Batch 256, for the thread scaling of issue 3 (at least 1.7x from 1 to 2 threads).
    let x256 = noise(256 * N::INPUT_LEN, 4);
    let labels256: Vec<u32> = (0..256).map(|i| (i * 7 % N::OUTPUT_LEN) as u32).collect();
    let train256 = if wanted(only, "train256") {
        median_secs(5, 10, secs, || {
            black_box(net.loss_and_grad(&x256, &labels256, &mut grad));
            opt.step(net.params_mut(), &grad);
        })
    } else {
        skip
    };
    Record {
        infer_b1_us: b1 * 1e6,
        infer_b64_img_s: 64.0 / b64,
        train_b64_ms: train * 1e3,
        train_b256_ms: train256 * 1e3,
    }
}

fn main() -> Result<(), String> {
    let o = options()?;
    if o.layers {
        for net in &o.nets {
            layers::print(net, o.secs)?;
        }
        return Ok(());
    }
    if !o.json {
        println!(
            "{:<8} {:>7} {:>14} {:>16} {:>14} {:>16} {:>15}",
            "network",
            "threads",
            "infer b1 (us)",
            "infer b64 img/s",
            "train b64 (ms)",
            "train b64 img/s",
            "train b256 (ms)"
        );
    }
    for &threads in &o.threads {
        threads.apply();
        for net in &o.nets {
            let r = match net.as_str() {
                "lenet5" => measure(LeNet5::new, o.secs, &o.only),
                "resnet8" => measure(ResNet8::new, o.secs, &o.only),
                "cifar" => measure(Cifar::new, o.secs, &o.only),
                other => return Err(format!("unknown network {other}; expected lenet5, resnet8 or cifar")),
            };
            if o.json {
                println!(
                    "{{\"system\":\"cnn\",\"net\":\"{net}\",\"threads\":{},\"infer_b1_us\":{:.2},\"infer_b64_img_s\":{:.0},\"train_b64_ms\":{:.3},\"train_b64_img_s\":{:.0},\"train_b256_ms\":{:.3}}}",
                    threads.json(),
                    r.infer_b1_us,
                    r.infer_b64_img_s,
                    r.train_b64_ms,
                    64e3 / r.train_b64_ms,
                    r.train_b256_ms
                );
            } else {
                println!(
                    "{net:<8} {:>7} {:>14.1} {:>16.0} {:>14.2} {:>16.0} {:>15.2}",
                    threads.label(),
                    r.infer_b1_us,
                    r.infer_b64_img_s,
                    r.train_b64_ms,
                    64e3 / r.train_b64_ms,
                    r.train_b256_ms
                );
            }
        }
    }
    Ok(())
}

/// Per-layer timing of LeNet-5's kernels, called directly with the geometry the macro generates.
mod layers {
    use super::{median_secs, noise};
    use cnn_runtime::activation::Activation;
    use cnn_runtime::batchnorm::BatchNorm;
    use cnn_runtime::conv::Conv2d;
    use cnn_runtime::dense::Dense;
    use cnn_runtime::layout::Layout;
    use cnn_runtime::pool::{Pool2d, PoolKind};
    use std::hint::black_box;

    pub fn print(net: &str, secs: f64) -> Result<(), String> {
        println!("{net}, kernels: {}", cnn::kernels());
        match net {
            "lenet5" => lenet5(secs),
            "resnet8" => resnet8(secs),
            "resnet18" => resnet18(secs),
            other => {
                return Err(format!(
                    "--layers: unknown network {other}; expected lenet5, resnet8 or resnet18"
                ))
            }
        }
        Ok(())
    }

    fn header() {
        println!(
            "{:<28} {:>6} {:>12} {:>10} {:>12} {:>10} {:>14} {:>10}",
            "layer", "batch", "fwd (us)", "GFLOP/s", "bwd (us)", "GFLOP/s", "mm fwd (us)", "GFLOP/s"
        );
    }

    /// The convolutions of ResNet-8 (../shared/bench/README.md) on CIFAR-10, channel-major
    /// input after the first, with batch-64 BatchNorm in both modes.
    fn resnet8(secs: f64) {
        header();
        let c = |c, hw, oc, k, s, p| Conv2d::new([c, hw, hw], oc, [k, k], [s, s], [p, p], false);
        for batch in [1, 64] {
            conv_at(
                "conv1 3->16 3x3",
                c(3, 32, 16, 3, 1, 1),
                batch,
                false,
                Layout::SampleMajor,
                secs,
            );
            conv("layer1 16->16 3x3", c(16, 32, 16, 3, 1, 1), batch, true, secs);
            conv("layer2.conv1 16->32 3x3 s2", c(16, 32, 32, 3, 2, 1), batch, true, secs);
            conv("layer2.conv2 32->32 3x3", c(32, 16, 32, 3, 1, 1), batch, true, secs);
            conv("layer2.down 16->32 1x1 s2", c(16, 32, 32, 1, 2, 0), batch, true, secs);
            conv("layer3.conv1 32->64 3x3 s2", c(32, 16, 64, 3, 2, 1), batch, true, secs);
            conv("layer3.conv2 64->64 3x3", c(64, 8, 64, 3, 1, 1), batch, true, secs);
            conv("layer3.down 32->64 1x1 s2", c(32, 16, 64, 1, 2, 0), batch, true, secs);
        }
        batchnorm("bn [16, 32, 32]", 16, 1024, 64, secs);
    }

    /// The distinct convolutions of torchvision's ResNet-18 on 224x224 images.
    fn resnet18(secs: f64) {
        header();
        let c = |c, hw, oc, k, s, p| Conv2d::new([c, hw, hw], oc, [k, k], [s, s], [p, p], false);
        for batch in [1, 8] {
            conv_at(
                "conv1 3->64 7x7 s2",
                c(3, 224, 64, 7, 2, 3),
                batch,
                false,
                Layout::SampleMajor,
                secs,
            );
            conv("layer1 64->64 3x3", c(64, 56, 64, 3, 1, 1), batch, true, secs);
            conv("layer2.0.conv1 64->128 s2", c(64, 56, 128, 3, 2, 1), batch, true, secs);
            conv("layer2 128->128 3x3", c(128, 28, 128, 3, 1, 1), batch, true, secs);
            conv(
                "layer3.0.conv1 128->256 s2",
                c(128, 28, 256, 3, 2, 1),
                batch,
                true,
                secs,
            );
            conv("layer3 256->256 3x3", c(256, 14, 256, 3, 1, 1), batch, true, secs);
            conv(
                "layer4.0.conv1 256->512 s2",
                c(256, 14, 512, 3, 2, 1),
                batch,
                true,
                secs,
            );
            conv("layer4 512->512 3x3", c(512, 7, 512, 3, 1, 1), batch, true, secs);
        }
    }

    /// BatchNorm over `c` channels of `hw` pixels, a batch of `batch`: eval and train forward.
    fn batchnorm(name: &str, c: usize, hw: usize, batch: usize, secs: f64) {
        let bn = BatchNorm::new(c, hw, 1e-5, 0.1, true);
        let x = noise(batch * c * hw, 1);
        let p = noise(bn.param_len(), 2);
        let mut running: Vec<f32> = (0..2 * c).map(|i| if i < c { 0.0 } else { 1.0 }).collect();
        let mut y = vec![0.0; x.len()];
        let mut saved = vec![0.0; bn.saved_len()];
        let cm = Layout::ChannelMajor;
        let eval = median_secs(10, 50, secs / 10.0, || {
            bn.forward_eval(batch, black_box(&x), cm, &p, &running, &mut y)
        });
        let train = median_secs(10, 50, secs / 10.0, || {
            bn.forward_train(batch, black_box(&x), cm, &p, &mut running, &mut saved, &mut y)
        });
        println!(
            "{name:<28} {batch:>6} eval {:>8.2} us, train {:>8.2} us",
            eval * 1e6,
            train * 1e6
        );
    }

    fn lenet5(secs: f64) {
        header();
        for batch in [1, 64] {
            // The first layer's backward pass has no input gradient to compute.
            conv(
                "conv1 1->6 5x5 p2",
                Conv2d::new([1, 28, 28], 6, [5, 5], [1, 1], [2, 2], true),
                batch,
                false,
                secs,
            );
            pool(
                "pool1",
                Pool2d::new(PoolKind::Max, [6, 28, 28], [2, 2], [2, 2], [0, 0]),
                batch,
                secs,
            );
            conv(
                "conv2 6->16 5x5",
                Conv2d::new([6, 14, 14], 16, [5, 5], [1, 1], [0, 0], true),
                batch,
                true,
                secs,
            );
            pool(
                "pool2",
                Pool2d::new(PoolKind::Max, [16, 10, 10], [2, 2], [2, 2], [0, 0]),
                batch,
                secs,
            );
            dense("fc1 400->120", Dense::new(400, 120, true), batch, secs);
            dense("fc2 120->84", Dense::new(120, 84, true), batch, secs);
            dense("fc3 84->10", Dense::new(84, 10, true), batch, secs);
            let x = noise(batch * 4704, 3);
            let mut y = vec![0.0; x.len()];
            let f = median_secs(10, 50, secs / 10.0, || Activation::Relu.forward(black_box(&x), &mut y));
            println!("{:<24} {batch:>6} {:>12.2}", "relu [6, 28, 28]", f * 1e6);
        }
    }

    /// `bwd` is the backward pass's time and its FLOP as a multiple of the forward pass's: 2
    /// (weight and input gradients), or 1 for a first layer.
    /// `mm` is the forward pass's time by matrixmultiply, where measured.
    fn report(name: &str, batch: usize, flops: f64, fwd: f64, bwd: Option<(f64, f64)>, mm: Option<f64>) {
        let g = |t: f64, mult: f64| flops * mult * batch as f64 / t / 1e9;
        let mm = mm.map_or(String::new(), |t| format!(" {:>14.2} {:>10.1}", t * 1e6, g(t, 1.0)));
        match bwd {
            Some((b, mult)) => println!(
                "{name:<28} {batch:>6} {:>12.2} {:>10.1} {:>12.2} {:>10.1}{mm}",
                fwd * 1e6,
                g(fwd, 1.0),
                b * 1e6,
                g(b, mult)
            ),
            None => println!("{name:<28} {batch:>6} {:>12.2} {:>10} {:>12}", fwd * 1e6, "-", "-"),
        }
    }

    fn conv(name: &str, g: Conv2d, batch: usize, input_grad: bool, secs: f64) {
        conv_at(name, g, batch, input_grad, Layout::ChannelMajor, secs)
    }

    /// One convolution, forward and backward, by our kernels and, forward only, by unfolding
    /// each sample and calling matrixmultiply's packed sgemm.
    fn conv_at(name: &str, g: Conv2d, batch: usize, input_grad: bool, layout: Layout, secs: f64) {
        let x = noise(batch * g.in_len(), 1);
        let p = noise(g.param_len(), 2);
        let mut y = vec![0.0; batch * g.out_len()];
        let mut scratch = vec![0.0; g.scratch_len()];
        let fwd = median_secs(10, 50, secs / 10.0, || {
            g.forward(batch, black_box(&x), layout, &p, &mut y, &mut scratch)
        });
        let mut cols = vec![0.0; g.cols_len()];
        let (k, ohw) = (g.patch_len(), g.oh * g.ow);
        let mm = median_secs(10, 50, secs / 10.0, || {
            for b in 0..batch {
                g.im2col(black_box(&x), layout, batch, b, &mut cols);
                // SAFETY: weight [OC, K], cols [K, OH*OW] and this sample's output rows
                // [OC, OH*OW], batch*OH*OW apart, all lie inside their slices.
                unsafe {
                    matrixmultiply::sgemm(
                        g.oc,
                        k,
                        ohw,
                        1.0,
                        p.as_ptr(),
                        k as isize,
                        1,
                        cols.as_ptr(),
                        ohw as isize,
                        1,
                        0.0,
                        y[b * ohw..].as_mut_ptr(),
                        (batch * ohw) as isize,
                        1,
                    )
                };
            }
        });
        let dy = noise(y.len(), 3);
        let mut dp = vec![0.0; p.len()];
        let mut dx = vec![0.0; x.len()];
        let bwd = median_secs(10, 50, secs / 10.0, || {
            g.backward(
                batch,
                &x,
                layout,
                &p,
                &dy,
                &mut dp,
                input_grad.then_some(&mut dx[..]),
                &mut scratch,
            )
        });
        let bwd_flops = if input_grad { 2.0 } else { 1.0 };
        report(
            name,
            batch,
            2.0 * g.macs() as f64,
            fwd,
            Some((bwd, bwd_flops)),
            Some(mm),
        );
    }

    fn pool(name: &str, g: Pool2d, batch: usize, secs: f64) {
        let x = noise(batch * g.in_len(), 1);
        let mut y = vec![0.0; batch * g.out_len()];
        let fwd = median_secs(10, 50, secs / 10.0, || g.forward(batch, black_box(&x), &mut y));
        report(name, batch, 0.0, fwd, None, None);
    }

    fn dense(name: &str, g: Dense, batch: usize, secs: f64) {
        let x = noise(batch * g.inputs, 1);
        let p = noise(g.param_len(), 2);
        let mut y = vec![0.0; batch * g.outputs];
        let fwd = median_secs(10, 50, secs / 10.0, || g.forward(batch, black_box(&x), &p, &mut y));
        let dy = noise(y.len(), 3);
        let mut dp = vec![0.0; p.len()];
        let mut dx = vec![0.0; x.len()];
        let bwd = median_secs(10, 50, secs / 10.0, || {
            g.backward(batch, &x, &p, &dy, &mut dp, Some(&mut dx))
        });
        report(name, batch, 2.0 * g.weight_len() as f64, fwd, Some((bwd, 2.0)), None);
    }
}
