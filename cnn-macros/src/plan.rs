//! Between checking and expanding: the steps the generated code runs, with the layout of every
//! image tensor, the memory plan, and the backward pass's use of gradient buffers. Knows no
//! tokens and reports no errors.
//!
//! Images enter sample-major (`[batch, C, H, W]`); a convolution's output is channel-major
//! (`[C, batch, H, W]`); pools, activations, BatchNorm2d, Dropout on images and residual sums
//! keep the layout they receive. Where an op needs the other layout (dense layers and the
//! vector kinds need sample-major, grouped convolutions channel-major, a sum both inputs in
//! one), a transpose step is inserted, once per value; at the end the logits are sample-major.
//! A ReLU right after a stride-1 convolution, a BatchNorm or a residual sum, its only reader,
//! becomes part of it.
//!
//! Every step's output has its own region of the activations ([`Plan::regs`]). The backward
//! pass walks the steps in reverse; the gradient of a region lives in one of a few buffers
//! ([`Plan::gradient_buffers`]) from the first step that produces it until the step that made
//! the region has used it. A region read by two steps (a residual block's input) gets the sum:
//! the second contribution is written to a free buffer and added in.

use crate::ir::{Model, Op, ValueId, INPUT};
use crate::kinds::{self, Needs};
use cnn_runtime::activation::Activation;
use cnn_runtime::layout::Layout;
use std::collections::HashMap;
use std::ops::Range;

/// A region of the activations: the output of a step; region 0 is the network's input.
pub type Reg = usize;

#[derive(Clone, Debug)]
pub enum Kernel {
    Op(Op),
    /// Channel-major `[C, batch, HW]` to sample-major `[batch, C, HW]`.
    ToSampleMajor {
        channels: usize,
        plane: usize,
    },
    /// Sample-major to channel-major.
    ToChannelMajor {
        channels: usize,
        plane: usize,
    },
}

#[derive(Clone, Debug)]
pub struct Step {
    pub kernel: Kernel,
    /// The layout of the step's inputs.
    pub layout: Layout,
    /// A ReLU that followed the step, applied by the step itself: a stride-1 convolution's
    /// (`Conv2d::direct`), a BatchNorm's (`BatchNorm::with_relu`) or a residual sum's
    /// (`residual::add_relu`).
    pub relu: bool,
    pub inputs: Vec<Reg>,
    pub output: Reg,
    /// Where in the saved region a training forward pass keeps what its backward pass reads.
    pub saved: Range<usize>,
    /// The graph node this step computes (`None` for a transpose the plan added).
    pub node: Option<usize>,
}

/// One step of the backward pass.
#[derive(Clone, Debug)]
pub struct BackStep {
    pub step: usize,
    /// The gradient buffer holding d loss / d output.
    pub dy: usize,
    /// Per input, the buffer to write its gradient into (`None`: no gradient wanted, or, for a
    /// sum, handed `dy` itself).
    pub dx: Vec<Option<usize>>,
    /// After the step: `(into, from)`, add buffer `from` to buffer `into`.
    pub add: Vec<(usize, usize)>,
}

/// All lengths are per sample; a batch of `n` needs `n` times each.
#[derive(Clone, Debug)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Each region's length; region 0 is the input.
    pub regs: Vec<usize>,
    /// The logits' region.
    pub output: Reg,
    /// Every region but the input.
    pub activations_len: usize,
    /// Each of the gradient buffers.
    pub gradient_len: usize,
    pub gradient_buffers: usize,
    /// The buffer the loss writes d loss / d logits into.
    pub loss_buffer: usize,
    pub backward: Vec<BackStep>,
    /// The largest scratch of a step: independent of the batch size.
    pub scratch_len: usize,
    /// What training forward passes keep for the backward pass: independent of the batch size.
    pub saved_len: usize,
    /// The partial sums the parts of a batch exchange: independent of the batch size.
    pub partial_len: usize,
}

