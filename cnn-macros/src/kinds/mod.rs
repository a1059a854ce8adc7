//! The layer kinds, one module each, registered in [`KINDS`].
//!
//! A kind's module holds everything the macro knows of it: its arguments, its shape rule and
//! cost (`check`, called by the checker's walk over the declaration), its summary text, the
//! layout it needs (`layout`, for the plan) and the code of its forward and backward passes
//! (`forward`, `backward`, for `expand`). Adding a kind means a module, a line in [`KINDS`], an
//! [`Op`] variant if it computes something new, and its arms in the dispatch functions below.

use crate::check::{Checker, Cost};
use crate::ir::{Op, Shape};
use crate::parse::Layer;
use proc_macro2::TokenStream;

mod activation;
mod add;
mod batchnorm;
mod conv;
mod dense;
mod dropout;
mod flatten;
mod pool;

/// What `check` made of a layer.
pub enum Built {
    /// No kernel call: the same value under another shape (`Flatten`), or a layer whose
    /// arguments had errors but whose output shape is known.
    Same(Shape),
    /// An op giving a new value of shape `out`.
    Op { op: Op, out: Shape, cost: Cost },
}

/// Checks a layer against the shape flowing in (`None` if unknown after an earlier error):
/// returns its summary text and what it builds, reporting every problem to the checker.
pub type CheckFn = fn(&mut Checker, &str, &Layer, Option<Shape>) -> (String, Option<Built>);

/// A layer kind as the declaration names it.
pub struct Kind {
    pub name: &'static str,
    /// May follow `->` after another stage.
    pub activation: bool,
    pub check: CheckFn,
}

/// Every layer kind, in the order error messages list them.
pub const KINDS: &[Kind] = &[
    conv::CONV2D,
    pool::MAX_POOL2D,
    pool::AVG_POOL2D,
    flatten::FLATTEN,
    dense::DENSE,
    activation::RELU,
    activation::SIGMOID,
    activation::TANH,
    activation::LEAKY_RELU,
    batchnorm::BATCH_NORM2D,
    batchnorm::BATCH_NORM1D,
    dropout::DROPOUT,
    pool::GLOBAL_AVG_POOL2D,
];

/// The groups of stages (not layers: they hold stages in braces).
pub const BLOCKS: &[&str] = &["Sequential", "Residual", "Shortcut"];

pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// The layout an op needs its inputs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Any layout; the output keeps it.
    Any,
    /// Any layout; the output is channel-major (a convolution's).
    AnyToChannelMajor,
    /// Channel-major, and so is the output (a grouped convolution).
    ChannelMajor,
    /// Sample-major, and so is the output (dense layers, BatchNorm1d).
    SampleMajor,
    /// All inputs in one layout (whichever), kept by the output (a residual sum).
    Same,
}

pub fn needs(op: &Op) -> Needs {
    match op {
        Op::Conv { groups, .. } => conv::needs(*groups),
        Op::Dense { .. } => Needs::SampleMajor,
        Op::BatchNorm { geom, .. } => batchnorm::needs(geom),
        Op::Dropout { geom, .. } => dropout::needs(geom),
        Op::Pool(_) | Op::Act(_) => Needs::Any,
        Op::Add => Needs::Same,
    }
}

/// `f32`s an op keeps from its training forward pass for its backward pass, whatever the batch
/// size (BatchNorm's batch statistics).
pub fn saved_len(op: &Op) -> usize {
    match op {
        Op::BatchNorm { geom, .. } => geom.saved_len(),
        _ => 0,
    }
}

/// Scratch an op needs, whatever the batch size.
pub fn scratch_len(op: &Op) -> usize {
    match op {
        Op::Conv { geom, groups, .. } => conv::scratch_len(geom, *groups),
        _ => 0,
    }
}

/// The expressions one op's generated call reads and writes. In scope where it runs:
/// `params`, `buffers`, `batch`, `first` (the batch index of the chunk's first sample), `key`
/// (Dropout's masks), `scratch`, and in the backward pass `grad`.
pub struct Call {
    /// The input slices (`&[f32]`), one per input of the op.
    pub x: Vec<TokenStream>,
    /// Forward: the output (`&mut [f32]`); backward: the forward output (`&[f32]`).
    pub y: TokenStream,
    /// The layout of the inputs, a `Layout` expression.
    pub layout: TokenStream,
    /// A ReLU the op applies to its own output (a convolution's or a BatchNorm's).
    pub relu: bool,
    /// Where a training forward pass keeps what its backward pass reads (a range of `saved`,
    /// at the same place in every part's slot after `Self::PARTIAL_LEN` floats).
    pub saved: std::ops::Range<usize>,
    /// Backward only: the output gradient (`&[f32]`), the same as `&mut [f32]` (a step with
    /// its ReLU may mask it in place), and per input the gradient to write (`&mut [f32]`),
    /// `None` for the network's input.
    pub dy: TokenStream,
    pub dy_mut: TokenStream,
    pub dx: Vec<Option<TokenStream>>,
}

