//! Dropout through a generated network: in a training step each element is zeroed with
//! probability `p` and the rest scaled by `1 / (1 - p)`, from masks that depend on the network's
//! seed and step count only; at inference it is the identity.
//!
//! The masked input is read back from the gradient of the dense layer after the Dropout: with one
//! sample, d loss / d W[o, i] = d loss / d b[o] * y[i], where `y` is the Dropout's output.

use cnn::prelude::*;

const N: usize = 4000;
const P: f32 = 0.3;

cnn! {
    struct Drop {
        input: [4000],
        drop: Dropout(0.3),
        fc: Dense(2),
    }
}

/// The Dropout's output for an input of ones, from one training step.
fn masked(net: &mut Drop) -> Vec<f32> {
    let mut grad = vec![0.0; Drop::PARAM_COUNT];
    net.loss_and_grad(&[1.0; N], &[0], &mut grad);
    let bias = grad[2 * N];
    grad[..N].iter().map(|g| g / bias).collect()
}

#[test]
fn drops_p_and_scales_the_rest() {
    let y = masked(&mut Drop::new(1));
    let dropped = y.iter().filter(|&&v| v == 0.0).count() as f32 / N as f32;
    // Five standard deviations of a binomial fraction.
    let sigma = (P * (1.0 - P) / N as f32).sqrt();
    assert!((dropped - P).abs() < 5.0 * sigma, "dropped {dropped}, want {P}");
    for &v in y.iter().filter(|&&v| v != 0.0) {
        assert!((v - 1.0 / (1.0 - P)).abs() < 1e-4, "kept element scaled to {v}");
    }
}

#[test]
fn masks_follow_the_seed_and_the_step() {
    let (mut a, mut b, mut c) = (Drop::new(7), Drop::new(7), Drop::new(8));
    let first = masked(&mut a);
    assert_eq!(first, masked(&mut b), "same seed, same step: same mask");
    assert_ne!(first, masked(&mut c), "another seed: another mask");
    let second = masked(&mut a);
    assert_ne!(first, second, "the next step draws a new mask");
    assert_eq!(a.train_state().steps, 2);
    // A network put back to step 1 draws the second mask again (a resumed run).
    let mut resumed = Drop::new(0);
    resumed.params_mut().copy_from_slice(a.params());
    resumed.set_train_state(cnn::TrainState { seed: 7, steps: 1 });
    assert_eq!(masked(&mut resumed), second);
}

#[test]
fn inference_is_the_identity() {
    let net = Drop::new(3);
    let x: Vec<f32> = (0..N).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut logits = [0.0; 2];
    net.forward_batch(&x, &mut logits);
    let p = net.params();
    for o in 0..2 {
        let want: f64 = p[o * N..(o + 1) * N]
            .iter()
            .zip(&x)
            .map(|(w, x)| (*w as f64) * (*x as f64))
            .sum::<f64>()
            + p[2 * N + o] as f64;
        assert!(
            (logits[o] as f64 - want).abs() < 1e-4,
            "logit {o}: {} vs {want}",
            logits[o]
        );
    }
}
