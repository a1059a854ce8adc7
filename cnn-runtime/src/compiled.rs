//! What every network `cnn!` generates has in common, written once: the length checks of the
//! public entry points, the split of a batch across threads, and the phases of a training step.
//! A declaration generates only what is its own ([`Compiled`]: its sizes, its inference pass,
//! its training phases) and calls these generic functions.
//!
//! Not a public API: the generated code reaches it through `cnn::__private`.

use crate::TrainState;

/// The parts of a network that the `cnn!` macro generates for each declaration.
pub trait Compiled {
    /// The struct's name, for panic messages.
    const NAME: &'static str;
    const INPUT_LEN: usize;
    const OUTPUT_LEN: usize;
    const PARAM_COUNT: usize;
    const BUFFER_COUNT: usize;
    /// Phases of a training step; the parts of a batch meet between two.
    const PHASES: usize;
    /// `f32`s of the parameters as inference reads them ([`prepare`](Self::prepare)).
    const PREPARED_LEN: usize;

    /// `f32`s of working memory for inference on `batch` samples.
    fn inference_len(batch: usize) -> usize;

    /// `f32`s of working memory for a training step on `batch` samples.
    fn workspace_len(batch: usize) -> usize;

    /// The parameters as inference reads them, into `prepared` (`PREPARED_LEN` long): each
    /// eval-mode BatchNorm folded into the convolution before it, laid out as that
    /// convolution's forward pass reads it (`Conv2d::prepare_batchnorm`).
    fn prepare(params: &[f32], buffers: &[f32], prepared: &mut [f32]);

    /// Logits of `batch` samples into `logits`, in `ws` (`inference_len(batch)` long), with
    /// what [`prepare`](Self::prepare) wrote, or, without it, preparing each layer's share on
    /// the way (in `ws`).
    #[allow(clippy::too_many_arguments)]
    fn infer(
        params: &[f32],
        buffers: &[f32],
        prepared: Option<&[f32]>,
        batch: usize,
        input: &[f32],
        logits: &mut [f32],
        ws: &mut [f32],
    );

    /// Phase `phase` of a training step on `batch` samples, the batch's samples
    /// `first..first + batch`, as their share of a batch of `total`, in `ws`
    /// (`workspace_len(batch)` long); returns their share of the loss in the phase that
    /// computes it, 0 in the others.
    #[allow(clippy::too_many_arguments)]
    fn phase(
        phase: usize,
        params: &[f32],
        key: TrainState,
        first: usize,
        batch: usize,
        input: &[f32],
        labels: &[u32],
        total: usize,
        grad: &mut [f32],
        ws: &mut [f32],
    ) -> f32;

    /// What runs between phase `phase` and the next, over every part's working memory.
    fn between<S: AsRef<[f32]> + AsMut<[f32]>>(phase: usize, batch: usize, slots: &mut [S], buffers: &mut [f32]);
}

/// The batch size of `input`, checked against `output`.
fn batch_of<C: Compiled>(what: &str, input: &[f32], output: &[f32]) -> usize {
    assert!(
        input.len().is_multiple_of(C::INPUT_LEN),
        "{}::{what}: input length {} is not a multiple of INPUT_LEN = {}",
        C::NAME,
        input.len(),
        C::INPUT_LEN
    );
    let batch = input.len() / C::INPUT_LEN;
    assert_eq!(
        output.len(),
        batch * C::OUTPUT_LEN,
        "{}::{what}: output must hold batch * OUTPUT_LEN = {} * {} values, got {}",
        C::NAME,
        batch,
        C::OUTPUT_LEN,
        output.len()
    );
    batch
}

/// The checks of a training step's arguments; returns the batch size.
fn check_training<C: Compiled>(what: &str, input: &[f32], labels: &[u32], grad: &[f32]) -> usize {
    let batch = labels.len();
    assert!(batch > 0, "{}::{what}: the batch is empty (no labels)", C::NAME);
    assert_eq!(
        input.len(),
        batch * C::INPUT_LEN,
        "{}::{what}: input must hold labels.len() * INPUT_LEN = {} * {} values, got {}",
        C::NAME,
        batch,
        C::INPUT_LEN,
        input.len()
    );
    assert_eq!(
        grad.len(),
        C::PARAM_COUNT,
        "{}::{what}: grad must hold PARAM_COUNT = {} values, got {}",
        C::NAME,
        C::PARAM_COUNT,
        grad.len()
    );
    batch
}

fn check_state<C: Compiled>(what: &str, params: &[f32], buffers: &[f32]) {
    assert_eq!(
        params.len(),
        C::PARAM_COUNT,
        "{}::{what}: params must hold PARAM_COUNT = {} values, got {}",
        C::NAME,
        C::PARAM_COUNT,
        params.len()
    );
    assert_eq!(
        buffers.len(),
        C::BUFFER_COUNT,
        "{}::{what}: buffers must hold BUFFER_COUNT = {} values, got {}",
        C::NAME,
        C::BUFFER_COUNT,
        buffers.len()
    );
}

