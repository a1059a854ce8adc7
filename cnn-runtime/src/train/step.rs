//! What a process does in a training step besides the optimizer's update: the gradient of the
//! whole batch when it trains alone; as one rank of a distributed run, the gradient of its
//! share, weighted and summed with the other ranks' in one allreduce. And how the ranks start
//! from, and come back to, rank 0's network.

use super::batches::Batch;
use super::distributed::Group;
use crate::{Network, TrainState};

/// The length of the buffer [`gradient`] fills: the parameters' gradient, then the loss, so
/// that one allreduce sums both.
pub(crate) fn gradient_len<N: Network>() -> usize {
    N::PARAM_COUNT + 1
}

/// Fills `grad[..PARAM_COUNT]` with the gradient of the mean loss over a batch of `global`
/// samples, of which `batch` is this process's share, and returns that loss. Alone, that is
/// [`Network::loss_and_grad`] on the whole batch. As one of several ranks, each rank's mean over
/// its share is weighted by the share's size, so that the sum over the ranks, one allreduce
/// of `grad` (gradient and loss together), is the mean over the batch: the same as one process
/// up to the order of the sums, and the same on every rank.
///
/// Each rank draws its own Dropout masks (see [`Group::dropout_seed`]); BatchNorm normalizes
/// with the statistics of the share, as PyTorch's `DistributedDataParallel` does.
pub(crate) fn gradient<N: Network>(
    group: &mut Group,
    net: &mut N,
    batch: &Batch,
    global: usize,
    grad: &mut [f32],
) -> f32 {
    let (params, loss_slot) = grad.split_at_mut(N::PARAM_COUNT);
    if group.size() == 1 {
        return net.loss_and_grad(&batch.inputs, &batch.labels, params);
    }
    let local = batch.labels.len();
    let state = net.train_state();
    let loss = if local == 0 {
        // No sample here (a last batch smaller than the job): nothing to add, but the step
        // counts, as it does on the other ranks.
        params.fill(0.0);
        net.set_train_state(TrainState {
            steps: state.steps + 1,
            ..state
        });
        0.0
    } else {
        net.set_train_state(TrainState {
            seed: group.dropout_seed(state.seed),
            ..state
        });
        let loss = net.loss_and_grad(&batch.inputs, &batch.labels, params);
        net.set_train_state(TrainState {
            seed: state.seed,
            ..net.train_state()
        });
        loss
    };
    let weight = local as f32 / global as f32;
    params.iter_mut().for_each(|g| *g *= weight);
    loss_slot[0] = loss * weight;
    group.allreduce_sum(grad);
    grad[N::PARAM_COUNT]
}

/// Gives every rank rank 0's parameters and buffers, in one broadcast through `scratch`.
///
/// At the start, so that the ranks train one network whatever each was given; after every
/// epoch, before evaluation and checkpoints, for BatchNorm's running statistics, which each
/// rank updates from its own shares (the parameters are equal already, as every rank applies
/// the same summed gradient).
pub(crate) fn adopt_root_state<N: Network>(group: &Group, net: &mut N, scratch: &mut Vec<f32>) {
    if group.size() == 1 {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(net.params());
    scratch.extend_from_slice(net.buffers());
    group.broadcast(scratch);
    let (params, buffers) = scratch.split_at(N::PARAM_COUNT);
    net.params_mut().copy_from_slice(params);
    net.buffers_mut().copy_from_slice(buffers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::toy::Toy;

    /// Alone, the step is `loss_and_grad` on the whole batch, bitwise, and the loss slot is
    /// left alone.
    #[test]
    fn alone_the_gradient_is_the_networks() {
        let batch = Batch {
            inputs: (0..4 * Toy::INPUT_LEN).map(|i| (i % 7) as f32 / 7.0).collect(),
            labels: vec![0, 1, 1, 0],
        };
        let (mut a, mut b) = (Toy::new(2), Toy::new(2));
        let mut grad = vec![0.5; gradient_len::<Toy>()];
        let loss = gradient(&mut Group::single(), &mut a, &batch, 4, &mut grad);
        let mut want = vec![0.0; Toy::PARAM_COUNT];
        assert_eq!(loss, b.loss_and_grad(&batch.inputs, &batch.labels, &mut want));
        assert_eq!(grad[..Toy::PARAM_COUNT], want[..]);
        assert_eq!(grad[Toy::PARAM_COUNT], 0.5);
        assert_eq!(a.train_state(), b.train_state());
    }
}