impl Plan {
    /// The working memory of a training step on one sample, as the generated
    /// `workspace_len(1)` computes it (partial sums, saved statistics, activations, gradient
    /// buffers, scratch), with the activations and the largest gradient and scratch of the
    /// steps up to `upto` only: the whole step's at `upto == steps.len()`. `None` past `usize`.
    pub fn workspace_upto(&self, upto: usize) -> Option<usize> {
        let steps = &self.steps[..upto];
        let acts = steps
            .iter()
            .try_fold(0usize, |sum, s| sum.checked_add(self.regs[s.output]))?;
        let widest = steps.iter().map(|s| self.regs[s.output]).max().unwrap_or(0);
        let scratch = steps.iter().map(|s| step_scratch(&s.kernel)).max().unwrap_or(0);
        self.partial_len
            .checked_add(self.saved_len)?
            .checked_add(acts)?
            .checked_add(self.gradient_buffers.checked_mul(widest)?)?
            .checked_add(scratch)
    }

    /// The first step after which a training step's working memory on one sample is more than
    /// `limit` floats, if any: the stage a declaration too large is reported on.
    pub fn first_step_over(&self, limit: usize) -> Option<usize> {
        (1..=self.steps.len())
            .find(|&n| self.workspace_upto(n).is_none_or(|w| w > limit))
            .map(|n| n - 1)
    }
}

/// At inference, a convolution and the eval-mode BatchNorm that alone reads its output, then
/// the residual sum that may alone read the BatchNorm's, and a ReLU that may alone read what
/// came last (or that the BatchNorm applies itself), run as one call: the BatchNorm folded into
/// the convolution's weight and bias, the sum and the ReLU applied as the output is written.
#[derive(Clone, Debug)]
pub struct Folded {
    /// The BatchNorm's step.
    pub bn: usize,
    /// The sum's step and the region of its other input (the shortcut), if one follows.
    pub add: Option<(usize, Reg)>,
    /// Whether a ReLU comes last (the last step's own).
    pub relu: bool,
}

impl Folded {
    /// The last step folded in: its output is the call's.
    pub fn last(&self) -> usize {
        self.add.map_or(self.bn, |(step, _)| step)
    }
}

impl Plan {
    /// The steps that fold into the convolution of step `conv` at inference, if any.
    pub fn folded(&self, conv: usize) -> Option<Folded> {
        let readers = |reg: Reg| {
            self.steps.iter().flat_map(|s| &s.inputs).filter(|&&r| r == reg).count() + usize::from(reg == self.output)
        };
        let only_reader = |step: usize, of: usize| {
            self.steps
                .get(step)
                .is_some_and(|s| s.inputs == [self.steps[of].output] && readers(self.steps[of].output) == 1)
        };
        let step = &self.steps[conv];
        let single = matches!(&step.kernel, Kernel::Op(Op::Conv { groups: 1, .. })) && !step.relu;
        let bn = conv + 1;
        if !single || !only_reader(bn, conv) || !matches!(self.steps[bn].kernel, Kernel::Op(Op::BatchNorm { .. })) {
            return None;
        }
        let out = self.steps[bn].output;
        // A BatchNorm with its ReLU has nothing after it to fold; otherwise a sum may follow.
        let add = self
            .steps
            .get(bn + 1)
            .filter(|s| !self.steps[bn].relu && matches!(s.kernel, Kernel::Op(Op::Add)) && readers(out) == 1)
            .and_then(|s| match s.inputs[..] {
                [a, b] if a == out && b != out => Some((bn + 1, b)),
                [a, b] if b == out && a != out => Some((bn + 1, a)),
                _ => None,
            });
        let folded = Folded { bn, add, relu: false };
        // A ReLU alone after the BatchNorm or the sum is that step's own (`fuse_relu`).
        Some(Folded {
            relu: self.steps[folded.last()].relu,
            ..folded
        })
    }
}

struct Region {
    len: usize,
    layout: Layout,
    /// Channels and plane size, while the data is an image.
    image: Option<(usize, usize)>,
}

struct Planner<'m> {
    model: &'m Model,
    steps: Vec<Step>,
    regions: Vec<Region>,
    /// Transposes made so far: (region, to channel-major) to the transposed region.
    converted: HashMap<(Reg, bool), Reg>,
    saved_len: usize,
}

