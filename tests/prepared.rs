//! Convolutions without a BatchNorm whose inference reads their weight laid out ahead
//! (`Conv2d::prepares`: by Winograd's algorithm, or transposed): the network prepares it once,
//! computes the convolution, gives the same bits whether a call found it prepared or prepared
//! it on the way, and prepares it again when the parameters change.

use cnn::prelude::*;

cnn! {
    /// Two 3x3 layers of 16 channels on 8x8, which inference computes by Winograd's algorithm.
    struct Plain {
        input: [16, 8, 8],
        conv1: Conv2d(16, kernel = 3, padding = 1) -> Relu,
        conv2: Conv2d(16, kernel = 3, padding = 1),
        pool: GlobalAvgPool2d,
        flatten: Flatten,
        fc: Dense(10),
    }
}

const PLANE: usize = 64;

/// The tensor `name` of `params`.
fn tensor<'p>(params: &'p [f32], name: &str) -> &'p [f32] {
    let p = Plain::PARAMS
        .iter()
        .find(|p| p.name == name)
        .expect("a declared tensor");
    &params[p.offset..][..p.shape.iter().product::<usize>()]
}

/// A 3x3 convolution with padding 1 of 16 channels of 8x8, in f64.
fn conv(x: &[f64], weight: &[f32], bias: &[f32], relu: bool) -> Vec<f64> {
    let mut y = vec![0.0; 16 * PLANE];
    for (o, plane) in y.chunks_exact_mut(PLANE).enumerate() {
        for (p, out) in plane.iter_mut().enumerate() {
            let (i, j) = (p / 8, p % 8);
            let mut sum = f64::from(bias[o]);
            for c in 0..16 {
                for (u, v) in (0..9).map(|t| (t / 3, t % 3)) {
                    let (r, s) = ((i + u).wrapping_sub(1), (j + v).wrapping_sub(1));
                    if r < 8 && s < 8 {
                        sum += f64::from(weight[((o * 16 + c) * 3 + u) * 3 + v]) * x[c * PLANE + r * 8 + s];
                    }
                }
            }
            *out = if relu { sum.max(0.0) } else { sum };
        }
    }
    y
}

/// The logits of one sample by the definition.
fn reference(params: &[f32], x: &[f32]) -> Vec<f64> {
    let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let h = conv(&x, tensor(params, "conv1.weight"), tensor(params, "conv1.bias"), true);
    let h = conv(&h, tensor(params, "conv2.weight"), tensor(params, "conv2.bias"), false);
    let pooled: Vec<f64> = h
        .chunks_exact(PLANE)
        .map(|p| p.iter().sum::<f64>() / PLANE as f64)
        .collect();
    let (w, b) = (tensor(params, "fc.weight"), tensor(params, "fc.bias"));
    (0..10)
        .map(|o| f64::from(b[o]) + (0..16).map(|c| f64::from(w[o * 16 + c]) * pooled[c]).sum::<f64>())
        .collect()
}

fn assert_defined(net: &Plain, x: &[f32], logits: &[f32], what: &str) {
    for (s, (x, logits)) in x
        .chunks_exact(Plain::INPUT_LEN)
        .zip(logits.chunks_exact(10))
        .enumerate()
    {
        for (o, (&got, want)) in logits.iter().zip(reference(net.params(), x)).enumerate() {
            assert!(
                (f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "{what}: sample {s}, logit {o}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn plain_convolutions_prepare_once_and_again_after_a_change() {
    let batch = 8;
    let x: Vec<f32> = (0..batch * Plain::INPUT_LEN).map(|i| (i as f32 * 0.37).sin()).collect();
    let one: &[f32; Plain::INPUT_LEN] = x[..Plain::INPUT_LEN].try_into().unwrap();
    let mut net = Plain::new(7);
    // A fresh network's `forward` prepares on the way; `forward_batch` keeps what it prepares,
    // which the next `forward` reads: the same bits every way.
    let afresh = net.forward(one);
    let mut logits = vec![0.0; batch * 10];
    net.forward_batch(&x, &mut logits);
    assert_defined(&net, &x, &logits, "declared");
    assert_eq!(afresh.as_slice(), &logits[..10], "forward before forward_batch");
    assert_eq!(
        net.forward(one).as_slice(),
        &logits[..10],
        "forward after forward_batch"
    );
    // A change of a weight: prepared again.
    net.params_mut()[5] += 0.25;
    let mut changed = vec![0.0; batch * 10];
    net.forward_batch(&x, &mut changed);
    assert_ne!(logits, changed);
    assert_defined(&net, &x, &changed, "changed");
}