fn check_ws(what: &str, name: &str, len_fn: &str, batch: usize, need: usize, got: usize) {
    assert!(
        got >= need,
        "{name}::{what}: ws must hold {len_fn}({batch}) = {need} values, got {got}"
    );
}

/// The generated `forward_into`: inference in the caller's memory, on the calling thread.
///
/// # Panics
///
/// If a length does not fit; the message gives expected and actual lengths.
pub fn forward_into<C: Compiled>(params: &[f32], buffers: &[f32], input: &[f32], output: &mut [f32], ws: &mut [f32]) {
    check_state::<C>("forward_into", params, buffers);
    let batch = batch_of::<C>("forward_into", input, output);
    let need = C::inference_len(batch);
    check_ws("forward_into", C::NAME, "inference_len", batch, need, ws.len());
    C::infer(params, buffers, None, batch, input, output, &mut ws[..need]);
}

/// The generated `loss_and_grad_into`: a training step in the caller's memory, on the calling
/// thread, counted in `state`.
///
/// # Panics
///
/// If a length does not fit, the batch is empty, or a label is not below `OUTPUT_LEN`.
#[allow(clippy::too_many_arguments)]
pub fn loss_and_grad_into<C: Compiled>(
    params: &[f32],
    buffers: &mut [f32],
    state: &mut TrainState,
    input: &[f32],
    labels: &[u32],
    grad: &mut [f32],
    ws: &mut [f32],
) -> f32 {
    let batch = check_training::<C>("loss_and_grad_into", input, labels, grad);
    check_state::<C>("loss_and_grad_into", params, buffers);
    let need = C::workspace_len(batch);
    check_ws("loss_and_grad_into", C::NAME, "workspace_len", batch, need, ws.len());
    let key = *state;
    state.steps += 1;
    train::<C>(params, buffers, key, input, labels, grad, &mut ws[..need])
}

/// A training step on one thread: every phase in turn, in `ws` (`workspace_len(batch)` long).
fn train<C: Compiled>(
    params: &[f32],
    buffers: &mut [f32],
    key: TrainState,
    input: &[f32],
    labels: &[u32],
    grad: &mut [f32],
    ws: &mut [f32],
) -> f32 {
    let batch = labels.len();
    let mut loss = 0.0;
    for phase in 0..C::PHASES {
        loss += C::phase(phase, params, key, 0, batch, input, labels, batch, grad, ws);
        if phase + 1 < C::PHASES {
            C::between(phase, batch, &mut [&mut *ws], buffers);
        }
    }
    loss
}

/// The index of the largest logit (the first, on a tie).
///
/// ```
/// assert_eq!(cnn_runtime::compiled::argmax(&[0.5, 2.0, 2.0, -1.0]), 1);
/// ```
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &z) in logits.iter().enumerate() {
        if z > logits[best] {
            best = i;
        }
    }
    best
}

#[cfg(feature = "std")]
pub use threaded::{forward_batch, loss_and_grad, prepared};

#[cfg(feature = "std")]
mod threaded {
    use super::*;
    use crate::workspace::{chunk_range, chunks_for, Workspace};

    /// Fewer samples than this per thread and a batch is not split.
    const MIN_ROWS_PER_THREAD: usize = 4;

    /// Samples a thread infers at once: a group's activations stay in the core's cache from
    /// layer to layer (ResNet-8's first layers hold 256 KB for 4 samples, 4 MB for 64), and a
    /// layer's setup is shared by the group. ResNet-8's batch 64 in groups of 4, 1 and 64
    /// (`bench --net resnet8 --only b64`, 4 interleaved rounds, medians, AMD EPYC Zen 4):
    /// 4,064 / 3,699 / 3,874 img/s at one thread (CPU time), 6,994 / 7,017 / 6,245 at two.
    /// Each sample's numbers are the same in any group.
    const GROUP: usize = 4;

    /// `C::infer` on the samples of `input` in groups of [`GROUP`], each in the start of `ws`
    /// (at least `C::inference_len` of the first group's size long).
    fn infer_in_groups<C: Compiled>(
        params: &[f32],
        buffers: &[f32],
        prepared: Option<&[f32]>,
        input: &[f32],
        output: &mut [f32],
        ws: &mut [f32],
    ) {
        let groups = input
            .chunks(GROUP * C::INPUT_LEN)
            .zip(output.chunks_mut(GROUP * C::OUTPUT_LEN));
        for (input, output) in groups {
            let k = input.len() / C::INPUT_LEN;
            C::infer(
                params,
                buffers,
                prepared,
                k,
                input,
                output,
                &mut ws[..C::inference_len(k)],
            );
        }
    }

