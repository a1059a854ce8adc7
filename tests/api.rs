//! The generated API the README describes: constants, constructors, forward, predict, probabilities,
//! summary, the `Network` impl and weight files, on LeNet-5.

use cnn::prelude::*;
use std::path::Path;

cnn! {
    /// LeNet-5 for 28x28 grayscale digits.
    #[derive(Clone, Debug)]
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
    pub(crate) struct Vector {
        input: [1_0],
        fc: Dense(3, bias = false),
    }
}

fn digit_like(seed: u32) -> [f32; 784] {
    std::array::from_fn(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 1000.0)
}

#[test]
fn constants_follow_the_declaration() {
    assert_eq!(LeNet5::INPUT_SHAPE, [1, 28, 28]);
    assert_eq!(LeNet5::INPUT_LEN, 784);
    assert_eq!(LeNet5::OUTPUT_LEN, 10);
    assert_eq!(LeNet5::PARAM_COUNT, 61_706);
    assert_eq!(LeNet5::MACS, 416_520);
    assert_eq!(<LeNet5 as Network>::INPUT_SHAPE, &[1, 28, 28]);
    assert_eq!(Vector::INPUT_SHAPE, [10]);
    assert_eq!(Vector::PARAM_COUNT, 30);
    assert_eq!(Vector::PARAMS.len(), 1);
}

#[test]
fn params_layout_is_pytorchs_state_dict() {
    let names: Vec<&str> = LeNet5::PARAMS.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "fc3.weight",
            "fc3.bias"
        ]
    );
    assert_eq!(LeNet5::PARAMS[2].shape, &[16, 6, 5, 5]);
    assert_eq!(LeNet5::PARAMS[4].shape, &[120, 400]);
    // Contiguous, in order, covering the whole buffer.
    let mut offset = 0;
    for p in LeNet5::PARAMS {
        assert_eq!(p.offset, offset, "{}", p.name);
        offset += p.len();
    }
    assert_eq!(offset, LeNet5::PARAM_COUNT);
}

#[test]
fn new_is_reproducible_and_follows_pytorch_bounds() {
    let (a, b, c) = (LeNet5::new(7), LeNet5::new(7), LeNet5::new(8));
    assert_eq!(a.params(), b.params());
    assert_ne!(a.params(), c.params());
    for p in LeNet5::PARAMS {
        let fan_in: usize = if p.shape.len() > 1 {
            p.shape[1..].iter().product()
        } else {
            0
        };
        let fan_in = if fan_in == 0 {
            LeNet5::PARAMS
                .iter()
                .find(|w| w.name == p.name.replace("bias", "weight"))
                .unwrap()
                .shape[1..]
                .iter()
                .product()
        } else {
            fan_in
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        let values = &a.params()[p.range()];
        assert!(values.iter().all(|v| v.abs() <= bound), "{}", p.name);
        assert!(
            values.iter().any(|v| v.abs() > 0.5 * bound),
            "{} is not spread over its range",
            p.name
        );
    }
}

#[test]
fn forward_predict_and_probabilities_agree_with_forward_batch() {
    let net = LeNet5::new(3);
    let x = digit_like(1);
    let logits = net.forward(&x);
    let mut batch = vec![0.0; 20];
    let mut two = x.to_vec();
    two.extend_from_slice(&digit_like(2));
    net.forward_batch(&two, &mut batch);
    assert_eq!(
        &batch[..10],
        &logits[..],
        "a sample's logits do not depend on its batch"
    );
    let argmax = (0..10).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
    assert_eq!(net.predict(&x), argmax);
    let p = net.probabilities(&x);
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    let pmax = (0..10).fold(0, |b, i| if p[i] > p[b] { i } else { b });
    assert_eq!(pmax, argmax);
    // Softmax ratios follow logit differences.
    assert!(((p[0] / p[1]).ln() - (logits[0] - logits[1])).abs() < 1e-4);
}

#[test]
fn large_batches_give_each_sample_its_own_logits() {
    // 19 samples: inference goes a few samples at a time (and a thread's share at a time), so
    // this crosses block boundaries and ends in a short block.
    let net = LeNet5::new(5);
    let inputs: Vec<f32> = (0..19).flat_map(|i| digit_like(i + 10)).collect();
    let mut batch = vec![0.0; 19 * 10];
    net.forward_batch(&inputs, &mut batch);
    for (i, x) in inputs.chunks_exact(784).enumerate() {
        let one = net.forward(x.try_into().unwrap());
        assert_eq!(&batch[i * 10..][..10], &one[..], "sample {i}");
    }
}

#[test]
fn summary_lists_every_stage_with_shapes() {
    let s = LeNet5::summary();
    for needle in [
        "conv1",
        "[6, 28, 28]",
        "pool2",
        "[16, 5, 5]",
        "[400]",
        "fc3",
        "61,706",
        "416,520",
    ] {
        assert!(s.contains(needle), "summary lacks {needle}:\n{s}");
    }
}

#[test]
fn clone_and_from_params_copy_the_parameters() {
    let a = LeNet5::new(1);
    let b = a.clone();
    assert_eq!(a.params(), b.params());
    let c = LeNet5::from_params(a.params());
    assert_eq!(c.forward(&digit_like(4)), a.forward(&digit_like(4)));
}

#[test]
#[should_panic(expected = "LeNet5::forward_batch: input length 785 is not a multiple of INPUT_LEN = 784")]
fn forward_batch_rejects_a_ragged_input() {
    LeNet5::new(0).forward_batch(&[0.0; 785], &mut [0.0; 10]);
}

#[test]
#[should_panic(expected = "LeNet5::forward_batch: output must hold batch * OUTPUT_LEN = 2 * 10 values, got 10")]
fn forward_batch_rejects_a_short_output() {
    LeNet5::new(0).forward_batch(&[0.0; 1568], &mut [0.0; 10]);
}

#[test]
#[should_panic(expected = "LeNet5::loss_and_grad: grad must hold PARAM_COUNT = 61706 values, got 3")]
fn loss_and_grad_rejects_a_wrong_grad_length() {
    LeNet5::new(0).loss_and_grad(&[0.0; 784], &[1], &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "LeNet5::loss_and_grad: input must hold labels.len() * INPUT_LEN = 2 * 784 values, got 784")]
fn loss_and_grad_rejects_a_label_count_mismatch() {
    LeNet5::new(0).loss_and_grad(&[0.0; 784], &[1, 2], &mut [0.0; 61_706]);
}

#[test]
#[should_panic(expected = "label 10 of sample 0 is out of range 0..10")]
fn loss_and_grad_rejects_a_label_out_of_range() {
    LeNet5::new(0).loss_and_grad(&[0.0; 784], &[10], &mut [0.0; 61_706]);
}

#[test]
#[should_panic(expected = "LeNet5::from_params: expected 61706 parameters, got 5")]
fn from_params_rejects_a_wrong_length() {
    LeNet5::from_params(&[0.0; 5]);
}

#[test]
fn weights_round_trip_through_safetensors() -> Result<(), cnn::Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lenet5.safetensors");
    let net = LeNet5::new(11);
    cnn::io::save_safetensors(&net, &path)?;
    let back: LeNet5 = cnn::io::load_safetensors(&path)?;
    assert_eq!(back.params(), net.params());
    assert_eq!(back.forward(&digit_like(9)), net.forward(&digit_like(9)));
    Ok(())
}

