//! `Dropout(p)`: in a training step each element is zeroed with probability `p` and the rest
//! scaled by `1 / (1 - p)`; at inference the input passes through.

use super::{Built, Call, Kind, Needs};
use crate::check::{Checker, Cost};
use crate::ir::{Op, Shape};
use crate::messages as msg;
use crate::parse::Layer;
use cnn_runtime::dropout::Dropout;
use proc_macro2::TokenStream;
use quote::quote;

pub const DROPOUT: Kind = Kind {
    name: "Dropout",
    activation: false,
    check,
};

fn check(cx: &mut Checker, stage: &str, layer: &Layer, shape: Option<Shape>) -> (String, Option<Built>) {
    let p = cx
        .args(stage, layer, 1, &[])
        .and_then(|args| match args.positional.first() {
            Some(v) => cx.float(stage, "the drop probability", v).filter(|p| {
                (0.0..1.0).contains(p) || {
                    cx.err(
                        v.loc(),
                        msg::bad_float(
                            stage,
                            "the drop probability",
                            "in [0, 1)",
                            &v.text(),
                            "write e.g. `Dropout(0.5)`",
                        ),
                    );
                    false
                }
            }),
            None => {
                cx.err(
                    &layer.loc,
                    msg::missing_argument(stage, "the drop probability", "Dropout(0.5)"),
                );
                None
            }
        });
    let text = match p {
        Some(p) => format!("Dropout({p})"),
        None => "Dropout".to_string(),
    };
    let (Some(p), Some(shape)) = (p, shape) else {
        return (text, shape.map(Built::Same));
    };
    let (c, plane) = shape.channels();
    let cost = Cost { macs: 0 };
    let op = Op::Dropout {
        geom: Dropout::new(p as f32, c, plane),
        stage: cx.dropouts,
    };
    cx.dropouts += 1;
    (text, Some(Built::Op { op, out: shape, cost }))
}

/// A vector's elements are numbered along the sample: the samples must be rows.
pub fn needs(g: &Dropout) -> Needs {
    if g.plane == 1 {
        Needs::SampleMajor
    } else {
        Needs::Any
    }
}

fn geom_tokens(g: &Dropout) -> TokenStream {
    let (p, c, plane) = (g.p, g.c, g.plane);
    quote!(::cnn::__private::Dropout::new(#p, #c, #plane))
}

fn key(stage: u32) -> TokenStream {
    quote!(::cnn::__private::DropoutKey { seed: key.seed, step: key.steps, stage: #stage })
}

pub fn forward(g: &Dropout, stage: u32, call: &Call, train: bool) -> TokenStream {
    let (x, y, layout) = (&call.x[0], &call.y, &call.layout);
    if !train {
        return quote!((#y).copy_from_slice(#x););
    }
    let (geom, key) = (geom_tokens(g), key(stage));
    quote!({ const G: ::cnn::__private::Dropout = #geom; G.forward_train(batch, first, #key, #x, #layout, #y); })
}

pub fn backward(g: &Dropout, stage: u32, call: &Call) -> TokenStream {
    let (dy, layout) = (&call.dy, &call.layout);
    let Some(dx) = &call.dx[0] else {
        return TokenStream::new();
    };
    let (geom, key) = (geom_tokens(g), key(stage));
    quote!({ const G: ::cnn::__private::Dropout = #geom; G.backward(batch, first, #key, #dy, #layout, #dx); })
}