pub fn plan(model: &Model) -> Plan {
    let mut p = Planner {
        model,
        steps: Vec::new(),
        regions: vec![Region {
            len: model.input.len(),
            layout: Layout::SampleMajor,
            image: model.input.image().map(|[c, h, w]| (c, h * w)),
        }],
        converted: HashMap::new(),
        saved_len: 0,
    };
    let mut readers = vec![0usize; model.values.len()];
    for node in &model.nodes {
        for &v in &node.inputs {
            readers[v] += 1;
        }
    }
    readers[model.output] += 1;
    let mut reg_of: HashMap<ValueId, Reg> = HashMap::from([(INPUT, 0)]);
    for (index, node) in model.nodes.iter().enumerate() {
        let inputs: Vec<Reg> = node.inputs.iter().map(|v| reg_of[v]).collect();
        if let Some(reg) = p.fuse_relu(&node.op, node.inputs[0], &inputs, &readers) {
            reg_of.insert(node.output, reg);
            continue;
        }
        let reg = p.op(node.op.clone(), &inputs, node.output, index);
        reg_of.insert(node.output, reg);
    }
    let mut output = reg_of[&model.output];
    if p.regions[output].layout == Layout::ChannelMajor {
        output = p.convert(output, Layout::SampleMajor);
    }
    let regs: Vec<usize> = p.regions.iter().map(|r| r.len).collect();
    let (backward, gradient_buffers, loss_buffer) = backward(&p.steps, output);
    Plan {
        activations_len: regs[1..].iter().sum(),
        gradient_len: regs[1..].iter().copied().max().unwrap_or(0),
        gradient_buffers,
        loss_buffer,
        backward,
        scratch_len: p.steps.iter().map(|s| step_scratch(&s.kernel)).max().unwrap_or(0),
        saved_len: p.saved_len,
        partial_len: p
            .steps
            .iter()
            .map(|s| match &s.kernel {
                Kernel::Op(op) => kinds::partial_len(op),
                _ => 0,
            })
            .max()
            .unwrap_or(0),
        steps: p.steps,
        regs,
        output,
    }
}

fn step_scratch(kernel: &Kernel) -> usize {
    match kernel {
        Kernel::Op(op) => kinds::scratch_len(op),
        _ => 0,
    }
}

impl Planner<'_> {
    /// A ReLU right after a stride-1 convolution, a BatchNorm or a residual sum whose output
    /// nothing else reads is done by that step, on its output as it writes it (and its backward
    /// pass masks the gradient): a pass over the activations fewer. Returns the region the
    /// ReLU's output is then in.
    fn fuse_relu(&mut self, op: &Op, input: ValueId, regs: &[Reg], readers: &[usize]) -> Option<Reg> {
        if !matches!(op, Op::Act(Activation::Relu)) || readers[input] != 1 {
            return None;
        }
        let last = self.steps.last_mut()?;
        let fuses = match &last.kernel {
            Kernel::Op(Op::Conv { geom, .. }) => geom.direct(),
            Kernel::Op(Op::BatchNorm { .. } | Op::Add) => true,
            _ => false,
        };
        (last.output == regs[0] && fuses && !last.relu).then(|| {
            last.relu = true;
            last.output
        })
    }

    /// Adds a step for `op` on `inputs`, transposing them first where it needs another layout.
    fn op(&mut self, op: Op, inputs: &[Reg], value: ValueId, node: usize) -> Reg {
        let needs = kinds::needs(&op);
        let want = match needs {
            Needs::Any | Needs::AnyToChannelMajor => self.regions[inputs[0]].layout,
            Needs::ChannelMajor => Layout::ChannelMajor,
            Needs::SampleMajor => Layout::SampleMajor,
            // A sum of two layouts is taken channel-major, a convolution's.
            Needs::Same if inputs.iter().any(|&r| self.regions[r].layout == Layout::ChannelMajor) => {
                Layout::ChannelMajor
            }
            Needs::Same => Layout::SampleMajor,
        };
        let inputs: Vec<Reg> = inputs.iter().map(|&r| self.convert(r, want)).collect();
        let declared = self.model.values[value].image().map(|[c, h, w]| (c, h * w));
        let (layout, image) = match needs {
            // An op on a flattened image keeps the image's structure (its layout still says
            // where each element is).
            Needs::Any | Needs::Same => (want, declared.or(self.regions[inputs[0]].image)),
            Needs::AnyToChannelMajor | Needs::ChannelMajor | Needs::SampleMajor => {
                let layout = if needs == Needs::SampleMajor {
                    Layout::SampleMajor
                } else {
                    Layout::ChannelMajor
                };
                (layout, declared)
            }
        };
        let saved = self.saved_len..self.saved_len + kinds::saved_len(&op);
        self.saved_len = saved.end;
        let len = self.model.values[value].len();
        let reg = self.push(Kernel::Op(op), want, inputs, len, layout, image, saved);
        if let Some(step) = self.steps.last_mut() {
            step.node = Some(node);
        }
        reg
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kernel: Kernel,
        layout: Layout,
        inputs: Vec<Reg>,
        len: usize,
        out_layout: Layout,
        image: Option<(usize, usize)>,
        saved: Range<usize>,
    ) -> Reg {
        let output = self.regions.len();
        self.regions.push(Region {
            len,
            layout: out_layout,
            image,
        });
        self.steps.push(Step {
            kernel,
            layout,
            relu: false,
            inputs,
            output,
            saved,
            node: None,
        });
        output
    }

    /// The region in `layout`: itself, or its transpose (made once).
    fn convert(&mut self, reg: Reg, layout: Layout) -> Reg {
        let region = &self.regions[reg];
        if region.layout == layout {
            return reg;
        }
        if let Some(&done) = self.converted.get(&(reg, layout == Layout::ChannelMajor)) {
            return done;
        }
        // Only images are ever channel-major, so a region to transpose has its structure.
        let (channels, plane) = region.image.unwrap_or((region.len, 1));
        let kernel = match layout {
            Layout::SampleMajor => Kernel::ToSampleMajor { channels, plane },
            Layout::ChannelMajor => Kernel::ToChannelMajor { channels, plane },
        };
        let (len, image, from) = (region.len, region.image, region.layout);
        let out = self.push(kernel, from, vec![reg], len, layout, image, 0..0);
        self.converted.insert((reg, layout == Layout::ChannelMajor), out);
        out
    }
}