#[test]
fn a_file_for_another_architecture_is_refused_naming_the_tensor() {
    let mlp = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mlp/weights.safetensors");
    let err = cnn::io::load_safetensors::<LeNet5>(&mlp).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("conv1.weight") && text.contains("missing"), "{text}");
}

cnn! {
    /// The golden `resnet_tiny` case with PyTorch's state_dict embedded at compile time:
    /// parameters and BatchNorm buffers (and its `num_batches_tracked`, which may be there).
    #[weights = "tests/golden/resnet_tiny/weights.safetensors"]
    pub struct EmbeddedResNet {
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

#[test]
fn embedded_weights_carry_the_batchnorm_buffers() -> Result<(), cnn::Error> {
    let loaded: EmbeddedResNet = cnn::io::load_safetensors("tests/golden/resnet_tiny/weights.safetensors")?;
    let embedded = EmbeddedResNet::pretrained();
    assert_eq!(EmbeddedResNet::pretrained_params(), loaded.params());
    assert_eq!(EmbeddedResNet::pretrained_buffers(), loaded.buffers());
    // The file's running statistics are not the initial ones: eval mode reads them.
    assert!(loaded.buffers().iter().any(|&b| b != 0.0 && b != 1.0));
    let x: Vec<f32> = (0..EmbeddedResNet::INPUT_LEN).map(|i| (i as f32 * 0.7).sin()).collect();
    let input: &[f32; EmbeddedResNet::INPUT_LEN] = x.as_slice().try_into().unwrap();
    assert_eq!(embedded.forward(input), loaded.forward(input));
    Ok(())
}

/// `forward_into`, which prepares nothing ahead: the reference for the network's own calls,
/// which keep the folded parameters from call to call.
fn forward_afresh(net: &EmbeddedResNet, input: &[f32]) -> Vec<f32> {
    let batch = input.len() / EmbeddedResNet::INPUT_LEN;
    let mut out = vec![0.0; batch * EmbeddedResNet::OUTPUT_LEN];
    let mut ws = vec![0.0; EmbeddedResNet::inference_len(batch)];
    EmbeddedResNet::forward_into(net.params(), net.buffers(), input, &mut out, &mut ws);
    out
}

#[test]
fn inference_follows_every_change_of_the_parameters_and_buffers() {
    let mut net = EmbeddedResNet::pretrained();
    let x: Vec<f32> = (0..8 * EmbeddedResNet::INPUT_LEN)
        .map(|i| (i as f32 * 0.3).cos())
        .collect();
    let one: &[f32; EmbeddedResNet::INPUT_LEN] = x[..EmbeddedResNet::INPUT_LEN].try_into().unwrap();
    let mut logits = vec![0.0; 8 * EmbeddedResNet::OUTPUT_LEN];
    let mut check = |net: &EmbeddedResNet, what: &str| {
        net.forward_batch(&x, &mut logits);
        assert_eq!(logits, forward_afresh(net, &x), "{what}: forward_batch");
        assert_eq!(net.forward(one).as_slice(), forward_afresh(net, one), "{what}: forward");
        logits.clone()
    };
    let before = check(&net, "embedded");
    // A convolution's weight (folded with its BatchNorm at inference).
    net.params_mut()[3] += 0.5;
    let changed = check(&net, "params_mut");
    assert_ne!(before, changed);
    // A running variance.
    let var = EmbeddedResNet::BUFFERS
        .iter()
        .find(|b| b.name == "layer1.0.bn2.running_var")
        .unwrap();
    net.buffers_mut()[var.offset] *= 4.0;
    let rescaled = check(&net, "buffers_mut");
    assert_ne!(changed, rescaled);
    // A training step moves the running statistics.
    let mut grad = vec![0.0; EmbeddedResNet::PARAM_COUNT];
    net.loss_and_grad(&x, &[1, 2, 3, 4, 5, 6, 7, 8], &mut grad);
    let trained = check(&net, "loss_and_grad");
    assert_ne!(rescaled, trained);
}
