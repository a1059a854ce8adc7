//! An embedded network costs nothing to obtain and nothing to run: `pretrained()` borrows the
//! weights compiled into the binary, and `forward`/`predict` keep their working memory on the
//! stack, with the default thread setting.
//!
//! This is the usual case of feature unification: the `#![no_std]` library `no_std_check`
//! declares the network, and this ordinary (std) binary uses it, so cargo builds `cnn` with std
//! for both. Counted with a global allocator that counts every allocation of this binary.

use cnn::Network;
use no_std_check::LeNet5;

#[path = "../../common/count_allocations.rs"]
mod count_allocations;

use count_allocations::allocations;

fn image(phase: f32) -> [f32; LeNet5::INPUT_LEN] {
    core::array::from_fn(|i| ((i as f32 + phase) * 0.37).sin())
}

// One test: other tests would allocate meanwhile.
#[test]
fn pretrained_forward_and_predict_allocate_nothing() {
    let (a, b) = (image(0.0), image(1.5));
    let (mut net, mut logits, mut class, mut library) = (None, [0.0; LeNet5::OUTPUT_LEN], 0, 1);
    let n = allocations(|| {
        let pretrained = LeNet5::pretrained();
        logits = pretrained.forward(&a);
        class = pretrained.predict(&b);
        library = no_std_check::classify(&b);
        net = Some(pretrained);
    });
    assert_eq!(n, 0, "allocations by pretrained(), forward and predict");
    let net = net.expect("set above");
    assert_eq!(class, library);
    // The same bits as the batch API, which works in the network's workspace.
    let mut batch = [0.0; LeNet5::OUTPUT_LEN];
    net.forward_batch(&a, &mut batch);
    assert_eq!(logits.map(f32::to_bits), batch.map(f32::to_bits));
    // The weights are read in place, not copied: until something changes them.
    assert!(std::ptr::eq(net.params(), LeNet5::pretrained_params()));
    let mut tuned = LeNet5::pretrained();
    tuned.params_mut()[0] += 1.0;
    assert!(!std::ptr::eq(tuned.params(), LeNet5::pretrained_params()));
    assert_eq!(LeNet5::pretrained_params()[0] + 1.0, tuned.params()[0]);
}