/// A piece of a training step's code: code that runs on each part of the batch (its own
/// thread), or a barrier with the code that then runs once over every part's slot (`between`:
/// BatchNorm's statistics of the whole batch) before the next piece.
pub enum Piece {
    Code(TokenStream),
    Barrier(TokenStream),
}

/// The forward pass of an op in a training step.
pub fn forward_train(op: &Op, call: &Call) -> Vec<Piece> {
    match op {
        Op::BatchNorm { geom, params, buffers } => batchnorm::forward_train(geom, params, buffers, call),
        _ => vec![Piece::Code(forward(op, call, true))],
    }
}

/// The backward pass of an op in a training step.
pub fn backward_train(op: &Op, call: &Call) -> Vec<Piece> {
    match op {
        Op::BatchNorm { geom, params, .. } => batchnorm::backward_train(geom, params, call),
        _ => vec![Piece::Code(backward(op, call))],
    }
}

/// `f32`s an op's parts exchange at a barrier (each part's partial sums).
pub fn partial_len(op: &Op) -> usize {
    match op {
        Op::BatchNorm { geom, .. } => geom.partial_len(),
        _ => 0,
    }
}

/// The forward call of an op, in training or inference.
pub fn forward(op: &Op, call: &Call, train: bool) -> TokenStream {
    match op {
        Op::Conv { geom, groups, params } => conv::forward(geom, *groups, params, call),
        Op::Pool(g) => pool::forward(g, call),
        Op::Dense { geom, params } => dense::forward(geom, params, call),
        Op::Act(a) => activation::forward(a, call),
        Op::BatchNorm { geom, params, buffers } => batchnorm::forward(geom, params, buffers, call),
        Op::Dropout { geom, stage } => dropout::forward(geom, *stage, call, train),
        Op::Add => add::forward(call),
    }
}

/// What a folded convolution applies after its BatchNorm (see `plan::Folded`).
pub struct Then {
    /// The shortcut to add (a `&[f32]` expression), if any.
    pub residual: Option<TokenStream>,
    /// Whether a ReLU comes last.
    pub relu: bool,
}

/// A convolution with the eval-mode BatchNorm after it folded in (see `plan::Folded`), its
/// prepared parameters at `at` of `prepared`: its inference call (`forward`, what `then` says
/// applied after it) and the code that prepares its parameters (`prepare`).
pub fn folded(conv: &Op, bn: &Op, at: usize) -> conv::Folded {
    match (conv, bn) {
        (
            Op::Conv { geom, params, .. },
            Op::BatchNorm {
                geom: bn,
                params: bn_params,
                buffers,
            },
        ) => conv::Folded::new(geom, params, bn, bn_params, buffers, at),
        _ => unreachable!("the plan folds only a BatchNorm into a convolution"),
    }
}

/// An op whose inference reads parameters prepared once (`Compiled::prepare`), at `at` of
/// `prepared`: a convolution alone whose weight the forward pass lays out on every call
/// (`Conv2d::prepares`); `None` for any other.
pub fn prepared(op: &Op, at: usize) -> Option<conv::Prepared> {
    match op {
        Op::Conv {
            geom,
            groups: 1,
            params,
        } if geom.prepares() => Some(conv::Prepared::new(geom, params, at)),
        _ => None,
    }
}

/// The backward call of an op (after a training forward pass) that needs no barrier. Empty
/// when there is nothing to compute: no parameters, and no input gradient wanted.
pub fn backward(op: &Op, call: &Call) -> TokenStream {
    let wants_dx = call.dx.iter().any(Option::is_some);
    match op {
        Op::Conv { geom, groups, params } => conv::backward(geom, *groups, params, call),
        Op::Dense { geom, params } => dense::backward(geom, params, call),
        // A sum with its ReLU masks the output gradient, which the plan may hand on as it is.
        Op::Add if call.relu => add::backward(call),
        _ if !wants_dx => TokenStream::new(),
        Op::Pool(g) => pool::backward(g, call),
        Op::Act(a) => activation::backward(a, call),
        Op::Dropout { geom, stage } => dropout::backward(geom, *stage, call),
        Op::Add => add::backward(call),
        // Needs its barrier: see `backward_train`.
        Op::BatchNorm { .. } => TokenStream::new(),
    }
}

/// `Option<&mut [f32]>` from an optional input gradient.
fn dx_option(dx: &Option<TokenStream>) -> TokenStream {
    match dx {
        Some(dx) => quote::quote!(::core::option::Option::Some(#dx)),
        None => quote::quote!(::core::option::Option::None),
    }
}
