//! The no_std, allocation-free path (embedded weights read in place, `forward_into`,
//! `loss_and_grad_into` and `sgd_step` over static buffers) against the std API, bit for bit.
//!
//! In this test binary cargo builds `cnn` with std (the dev-dependency), so both paths run the
//! same kernels: what is compared is the code around them: the compile-time gathering of the
//! embedded file into the parameter layout, the caller-buffer entry points, and the no-alloc
//! optimizer step.

use cnn::data::Mnist;
use cnn::optim::Sgd;
use cnn::Network;
use no_std_check::{LeNet5, BATCH};

/// The first `n` MNIST test images, normalized as the mnist example trains them.
fn test_images(n: usize) -> (Vec<f32>, Vec<u32>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/mnist");
    let mnist = Mnist::load(dir).expect("the MNIST data set is in data/mnist");
    let indices: Vec<usize> = (0..n).collect();
    let mut images = vec![0.0; n * 784];
    let mut labels = vec![0; n];
    mnist.test.gather(&indices, &mut images, &mut labels);
    images.iter_mut().for_each(|x| *x = (*x - Mnist::MEAN) / Mnist::STD);
    (images, labels)
}

fn bits(xs: &[f32]) -> Vec<u32> {
    xs.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn embedded_weights_are_the_file_loaded_at_run_time() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/lenet5.safetensors");
    let loaded = cnn::io::load_safetensors::<LeNet5>(path).unwrap();
    assert_eq!(bits(loaded.params()), bits(LeNet5::pretrained_params()));
    assert_eq!(bits(LeNet5::pretrained().params()), bits(loaded.params()));
}

#[test]
fn static_buffer_inference_gives_the_bits_of_the_std_api() {
    let bufs = &mut *Box::new(no_std_check::Buffers::new());
    let net = LeNet5::pretrained();
    let (images, labels) = test_images(32);
    let mut correct = 0;
    for (x, &label) in images.chunks_exact(784).zip(&labels) {
        let x: &[f32; 784] = x.try_into().unwrap();
        let std_logits = net.forward(x);
        assert_eq!(bits(&no_std_check::logits(bufs, x)), bits(&std_logits));
        let predicted = no_std_check::classify(x);
        assert_eq!(predicted, net.predict(x));
        correct += usize::from(predicted == label as usize);
    }
    assert!(correct >= 31, "{correct} of 32 right");
}

#[test]
fn the_static_buffers_are_handed_out_once() {
    let first = no_std_check::take_static_buffers();
    assert!(first.is_some());
    assert!(no_std_check::take_static_buffers().is_none());
    let bufs = first.unwrap();
    let (images, _) = test_images(1);
    let x: &[f32; 784] = images[..].try_into().unwrap();
    assert_eq!(
        bits(&no_std_check::logits(bufs, x)),
        bits(&LeNet5::pretrained().forward(x))
    );
}

#[test]
fn one_sgd_step_without_allocator_gives_the_bits_of_the_std_api() {
    cnn::set_threads(1);
    let (lr, momentum) = (0.01, 0.9);
    let (images, labels) = test_images(2 * BATCH);
    let bufs = &mut *Box::new(no_std_check::Buffers::new());
    let mut net = LeNet5::pretrained();
    let mut opt = Sgd::new(lr).momentum(momentum);
    let mut grad = vec![0.0; LeNet5::PARAM_COUNT];
    // Two steps, so the second uses the momentum buffer.
    for step in 0..2 {
        let x = &images[step * BATCH * 784..][..BATCH * 784];
        let y = &labels[step * BATCH..][..BATCH];
        let loss = no_std_check::fine_tune_step(bufs, x.try_into().unwrap(), y.try_into().unwrap(), lr, momentum);
        let std_loss = net.loss_and_grad(x, y, &mut grad);
        opt.step(net.params_mut(), &grad);
        assert_eq!(loss.to_bits(), std_loss.to_bits(), "step {step}");
        assert_eq!(bits(&bufs.grad), bits(&grad), "step {step}");
        assert_eq!(bits(&bufs.params), bits(net.params()), "step {step}");
        assert_eq!(bits(&bufs.momentum), bits(opt.state()), "step {step}");
    }
    assert_ne!(bits(&bufs.params), bits(LeNet5::pretrained_params()));
    let x: &[f32; 784] = images[..784].try_into().unwrap();
    assert_eq!(bits(&no_std_check::tuned_logits(bufs, x)), bits(&net.forward(x)));
}
