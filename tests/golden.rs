//! The generated networks against PyTorch: logits, loss, gradients and optimizer trajectories
//! for every case in `tests/golden/` (made with torch 2.15; see its README for how, and for
//! the tolerances used here).

mod common;

use common::LeNet5;

use cnn::optim::{Adam, Sgd};
use cnn::prelude::*;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

cnn! {
    struct Mlp {
        input: [20],
        fc1: Dense(32) -> Relu,
        fc2: Dense(16) -> Tanh,
        fc3: Dense(5),
    }
}

cnn! {
    struct Strided {
        input: [3, 17, 13],
        conv1: Conv2d(8, kernel = (3, 5), stride = 2, padding = 1) -> Relu,
        pool1: AvgPool2d(2, stride = 1),
        conv2: Conv2d(4, kernel = 3) -> Sigmoid,
        flatten: Flatten,
        fc1: Dense(7),
    }
}

// The modern cases, declared exactly as their `declaration.rs`.

cnn! {
    pub struct ResNetTiny {
        input: [3, 16, 16],
        conv1: Conv2d(8, kernel = 3, padding = 1, bias = false),
        bn1: BatchNorm2d,
        relu: Relu,
        layer1: Sequential {
            0: Residual {
                conv1: Conv2d(8, kernel = 3, padding = 1, bias = false),
                bn1: BatchNorm2d,
                relu: Relu,
                conv2: Conv2d(8, kernel = 3, padding = 1, bias = false),
                bn2: BatchNorm2d,
            } -> Relu,
        },
        layer2: Sequential {
            0: Residual {
                conv1: Conv2d(16, kernel = 3, stride = 2, padding = 1, bias = false),
                bn1: BatchNorm2d,
                relu: Relu,
                conv2: Conv2d(16, kernel = 3, padding = 1, bias = false),
                bn2: BatchNorm2d,
                downsample: Shortcut {
                    0: Conv2d(16, kernel = 1, stride = 2, bias = false),
                    1: BatchNorm2d,
                },
            } -> Relu,
        },
        avgpool: GlobalAvgPool2d,
        flatten: Flatten,
        fc: Dense(10),
    }
}

cnn! {
    pub struct BnMlp {
        input: [20],
        fc1: Dense(32, bias = false),
        bn1: BatchNorm1d(momentum = 0.2),
        relu: Relu,
        fc2: Dense(16) -> Tanh,
        fc3: Dense(5),
    }
}

cnn! {
    pub struct Depthwise {
        input: [4, 12, 12],
        dw: Conv2d(8, kernel = 3, padding = 1, groups = 4, bias = false),
        bn: BatchNorm2d(affine = false),
        relu: Relu,
        pw: Conv2d(12, kernel = 1) -> Relu,
        pool: MaxPool2d(3, stride = 2, padding = 1),
        avg: AvgPool2d(3, stride = 2, padding = 1),
        flatten: Flatten,
        fc: Dense(6),
    }
}

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(case)
}

struct Tensors(Vec<u8>);