/// The backward pass: which gradient buffer each step reads and writes. Returns the steps, the
/// number of buffers, and the buffer of the logits' gradient.
fn backward(steps: &[Step], output: Reg) -> (Vec<BackStep>, usize, usize) {
    let regs = steps.iter().map(|s| s.output + 1).max().unwrap_or(1);
    let mut slot_of: Vec<Option<usize>> = vec![None; regs];
    let mut pool = Pool::default();
    let loss_buffer = pool.take();
    slot_of[output] = Some(loss_buffer);
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate().rev() {
        // A step whose output no later step reads is not on the way to the loss.
        let Some(dy) = slot_of[step.output] else { continue };
        let is_sum = matches!(step.kernel, Kernel::Op(Op::Add));
        let mut dy_given = false;
        let mut dx = Vec::new();
        let mut add = Vec::new();
        let mut temps = Vec::new();
        for &r in &step.inputs {
            if r == 0 {
                dx.push(None);
                continue;
            }
            match slot_of[r] {
                // A sum's gradient is its output's, as it is: the first input takes the buffer.
                None if is_sum && !dy_given => {
                    slot_of[r] = Some(dy);
                    dy_given = true;
                    dx.push(None);
                }
                None => {
                    let s = pool.take();
                    slot_of[r] = Some(s);
                    dx.push(Some(s));
                }
                Some(into) if is_sum => {
                    add.push((into, dy));
                    dx.push(None);
                }
                // Read by a step handled before: this step's share is added to it.
                Some(into) => {
                    let t = pool.take();
                    temps.push(t);
                    add.push((into, t));
                    dx.push(Some(t));
                }
            }
        }
        out.push(BackStep { step: i, dy, dx, add });
        if !dy_given {
            pool.give(dy);
        }
        temps.into_iter().for_each(|t| pool.give(t));
    }
    (out, pool.count, loss_buffer)
}

/// Gradient buffers, taken and given back.
#[derive(Default)]
struct Pool {
    free: Vec<usize>,
    count: usize,
}

impl Pool {
    fn take(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.count += 1;
            self.count - 1
        })
    }

    fn give(&mut self, slot: usize) {
        self.free.push(slot);
    }
}
