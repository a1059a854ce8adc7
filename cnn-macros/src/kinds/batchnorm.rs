//! `BatchNorm2d(eps = 1e-5, momentum = 0.1, affine = true)` over an image's channels and
//! `BatchNorm1d(...)` over a vector's elements: batch statistics in a training step, running
//! statistics (buffers) at inference.

use super::{Built, Call, Kind, Needs, Piece};
use crate::check::{Checker, Cost, Table};
use crate::ir::{Op, Shape};
use crate::messages as msg;
use crate::parse::Layer;
use cnn_runtime::batchnorm::BatchNorm;
use proc_macro2::TokenStream;
use quote::quote;
use std::ops::Range;

pub const BATCH_NORM2D: Kind = Kind {
    name: "BatchNorm2d",
    activation: false,
    check: |cx, stage, layer, shape| check(cx, stage, layer, shape, true),
};

pub const BATCH_NORM1D: Kind = Kind {
    name: "BatchNorm1d",
    activation: false,
    check: |cx, stage, layer, shape| check(cx, stage, layer, shape, false),
};

/// PyTorch's defaults.
const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

fn check(cx: &mut Checker, stage: &str, layer: &Layer, shape: Option<Shape>, image: bool) -> (String, Option<Built>) {
    let kind = layer.kind.to_string();
    let args = cx.args(stage, layer, 0, &["eps", "momentum", "affine"]);
    let settings = args.and_then(|args| {
        let eps = args.named("eps").map_or(Some(EPS), |v| {
            cx.float(stage, "`eps`", v).filter(|&e| {
                e > 0.0 && (e as f32) > 0.0 || {
                    cx.err(
                        v.loc(),
                        msg::bad_float(
                            stage,
                            "`eps`",
                            "a positive number",
                            &v.text(),
                            "PyTorch's default is `eps = 1e-5`",
                        ),
                    );
                    false
                }
            })
        });
        let momentum = args.named("momentum").map_or(Some(MOMENTUM), |v| {
            cx.float(stage, "`momentum`", v).filter(|m| {
                (0.0..=1.0).contains(m) || {
                    cx.err(
                        v.loc(),
                        msg::bad_float(
                            stage,
                            "`momentum`",
                            "a number from 0 to 1",
                            &v.text(),
                            "PyTorch's default is `momentum = 0.1` (Keras' `momentum = 0.99` is PyTorch's 0.01)",
                        ),
                    );
                    false
                }
            })
        });
        let affine = args
            .named("affine")
            .map_or(Some(true), |v| cx.boolean(stage, "affine", v));
        Some((eps?, momentum?, affine?))
    });
    let mut text = kind.clone();
    if let Some((eps, momentum, affine)) = settings {
        let mut notes = Vec::new();
        if eps != EPS {
            notes.push(format!("eps {eps}"));
        }
        if momentum != MOMENTUM {
            notes.push(format!("momentum {momentum}"));
        }
        if !affine {
            notes.push("no affine".to_string());
        }
        if !notes.is_empty() {
            text = format!("{kind}({})", notes.join(", "));
        }
    }
    let Some(shape) = shape else {
        return (text, None);
    };
    match (shape, image) {
        (Shape::Image(_), true) | (Shape::Flat(_), false) => {}
        _ => {
            cx.errors
                .error(layer.kind.span(), msg::batchnorm_rank(stage, &kind, &shape, image));
            // The shape is unchanged all the same: the stages after it are still checked.
            return (text, Some(Built::Same(shape)));
        }
    }
    let Some((eps, momentum, affine)) = settings else {
        return (text, Some(Built::Same(shape)));
    };
    let (c, plane) = shape.channels();
    let tensors = [("running_mean", vec![c]), ("running_var", vec![c])];
    let Some(buffers) = cx.tensors(Table::Buffers, stage, &layer.loc, shape, &tensors) else {
        return (text, None);
    };
    let params = if affine {
        let Some(params) = cx.tensors(
            Table::Params,
            stage,
            &layer.loc,
            shape,
            &[("weight", vec![c]), ("bias", vec![c])],
        ) else {
            return (text, None);
        };
        cx.init_constant(params.start..params.start + c, params.start + c..params.end);
        params
    } else {
        let at = cx.param_count();
        at..at
    };
    let cost = Cost { macs: 0 };
    let geom = BatchNorm::new(c, plane, eps as f32, momentum as f32, affine);
    let op = Op::BatchNorm { geom, params, buffers };
    (text, Some(Built::Op { op, out: shape, cost }))
}