impl Tensors {
    fn open(case: &str, file: &str) -> Self {
        let path = case_dir(case).join(file);
        Tensors(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    fn f32s(&self, name: &str) -> Vec<f32> {
        let st = SafeTensors::deserialize(&self.0).unwrap();
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn labels(&self) -> Vec<u32> {
        let st = SafeTensors::deserialize(&self.0).unwrap();
        let t = st.tensor("labels").unwrap();
        assert_eq!(t.dtype(), Dtype::I64);
        t.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
            .collect()
    }

    /// The network's parameters from this file, in the layout of `N::PARAMS`.
    fn params<N: Network>(&self) -> Vec<f32> {
        N::PARAMS.iter().flat_map(|p| self.f32s(p.name)).collect()
    }

    /// The network's buffers from this file, in the layout of `N::BUFFERS`.
    fn buffers<N: Network>(&self) -> Vec<f32> {
        N::BUFFERS.iter().flat_map(|p| self.f32s(p.name)).collect()
    }

    fn i64(&self, name: &str) -> i64 {
        let st = SafeTensors::deserialize(&self.0).unwrap();
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((t.dtype(), t.shape()), (Dtype::I64, &[][..]), "{name}");
        i64::from_le_bytes(t.data().try_into().unwrap())
    }
}

/// The README's element-wise check, `|got - want| <= 1e-5 + 1e-3 |want|`, and its tighter
/// per-tensor one, `max |got - want| <= 1e-5 max |want|`.
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |m, w| m.max(w.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5 + 1e-3 * w.abs(), "{what}[{i}]: got {g}, want {w}");
        assert!(
            (g - w).abs() <= 1e-5 * scale,
            "{what}[{i}]: got {g}, want {w} (tensor scale {scale})"
        );
    }
}

fn per_param<N: Network>(what: &str, got: &[f32], want: &Tensors) {
    for p in N::PARAMS {
        assert_close(&format!("{what} {}", p.name), &got[p.range()], &want.f32s(p.name));
    }
}

fn check_case<N: Network>(case: &str) {
    let weights = Tensors::open(case, "weights.safetensors");
    let io = Tensors::open(case, "io.safetensors");
    let input = io.f32s("input");
    let labels = io.labels();
    let mut net = N::from_params(&weights.params::<N>());

    let mut logits = vec![0.0; labels.len() * N::OUTPUT_LEN];
    net.forward_batch(&input, &mut logits);
    assert_close("logits", &logits, &io.f32s("logits"));

    let mut grad = vec![f32::NAN; N::PARAM_COUNT];
    let loss = net.loss_and_grad(&input, &labels, &mut grad);
    assert_close("loss", &[loss], &io.f32s("loss"));
    per_param::<N>("grad", &grad, &Tensors::open(case, "grads.safetensors"));

    // Three full-batch SGD steps from the initial weights.
    let sgd = Tensors::open(case, "sgd.safetensors");
    let mut net = N::from_params(&weights.params::<N>());
    let mut opt = Sgd::new(0.05).momentum(0.9);
    let mut losses = Vec::new();
    for _ in 0..3 {
        losses.push(net.loss_and_grad(&input, &labels, &mut grad));
        opt.step(net.params_mut(), &grad);
    }
    assert_close("sgd losses", &losses, &sgd.f32s("losses"));
    per_param::<N>("sgd", net.params(), &sgd);

    // Three Adam steps: parameters compared absolutely, in units of lr (README: 1e-2 * lr).
    let adam = Tensors::open(case, "adam.safetensors");
    let mut net = N::from_params(&weights.params::<N>());
    let mut opt = Adam::new(1e-3);
    let mut losses = Vec::new();
    for _ in 0..3 {
        losses.push(net.loss_and_grad(&input, &labels, &mut grad));
        opt.step(net.params_mut(), &grad);
    }
    assert_close("adam losses", &losses, &adam.f32s("losses"));
    for p in N::PARAMS {
        let want = adam.f32s(p.name);
        for (i, (g, w)) in net.params()[p.range()].iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-2 * 1e-3, "adam {}[{i}]: got {g}, want {w}", p.name);
        }
    }
}

#[test]
fn lenet5_matches_pytorch() {
    check_case::<LeNet5>("lenet5");
}

#[test]
fn mlp_matches_pytorch() {
    check_case::<Mlp>("mlp");
}

#[test]
fn strided_matches_pytorch() {
    check_case::<Strided>("strided");
}

#[test]
fn weight_files_load_through_the_public_api() {
    let net: LeNet5 = cnn::io::load_safetensors(case_dir("lenet5").join("weights.safetensors")).unwrap();
    let want = Tensors::open("lenet5", "weights.safetensors").params::<LeNet5>();
    assert_eq!(net.params(), &want[..]);
}

