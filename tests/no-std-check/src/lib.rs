//! A `#![no_std]` library with no allocator that embeds LeNet-5 with its trained weights
//! (checked against the declaration at compile time), classifies digits, and fine-tunes the
//! network by one SGD step, every buffer in a `static`: the proof that `cnn` works with
//! `default-features = false`.
//!
//! `cargo build -p no-std-check --lib` builds it without std (CI does); `cargo test` runs
//! `tests/bitwise.rs`, which checks it against the std API bit for bit.
#![no_std]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use cnn::cnn;

cnn! {
    /// LeNet-5 for 28x28 grayscale digits, with the weights of `models/lenet5.safetensors`.
    #[weights = "../../models/lenet5.safetensors"]
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

/// Samples per fine-tuning step.
pub const BATCH: usize = 4;

/// Every buffer inference and fine-tuning need, sized by the network's generated memory plan.
pub struct Buffers {
    /// Working memory: enough for a training step on `BATCH` samples, and so for inference.
    pub ws: [f32; LeNet5::workspace_len(BATCH)],
    /// The fine-tuned parameters (a copy of the embedded ones on the first step).
    pub params: [f32; LeNet5::PARAM_COUNT],
    pub grad: [f32; LeNet5::PARAM_COUNT],
    /// SGD's momentum buffer: zeros before the first step.
    pub momentum: [f32; LeNet5::PARAM_COUNT],
    /// Whether `params` holds a copy of the embedded weights yet.
    pub tuned: bool,
}

impl Buffers {
    pub const fn new() -> Self {
        Buffers {
            ws: [0.0; LeNet5::workspace_len(BATCH)],
            params: [0.0; LeNet5::PARAM_COUNT],
            grad: [0.0; LeNet5::PARAM_COUNT],
            momentum: [0.0; LeNet5::PARAM_COUNT],
            tuned: false,
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// A `static` that hands out its buffers once: zero-initialized, so it lives in `.bss`.
struct Slot {
    taken: AtomicBool,
    buffers: UnsafeCell<Buffers>,
}

// SAFETY: `buffers` is only reached through `take_static_buffers`, which hands out its one
// `&mut` at most once (the atomic swap), so it is never shared between threads.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot {
    taken: AtomicBool::new(false),
    buffers: UnsafeCell::new(Buffers::new()),
};

/// The buffers held in a `static`, the first time; `None` after.
pub fn take_static_buffers() -> Option<&'static mut Buffers> {
    if SLOT.taken.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: the swap above returned `false` once only, so this is the one reference to the
    // buffers ever made; the static lives for the whole program.
    Some(unsafe { &mut *SLOT.buffers.get() })
}

/// The logits of one image with the embedded weights, read in place, working in `bufs`.
pub fn logits(bufs: &mut Buffers, image: &[f32; LeNet5::INPUT_LEN]) -> [f32; LeNet5::OUTPUT_LEN] {
    let mut out = [0.0; LeNet5::OUTPUT_LEN];
    LeNet5::forward_into(
        LeNet5::pretrained_params(),
        LeNet5::pretrained_buffers(),
        image,
        &mut out,
        &mut bufs.ws,
    );
    out
}

/// The digit in `image`, through the struct API (its working memory on the stack).
pub fn classify(image: &[f32; LeNet5::INPUT_LEN]) -> usize {
    LeNet5::pretrained().predict(image)
}

/// One SGD step (with momentum) of fine-tuning on `BATCH` labelled images; returns the loss
/// before the step. The first call starts from the embedded weights.
pub fn fine_tune_step(
    bufs: &mut Buffers,
    images: &[f32; BATCH * LeNet5::INPUT_LEN],
    labels: &[u32; BATCH],
    lr: f32,
    momentum: f32,
) -> f32 {
    if !bufs.tuned {
        bufs.params.copy_from_slice(LeNet5::pretrained_params());
        bufs.tuned = true;
    }
    // LeNet-5 has no BatchNorm and no Dropout: no buffers, and the train state is not read.
    let mut state = cnn::TrainState::default();
    let loss = LeNet5::loss_and_grad_into(
        &bufs.params,
        &mut [],
        &mut state,
        images,
        labels,
        &mut bufs.grad,
        &mut bufs.ws,
    );
    cnn::optim::sgd_step(&mut bufs.params, &bufs.grad, &mut bufs.momentum, lr, momentum);
    loss
}

/// The logits of one image with the fine-tuned parameters.
pub fn tuned_logits(bufs: &mut Buffers, image: &[f32; LeNet5::INPUT_LEN]) -> [f32; LeNet5::OUTPUT_LEN] {
    let mut out = [0.0; LeNet5::OUTPUT_LEN];
    LeNet5::forward_into(&bufs.params, &[], image, &mut out, &mut bufs.ws);
    out
}
