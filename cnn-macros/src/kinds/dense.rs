//! `Dense(out, bias = true)`: PyTorch's `Linear`.

use super::{dx_option, Built, Call, Kind};
use crate::check::{elems, Checker, Cost, Table};
use crate::ir::{Op, Shape};
use crate::messages::{self as msg, Limit};
use crate::parse::Layer;
use cnn_runtime::dense::Dense;
use proc_macro2::TokenStream;
use quote::quote;
use std::ops::Range;

pub const DENSE: Kind = Kind {
    name: "Dense",
    activation: false,
    check,
};

fn check(cx: &mut Checker, stage: &str, layer: &Layer, shape: Option<Shape>) -> (String, Option<Built>) {
    let Some(args) = cx.args(stage, layer, 1, &["bias"]) else {
        return ("Dense".into(), None);
    };
    let out = match args.positional.first() {
        Some(v) => cx.size(stage, "the number of outputs", v, 1),
        None => {
            cx.err(
                &layer.loc,
                msg::missing_argument(stage, "the number of outputs", "Dense(10)"),
            );
            None
        }
    };
    let bias = args.named("bias").map_or(Some(true), |v| cx.boolean(stage, "bias", v));
    let (Some(out), Some(bias)) = (out, bias) else {
        return ("Dense".into(), None);
    };
    let text = if bias {
        format!("Dense({out})")
    } else {
        format!("Dense({out}, no bias)")
    };
    let inputs = match shape {
        Some(Shape::Flat(n)) => n,
        Some(image) => {
            cx.errors.error(layer.kind.span(), msg::needs_flat(stage, &image));
            return (text, None);
        }
        None => return (text, None),
    };
    let Some(weight_len) = elems(&[inputs, out]) else {
        cx.err(
            &layer.loc,
            msg::overflow(stage, "weight", &Shape::Flat(inputs), Limit::Memory),
        );
        return (text, None);
    };
    let mut tensors = vec![("weight", vec![out, inputs])];
    if bias {
        tensors.push(("bias", vec![out]));
    }
    let Some(params) = cx.tensors(Table::Params, stage, &layer.loc, Shape::Flat(inputs), &tensors) else {
        return (text, None);
    };
    let cost = Cost { macs: weight_len };
    let op = Op::Dense {
        geom: Dense::new(inputs, out, bias),
        params,
    };
    let built = Built::Op {
        op,
        out: Shape::Flat(out),
        cost,
    };
    (text, Some(built))
}

fn geom_tokens(g: &Dense) -> TokenStream {
    let (i, o, b) = (g.inputs, g.outputs, g.bias);
    quote!(::cnn::__private::Dense::new(#i, #o, #b))
}

pub fn forward(g: &Dense, params: &Range<usize>, call: &Call) -> TokenStream {
    let (geom, ps, pe, x, y) = (geom_tokens(g), params.start, params.end, &call.x[0], &call.y);
    quote!({ const G: ::cnn::__private::Dense = #geom; G.forward(batch, #x, &params[#ps..#pe], #y); })
}

pub fn backward(g: &Dense, params: &Range<usize>, call: &Call) -> TokenStream {
    let (geom, ps, pe, x, dy) = (geom_tokens(g), params.start, params.end, &call.x[0], &call.dy);
    let dx = dx_option(&call.dx[0]);
    quote!({ const G: ::cnn::__private::Dense = #geom; G.backward(batch, #x, &params[#ps..#pe], #dy, &mut grad[#ps..#pe], #dx); })
}
