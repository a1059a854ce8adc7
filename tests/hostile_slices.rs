//! Misuse of the slice API: every documented panic, with its message. Wrong lengths are
//! programming errors, not data errors, so they panic (with the expected and the actual
//! length) rather than return `Err`.
//!
//! Tests already elsewhere are not repeated: `tests/api.rs` (`forward_batch`, `loss_and_grad`,
//! `from_params`), and the unit tests of `cnn-runtime` (`Dataset::gather` buffers and indices,
//! conv input, dense output, loss label, `Sgd::step` grad, `sgemm` C). The kernels are reached
//! through `cnn_runtime`, the crate whose public modules they are.

use cnn::optim::{Adam, Sgd};
use cnn::prelude::*;
use cnn_runtime::activation::Activation;
use cnn_runtime::conv::Conv2d;
use cnn_runtime::dense::Dense;
use cnn_runtime::layout::Layout;
use cnn_runtime::loss::{softmax_cross_entropy, softmax_in_place};
use cnn_runtime::pool::{Pool2d, PoolKind};

cnn! {
    struct Tiny {
        input: [4],
        fc: Dense(3),
    }
}

// ---- the generated network --------------------------------------------------------------

#[test]
#[should_panic(expected = "Tiny::loss_and_grad: the batch is empty (no labels)")]
fn loss_and_grad_rejects_an_empty_batch() {
    Tiny::new(0).loss_and_grad(&[], &[], &mut [0.0; 15]);
}

// ---- data sets ----------------------------------------------------------------------------

/// Three 2x2 images, labels 0, 1, 2.
fn three_samples() -> (tempfile::TempDir, cnn::data::Dataset) {
    let dir = tempfile::tempdir().unwrap();
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2];
    images.extend(0..12);
    std::fs::write(dir.path().join("i"), images).unwrap();
    std::fs::write(dir.path().join("l"), [0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2]).unwrap();
    let data = cnn::data::Dataset::load(dir.path().join("i"), dir.path().join("l")).unwrap();
    (dir, data)
}

#[test]
#[should_panic(expected = "sample index 3 is out of range for a data set of 3 samples")]
fn dataset_image_rejects_an_index_out_of_range() {
    three_samples().1.image(3);
}

#[test]
#[should_panic(expected = "sample index 18446744073709551615 is out of range for a data set of 3 samples")]
fn dataset_label_rejects_an_index_out_of_range() {
    three_samples().1.label(usize::MAX);
}

#[test]
#[should_panic(expected = "sample index 3 is out of range for a data set of 3 samples")]
fn dataset_gather_rejects_an_index_out_of_range_through_the_facade() {
    three_samples().1.gather(&[2, 3], &mut [0.0; 8], &mut [0; 2]);
}

// ---- optimizers ---------------------------------------------------------------------------

#[test]
#[should_panic(expected = "Sgd::step: the optimizer was used with 3 parameters, now 2")]
fn sgd_with_momentum_rejects_a_change_of_parameter_count() {
    let mut opt = Sgd::new(0.1).momentum(0.9);
    opt.step(&mut [0.0; 3], &[1.0; 3]);
    opt.step(&mut [0.0; 2], &[1.0; 2]);
}

#[test]
#[should_panic(expected = "Sgd::step: the optimizer was used with 4 parameters, now 3")]
fn sgd_rejects_a_restored_state_of_the_wrong_length() {
    let mut opt = Sgd::new(0.1).momentum(0.9);
    opt.set_state(vec![0.0; 4]);
    opt.step(&mut [0.0; 3], &[1.0; 3]);
}

#[test]
#[should_panic(expected = "Adam::step: grad must hold 3 elements (one per parameter), got 2")]
fn adam_rejects_a_wrong_grad_length() {
    Adam::new(1e-3).step(&mut [0.0; 3], &[1.0; 2]);
}

#[test]
#[should_panic(expected = "Adam::step: the optimizer was used with 3 parameters, now 4")]
fn adam_rejects_a_change_of_parameter_count() {
    let mut opt = Adam::new(1e-3);
    opt.step(&mut [0.0; 3], &[1.0; 3]);
    opt.step(&mut [0.0; 4], &[1.0; 4]);
}

#[test]
#[should_panic(expected = "Adam::set_state: m holds 2 elements but v holds 3")]
fn adam_set_state_rejects_moments_of_different_lengths() {
    Adam::new(1e-3).set_state(1, vec![0.0; 2], vec![0.0; 3]);
}

#[test]
#[should_panic(expected = "Adam::set_state: 5 steps taken but no moments given")]
fn adam_set_state_rejects_steps_without_moments() {
    Adam::new(1e-3).set_state(5, Vec::new(), Vec::new());
}

#[test]
#[should_panic(expected = "Adam::step: the optimizer was used with 2 parameters, now 3")]
fn adam_rejects_a_restored_state_of_the_wrong_length() {
    let mut opt = Adam::new(1e-3);
    opt.set_state(1, vec![0.0; 2], vec![0.0; 2]);
    opt.step(&mut [0.0; 3], &[1.0; 3]);
}