/// A vector's statistics are per element: the samples must be rows.
pub fn needs(g: &BatchNorm) -> Needs {
    if g.plane == 1 {
        Needs::SampleMajor
    } else {
        Needs::Any
    }
}

/// The layer as a constant expression; with the ReLU after it when `relu`.
pub(super) fn geom_tokens(g: &BatchNorm, relu: bool) -> TokenStream {
    let (c, plane, eps, momentum, affine) = (g.c, g.plane, g.eps, g.momentum, g.affine);
    let relu = relu.then(|| quote!(.with_relu()));
    quote!(::cnn::__private::BatchNorm::new(#c, #plane, #eps, #momentum, #affine) #relu)
}

/// The layer (with its ReLU if the call has one) and the bounds of its parameters and buffers.
fn parts(g: &BatchNorm, params: &Range<usize>, buffers: &Range<usize>, call: &Call) -> (TokenStream, [usize; 4]) {
    let bounds = [params.start, params.end, buffers.start, buffers.end];
    (geom_tokens(g, call.relu), bounds)
}

/// Inference: the running statistics.
pub fn forward(g: &BatchNorm, params: &Range<usize>, buffers: &Range<usize>, call: &Call) -> TokenStream {
    let (geom, [ps, pe, bs, be]) = parts(g, params, buffers, call);
    let (x, y, layout) = (&call.x[0], &call.y, &call.layout);
    quote!({ const G: ::cnn::__private::BatchNorm = #geom; G.forward_eval(batch, #x, #layout, &params[#ps..#pe], &buffers[#bs..#be], #y); })
}

/// A training step: each part's statistics, the whole batch's from them (and the running
/// statistics updated) at a barrier, then each part normalized.
pub fn forward_train(g: &BatchNorm, params: &Range<usize>, buffers: &Range<usize>, call: &Call) -> Vec<Piece> {
    let (geom, [ps, pe, bs, be]) = parts(g, params, buffers, call);
    let (x, y, layout) = (&call.x[0], &call.y, &call.layout);
    let (ss, se, pl) = (call.saved.start, call.saved.end, g.partial_len());
    vec![
        Piece::Code(
            quote!({ const G: ::cnn::__private::BatchNorm = #geom; G.partial_stats(batch, #x, #layout, &mut partial[..#pl]); }),
        ),
        Piece::Barrier(
            quote!({ const G: ::cnn::__private::BatchNorm = #geom; G.combine_stats_in(batch, slots, Self::PARTIAL_LEN + #ss..Self::PARTIAL_LEN + #se, &mut buffers[#bs..#be]); }),
        ),
        Piece::Code(
            quote!({ const G: ::cnn::__private::BatchNorm = #geom; G.normalize(batch, #x, #layout, &params[#ps..#pe], &saved[#ss..#se], #y); }),
        ),
    ]
}

/// Each part's share of the parameter gradient and its sums; where the input gradient is
/// wanted, the whole batch's sums at a barrier, then each part's input gradient.
pub fn backward_train(g: &BatchNorm, params: &Range<usize>, call: &Call) -> Vec<Piece> {
    let (geom, ps, pe) = (geom_tokens(g, call.relu), params.start, params.end);
    let (x, dy, layout) = (&call.x[0], &call.dy, &call.layout);
    let (ss, se, pl) = (call.saved.start, call.saved.end, g.partial_len());
    let mut pieces = vec![Piece::Code(
        quote!({ const G: ::cnn::__private::BatchNorm = #geom; G.partial_grad(batch, #x, #layout, &params[#ps..#pe], &saved[#ss..#se], #dy, &mut grad[#ps..#pe], &mut partial[..#pl]); }),
    )];
    if let Some(dx) = &call.dx[0] {
        pieces.push(Piece::Barrier(
            quote!({ const G: ::cnn::__private::BatchNorm = #geom; G.combine_grad_in(batch, slots, Self::PARTIAL_LEN + #ss..Self::PARTIAL_LEN + #se); }),
        ));
        pieces.push(Piece::Code(
            quote!({ const G: ::cnn::__private::BatchNorm = #geom; G.input_grad(batch, #x, #layout, &params[#ps..#pe], &saved[#ss..#se], #dy, #dx); }),
        ));
    }
    pieces
}
