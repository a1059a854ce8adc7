//! An embedded network costs nothing to obtain and nothing to run: `pretrained()` borrows the
//! weights compiled into the binary, and `forward`/`predict` keep their working memory on the
//! stack, with the default thread setting.
//!
//! This is the usual case of feature unification: the `#![no_std]` library `no_std_check`
//! declares the network, and this ordinary (std) binary uses it, so cargo builds `cnn` with std
//! for both. Counted with a global allocator that counts every allocation of this binary.

use cnn::Network;
use no_std_check::LeNet5;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator and only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn image(phase: f32) -> [f32; LeNet5::INPUT_LEN] {
    core::array::from_fn(|i| ((i as f32 + phase) * 0.37).sin())
}

// One test: other tests would allocate meanwhile.
#[test]
fn pretrained_forward_and_predict_allocate_nothing() {
    let (a, b) = (image(0.0), image(1.5));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let net = LeNet5::pretrained();
    let logits = net.forward(&a);
    let class = net.predict(&b);
    let library = no_std_check::classify(&b);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(after - before, 0, "allocations by pretrained(), forward and predict");
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
