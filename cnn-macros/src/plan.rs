//! Between checking and expanding: the ops the generated code calls, with the layout of every
//! image tensor, and the memory plan. Knows no tokens and reports no errors.
//!
//! Images enter sample-major (`[batch, C, H, W]`); a convolution's output is channel-major
//! (`[C, batch, H, W]`); pools and activations keep the layout they receive. Before a dense
//! layer, and at the end, a channel-major image is transposed back to sample-major. A ReLU right
//! after a stride-1 convolution becomes part of it.

use crate::check::{Model, OpKind};
use cnn_runtime::activation::Activation;
use cnn_runtime::conv::Conv2d;
use cnn_runtime::dense::Dense;
use cnn_runtime::layout::Layout;
use cnn_runtime::pool::Pool2d;
use std::ops::Range;

#[derive(Clone, Debug)]
pub enum Step {
    /// `layout`: the layout of the convolution's input; `relu`: a ReLU that followed it,
    /// applied by the convolution itself (only stride-1 ones, `Conv2d::direct`).
    Conv {
        geom: Conv2d,
        layout: Layout,
        params: Range<usize>,
        relu: bool,
    },
    Pool(Pool2d),
    Dense {
        geom: Dense,
        params: Range<usize>,
    },
    Act(Activation),
    /// Channel-major `[C, batch, HW]` to sample-major `[batch, C, HW]`.
    ToSampleMajor {
        channels: usize,
        plane: usize,
    },
}

#[derive(Clone, Debug)]
pub struct PlannedOp {
    pub step: Step,
    /// Elements of one sample flowing in and out.
    pub in_len: usize,
    pub out_len: usize,
}

/// All lengths are per sample; a batch of `n` needs `n` times each.
#[derive(Clone, Debug)]
pub struct Plan {
    pub ops: Vec<PlannedOp>,
    /// Every op's output.
    pub activations_len: usize,
    /// Each of the two buffers the backward pass passes gradients in.
    pub gradient_len: usize,
    /// The convolutions' scratch (unfolded samples): independent of the batch size.
    pub scratch_len: usize,
}

pub fn plan(model: &Model) -> Plan {
    let mut ops = Vec::new();
    let mut layout = Layout::SampleMajor;
    // The current image's channels and plane size, while the data is an image.
    let mut image: Option<(usize, usize)> = model.input.image().map(|[c, h, w]| (c, h * w));
    let mut scratch_len = 0;
    let to_sample_major = |(channels, plane): (usize, usize)| PlannedOp {
        step: Step::ToSampleMajor { channels, plane },
        in_len: channels * plane,
        out_len: channels * plane,
    };
    for op in &model.ops {
        let step = match &op.kind {
            OpKind::Conv(g) => {
                scratch_len = scratch_len.max(g.scratch_len());
                let step = Step::Conv {
                    geom: *g,
                    layout,
                    params: op.params.clone(),
                    relu: false,
                };
                layout = Layout::ChannelMajor;
                image = Some((g.oc, g.oh * g.ow));
                step
            }
            OpKind::Pool(g) => {
                image = Some((g.c, g.oh * g.ow));
                Step::Pool(*g)
            }
            OpKind::Act(a) => {
                // A ReLU right after a stride-1 convolution is done by the convolution, on each
                // sample's output while it is in cache: one pass over the activations fewer.
                if let (
                    Activation::Relu,
                    Some(PlannedOp {
                        step: Step::Conv { geom, relu, .. },
                        ..
                    }),
                ) = (a, ops.last_mut())
                {
                    if geom.direct() && !*relu {
                        *relu = true;
                        continue;
                    }
                }
                Step::Act(*a)
            }
            OpKind::Dense(g) => {
                if let (Layout::ChannelMajor, Some(img)) = (layout, image) {
                    ops.push(to_sample_major(img));
                }
                layout = Layout::SampleMajor;
                image = None;
                Step::Dense {
                    geom: *g,
                    params: op.params.clone(),
                }
            }
        };
        ops.push(PlannedOp {
            step,
            in_len: op.in_len,
            out_len: op.out_len,
        });
    }
    if let (Layout::ChannelMajor, Some(img)) = (layout, image) {
        ops.push(to_sample_major(img));
    }
    Plan {
        activations_len: ops.iter().map(|o| o.out_len).sum(),
        gradient_len: ops.iter().map(|o| o.in_len.max(o.out_len)).max().unwrap_or(0),
        ops,
        scratch_len,
    }
}