// ---- convolution: input [1, 3, 3], 2 output channels, 2x2 kernel -> output [2, 2, 2] -----

const CONV: Conv2d = Conv2d::new([1, 3, 3], 2, [2, 2], [1, 1], [0, 0], true);

fn conv_forward(x: usize, params: usize, y: usize, scratch: usize) {
    CONV.forward(
        1,
        &vec![0.0; x],
        Layout::SampleMajor,
        &vec![0.0; params],
        &mut vec![0.0; y],
        &mut vec![0.0; scratch],
    );
}

#[test]
fn conv_forward_accepts_the_right_lengths() {
    assert_eq!(
        (
            CONV.in_len(),
            CONV.param_len(),
            CONV.out_len(),
            CONV.forward_scratch_len(),
            CONV.scratch_len()
        ),
        (9, 10, 8, 25, 116)
    );
    conv_forward(9, 10, 8, 25);
    conv_forward(9, 10, 8, 100); // scratch may be longer
}

#[test]
#[should_panic(expected = "conv2d: params must hold 10 elements, got 8")]
fn conv_forward_rejects_wrong_params() {
    conv_forward(9, 8, 8, 16);
}

#[test]
#[should_panic(expected = "conv2d: output must hold batch*OC*OH*OW = 1*8 elements, got 9")]
fn conv_forward_rejects_a_wrong_output() {
    conv_forward(9, 10, 9, 17);
}

#[test]
#[should_panic(expected = "conv2d: scratch must hold at least 25 elements, got 24")]
fn conv_forward_rejects_short_scratch() {
    conv_forward(9, 10, 8, 24);
}

fn conv_backward(dy: usize, dparams: usize, dx: Option<usize>) {
    let mut dx = dx.map(|n| vec![0.0; n]);
    CONV.backward(
        1,
        &[0.0; 9],
        Layout::SampleMajor,
        &[0.0; 10],
        &vec![0.0; dy],
        &mut vec![0.0; dparams],
        dx.as_deref_mut(),
        &mut [0.0; 116],
    );
}

#[test]
fn conv_backward_accepts_the_right_lengths() {
    conv_backward(8, 10, Some(9));
    conv_backward(8, 10, None);
}

#[test]
#[should_panic(expected = "conv2d: dy must hold batch*OC*OH*OW = 1*8 elements, got 7")]
fn conv_backward_rejects_a_wrong_dy() {
    conv_backward(7, 10, None);
}

#[test]
#[should_panic(expected = "conv2d: dparams must hold 10 elements, got 11")]
fn conv_backward_rejects_wrong_dparams() {
    conv_backward(8, 11, None);
}

#[test]
#[should_panic(expected = "conv2d: dx must hold 9 elements, got 8")]
fn conv_backward_rejects_a_wrong_dx() {
    conv_backward(8, 10, Some(8));
}

#[test]
#[should_panic(expected = "Conv2d: the kernel does not fit the padded input")]
fn conv_geometry_rejects_a_kernel_larger_than_the_input() {
    let kernel = std::hint::black_box([4, 2]);
    Conv2d::new([1, 3, 3], 1, kernel, [1, 1], [0, 0], true);
}

#[test]
#[should_panic(expected = "Conv2d: the kernel does not fit the padded input")]
fn conv_geometry_rejects_a_zero_stride() {
    let stride = std::hint::black_box([1, 0]);
    Conv2d::new([1, 3, 3], 1, [2, 2], stride, [0, 0], true);
}

// ---- pooling: input [2, 4, 4], 2x2 window, stride 2 -> output [2, 2, 2] -------------------

const POOL: Pool2d = Pool2d::new(PoolKind::Max, [2, 4, 4], [2, 2], [2, 2], [0, 0]);

#[test]
fn pool_accepts_the_right_lengths() {
    POOL.forward(2, &[0.0; 64], &mut [0.0; 16]);
    POOL.backward(2, &[0.0; 64], &[0.0; 16], &mut [0.0; 64]);
}

#[test]
#[should_panic(expected = "pool: input must hold batch*C*H*W = 2*32 elements, got 63")]
fn pool_forward_rejects_a_wrong_input() {
    POOL.forward(2, &[0.0; 63], &mut [0.0; 16]);
}

#[test]
#[should_panic(expected = "pool: output must hold batch*C*OH*OW = 2*8 elements, got 17")]
fn pool_forward_rejects_a_wrong_output() {
    POOL.forward(2, &[0.0; 64], &mut [0.0; 17]);
}

#[test]
#[should_panic(expected = "pool: dy must hold batch*C*OH*OW = 1*8 elements, got 16")]
fn pool_backward_rejects_a_wrong_dy() {
    POOL.backward(1, &[0.0; 32], &[0.0; 16], &mut [0.0; 32]);
}