    /// The network's parameters as inference reads them ([`Compiled::prepare`]), made by the
    /// first call and kept in its workspace (until its parameters or buffers change); `None`
    /// when there is nothing to prepare.
    pub fn prepared<'w, C: Compiled>(workspace: &'w Workspace, params: &[f32], buffers: &[f32]) -> Option<&'w [f32]> {
        (C::PREPARED_LEN > 0).then(|| workspace.prepared(C::PREPARED_LEN, |p| C::prepare(params, buffers, p)))
    }

    /// The generated `Network::forward_batch`: inference, a batch split across threads in
    /// the network's workspace, or, too small to split, each sample in its large layers
    /// (`split`).
    ///
    /// # Panics
    ///
    /// If a length does not fit; the message gives expected and actual lengths.
    pub fn forward_batch<C: Compiled>(
        workspace: &Workspace,
        params: &[f32],
        buffers: &[f32],
        input: &[f32],
        output: &mut [f32],
    ) {
        let batch = batch_of::<C>("forward_batch", input, output);
        let chunks = chunks_for(batch, MIN_ROWS_PER_THREAD);
        let prepared = prepared::<C>(workspace, params, buffers);
        if chunks == 1 {
            let mut infer = || {
                workspace.with(C::inference_len(GROUP.min(batch)), |ws| {
                    infer_in_groups::<C>(params, buffers, prepared, input, output, ws)
                })
            };
            // Too few samples to split the batch: the large layers split each sample instead,
            // where there is more than one thread and that is found faster.
            if crate::parallel::threads() > 1 {
                return workspace.split().run(batch, infer);
            }
            return infer();
        }
        let (inputs, outputs) = (C::INPUT_LEN, C::OUTPUT_LEN);
        workspace.run(
            batch,
            chunks,
            |n| n * outputs + C::inference_len(GROUP.min(n)),
            |_, rows, slot| {
                let n = rows.len();
                let (logits, ws) = slot.split_at_mut(n * outputs);
                let input = &input[rows.start * inputs..rows.end * inputs];
                infer_in_groups::<C>(params, buffers, prepared, input, logits, ws);
                0.0
            },
            |slots, _| {
                for (i, slot) in slots.iter().enumerate() {
                    let rows = chunk_range(batch, chunks, i);
                    output[rows.start * outputs..rows.end * outputs].copy_from_slice(&slot[..rows.len() * outputs]);
                }
            },
        )
    }

    /// The generated `Network::loss_and_grad`: a training step, a batch split across threads
    /// in the network's workspace, counted in `state`.
    ///
    /// Each part of the batch runs on its own thread, in its own slot (working memory, then
    /// its share of the gradient); the phases meet where BatchNorm needs the whole batch's
    /// statistics. The shares are then added in part order, so a thread count always gives
    /// the same bits.
    ///
    /// # Panics
    ///
    /// If a length does not fit, the batch is empty, or a label is not below `OUTPUT_LEN`.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad<C: Compiled>(
        workspace: &Workspace,
        params: &[f32],
        buffers: &mut [f32],
        state: &mut TrainState,
        input: &[f32],
        labels: &[u32],
        grad: &mut [f32],
    ) -> f32 {
        let batch = check_training::<C>("loss_and_grad", input, labels, grad);
        let chunks = chunks_for(batch, MIN_ROWS_PER_THREAD);
        let key = *state;
        state.steps += 1;
        if chunks == 1 {
            return workspace.with(C::workspace_len(batch), |ws| {
                train::<C>(params, buffers, key, input, labels, grad, ws)
            });
        }
        let inputs = C::INPUT_LEN;
        workspace.phases(
            batch,
            chunks,
            |n| C::workspace_len(n) + C::PARAM_COUNT,
            C::PHASES,
            |phase, _, rows, slot| {
                let (ws, g) = slot.split_at_mut(C::workspace_len(rows.len()));
                let x = &input[rows.start * inputs..rows.end * inputs];
                C::phase(
                    phase,
                    params,
                    key,
                    rows.start,
                    rows.len(),
                    x,
                    &labels[rows],
                    batch,
                    g,
                    ws,
                )
            },
            |phase, slots| C::between(phase, batch, slots, buffers),
            |slots, loss| {
                for (i, slot) in slots.iter().enumerate() {
                    let at = C::workspace_len(chunk_range(batch, chunks, i).len());
                    let part = &slot[at..at + C::PARAM_COUNT];
                    if i == 0 {
                        grad.copy_from_slice(part);
                    } else {
                        grad.iter_mut().zip(part).for_each(|(g, s)| *g += s);
                    }
                }
                loss
            },
        )
    }
}