/// A modern case (README, "Modern cases"): eval logits with the file's running statistics;
/// train-mode loss and gradients; the whole state (parameters and running statistics) after
/// three SGD and three Adam steps in train mode.
fn check_modern_case<N: Network>(case: &str) {
    let weights = Tensors::open(case, "weights.safetensors");
    let io = Tensors::open(case, "io.safetensors");
    let input = io.f32s("input");
    let labels = io.labels();
    let fresh = || {
        let mut net = N::from_params(&weights.params::<N>());
        net.buffers_mut().copy_from_slice(&weights.buffers::<N>());
        net
    };
    let mut net = fresh();

    let mut logits = vec![0.0; labels.len() * N::OUTPUT_LEN];
    net.forward_batch(&input, &mut logits);
    assert_close("eval logits", &logits, &io.f32s("logits_eval"));

    let mut grad = vec![f32::NAN; N::PARAM_COUNT];
    let loss = net.loss_and_grad(&input, &labels, &mut grad);
    assert_close("train loss", &[loss], &io.f32s("loss"));
    per_param::<N>("grad", &grad, &Tensors::open(case, "grads.safetensors"));

    let steps = |opt: &mut dyn FnMut(&mut [f32], &[f32]), file: &str| {
        let want = Tensors::open(case, file);
        let mut net = fresh();
        let mut grad = vec![0.0; N::PARAM_COUNT];
        let mut losses = Vec::new();
        for _ in 0..3 {
            losses.push(net.loss_and_grad(&input, &labels, &mut grad));
            opt(net.params_mut(), &grad);
        }
        assert_close(&format!("{file} losses"), &losses, &want.f32s("losses"));
        for b in N::BUFFERS {
            assert_close(
                &format!("{file} {}", b.name),
                &net.buffers()[b.range()],
                &want.f32s(b.name),
            );
            let stage = b.name.rsplit_once('.').unwrap().0;
            let tracked = want.i64(&format!("{stage}.num_batches_tracked"));
            assert_eq!(weights.i64(&format!("{stage}.num_batches_tracked")) + 3, tracked);
        }
        (net, want)
    };
    let mut sgd = Sgd::new(0.05).momentum(0.9);
    let (net, want) = steps(&mut |p, g| sgd.step(p, g), "sgd.safetensors");
    per_param::<N>("sgd", net.params(), &want);
    let mut adam = Adam::new(1e-3);
    let (net, want) = steps(&mut |p, g| adam.step(p, g), "adam.safetensors");
    // Adam: absolutely, in units of lr (README: 1e-3 * lr for these cases).
    for p in N::PARAMS {
        for (i, (g, w)) in net.params()[p.range()].iter().zip(&want.f32s(p.name)).enumerate() {
            assert!((g - w).abs() <= 1e-3 * 1e-3, "adam {}[{i}]: got {g}, want {w}", p.name);
        }
    }
}

#[test]
fn resnet_tiny_matches_pytorch_in_both_modes() {
    check_modern_case::<ResNetTiny>("resnet_tiny");
}

#[test]
fn bn_mlp_matches_pytorch_in_both_modes() {
    check_modern_case::<BnMlp>("bn_mlp");
}

#[test]
fn depthwise_matches_pytorch_in_both_modes() {
    check_modern_case::<Depthwise>("depthwise");
}

#[test]
fn modern_layouts_are_pytorchs() {
    let names: Vec<&str> = ResNetTiny::PARAMS.iter().map(|p| p.name).collect();
    assert!(names.contains(&"layer2.0.downsample.0.weight"));
    assert!(names.contains(&"layer2.0.downsample.1.bias"));
    let buffers: Vec<&str> = ResNetTiny::BUFFERS.iter().map(|p| p.name).collect();
    assert_eq!(buffers[..2], ["bn1.running_mean", "bn1.running_var"]);
    assert_eq!(ResNetTiny::PARAM_COUNT, 5266);
    let weights = Tensors::open("resnet_tiny", "weights.safetensors");
    let st = SafeTensors::deserialize(&weights.0).unwrap();
    // Every tensor of PyTorch's state_dict is a parameter, a buffer, or a batch counter.
    for (name, _) in st.tensors() {
        let known = ResNetTiny::PARAMS
            .iter()
            .chain(ResNetTiny::BUFFERS)
            .any(|p| p.name == name);
        assert!(known || name.ends_with(".num_batches_tracked"), "{name}");
    }
    assert_eq!(
        st.len(),
        ResNetTiny::PARAMS.len() + ResNetTiny::BUFFERS.len() + ResNetTiny::BUFFERS.len() / 2
    );
}