#[test]
#[should_panic(expected = "pool: dx must hold 32 elements, got 31")]
fn pool_backward_rejects_a_wrong_dx() {
    Pool2d::new(PoolKind::Avg, [2, 4, 4], [2, 2], [2, 2], [0, 0]).backward(1, &[0.0; 32], &[0.0; 8], &mut [0.0; 31]);
}

#[test]
#[should_panic(expected = "Pool2d: the window does not fit the padded input")]
fn pool_geometry_rejects_a_window_larger_than_the_input() {
    let kernel = std::hint::black_box([5, 1]);
    Pool2d::new(PoolKind::Max, [1, 4, 4], kernel, [1, 1], [0, 0]);
}

// ---- dense: 4 inputs, 3 outputs, bias -> 15 parameters ------------------------------------

const DENSE: Dense = Dense::new(4, 3, true);

#[test]
fn dense_accepts_the_right_lengths() {
    DENSE.forward(2, &[0.0; 8], &[0.0; 15], &mut [0.0; 6]);
    DENSE.backward(2, &[0.0; 8], &[0.0; 15], &[0.0; 6], &mut [0.0; 15], Some(&mut [0.0; 8]));
}

#[test]
#[should_panic(expected = "dense: input must hold batch*IN = 2*4 elements, got 7")]
fn dense_forward_rejects_a_wrong_input() {
    DENSE.forward(2, &[0.0; 7], &[0.0; 15], &mut [0.0; 6]);
}

#[test]
#[should_panic(expected = "dense: params must hold 15 elements, got 12")]
fn dense_forward_rejects_wrong_params() {
    DENSE.forward(2, &[0.0; 8], &[0.0; 12], &mut [0.0; 6]);
}

#[test]
#[should_panic(expected = "dense: dy must hold batch*OUT = 2*3 elements, got 5")]
fn dense_backward_rejects_a_wrong_dy() {
    DENSE.backward(2, &[0.0; 8], &[0.0; 15], &[0.0; 5], &mut [0.0; 15], None);
}

#[test]
#[should_panic(expected = "dense: dparams must hold 15 elements, got 16")]
fn dense_backward_rejects_wrong_dparams() {
    DENSE.backward(2, &[0.0; 8], &[0.0; 15], &[0.0; 6], &mut [0.0; 16], None);
}

#[test]
#[should_panic(expected = "dense: dx must hold 8 elements, got 4")]
fn dense_backward_rejects_a_wrong_dx() {
    DENSE.backward(2, &[0.0; 8], &[0.0; 15], &[0.0; 6], &mut [0.0; 15], Some(&mut [0.0; 4]));
}

// ---- activations --------------------------------------------------------------------------

#[test]
#[should_panic(expected = "activation: output must hold 3 elements, got 2")]
fn activation_forward_rejects_a_wrong_output() {
    Activation::Relu.forward(&[0.0; 3], &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "activation: x, y, dy and dx must all hold 3 elements, got 3, 2, 3")]
fn activation_backward_rejects_a_wrong_dy() {
    Activation::Tanh.backward(&[0.0; 3], &[0.0; 3], &[0.0; 2], &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "activation: x, y, dy and dx must all hold 2 elements, got 2, 2, 3")]
fn activation_backward_rejects_a_wrong_dx() {
    Activation::Sigmoid.backward(&[0.0; 2], &[0.0; 2], &[0.0; 2], &mut [0.0; 3]);
}

// ---- loss ---------------------------------------------------------------------------------

#[test]
#[should_panic(expected = "softmax: 7 logits do not split into rows of 2")]
fn softmax_rejects_a_ragged_batch() {
    softmax_in_place(&mut [0.0; 7], 2);
}

#[test]
#[should_panic(expected = "softmax: 4 logits do not split into rows of 0")]
fn softmax_rejects_zero_classes() {
    softmax_in_place(&mut [0.0; 4], 0);
}

#[test]
#[should_panic(expected = "loss: logits must hold labels*classes = 2*3 elements, got 5")]
fn loss_rejects_logits_that_do_not_match_the_labels() {
    softmax_cross_entropy(&[0.0; 5], &[0, 1], 3, &mut [0.0; 5]);
}

#[test]
#[should_panic(expected = "loss: dlogits must hold 6 elements, got 5")]
fn loss_rejects_a_wrong_dlogits() {
    softmax_cross_entropy(&[0.0; 6], &[0, 1], 3, &mut [0.0; 5]);
}

// ---- init ---------------------------------------------------------------------------------

/// `pytorch_default` documents a panic for a buffer shorter than the layout, but its message
/// is the slice index's own (no custom assertion).
#[test]
#[should_panic(expected = "out of range for slice of length 10")]
fn pytorch_default_rejects_a_short_buffer() {
    cnn_runtime::init::pytorch_default(&mut [0.0; 10], Tiny::PARAMS, 0);
}
