//! `Relu`, `Sigmoid`, `Tanh`, `LeakyRelu` or `LeakyRelu(slope)`: a stage of their own or after
//! `->`. The plan folds a ReLU that follows a stride-1 convolution into it.

use super::{Built, Call, Kind};
use crate::check::{Checker, Cost};
use crate::ir::{Op, Shape};
use crate::messages as msg;
use crate::parse::{Layer, Value};
use cnn_runtime::activation::Activation;
use proc_macro2::TokenStream;
use quote::quote;

pub const RELU: Kind = Kind {
    name: "Relu",
    activation: true,
    check: |cx, stage, layer, shape| check(cx, stage, layer, shape, Some(Activation::Relu)),
};

pub const SIGMOID: Kind = Kind {
    name: "Sigmoid",
    activation: true,
    check: |cx, stage, layer, shape| check(cx, stage, layer, shape, Some(Activation::Sigmoid)),
};

pub const TANH: Kind = Kind {
    name: "Tanh",
    activation: true,
    check: |cx, stage, layer, shape| check(cx, stage, layer, shape, Some(Activation::Tanh)),
};

/// The slope comes from the arguments.
pub const LEAKY_RELU: Kind = Kind {
    name: "LeakyRelu",
    activation: true,
    check: |cx, stage, layer, shape| check(cx, stage, layer, shape, None),
};

/// `fixed`: the activation of a kind without arguments; `None` for `LeakyRelu`.
fn check(
    cx: &mut Checker,
    stage: &str,
    layer: &Layer,
    shape: Option<Shape>,
    fixed: Option<Activation>,
) -> (String, Option<Built>) {
    let kind = layer.kind.to_string();
    let act = match fixed {
        Some(act) => cx.args(stage, layer, 0, &[]).map(|_| act),
        None => leaky(cx, stage, layer),
    };
    let text = match act {
        Some(Activation::LeakyRelu(s)) => format!("LeakyRelu({s})"),
        _ => kind,
    };
    let (Some(act), Some(shape)) = (act, shape) else {
        // The shape is known even when the arguments are wrong.
        return (text, shape.map(Built::Same));
    };
    let cost = Cost { macs: 0 };
    let built = Built::Op {
        op: Op::Act(act),
        out: shape,
        cost,
    };
    (text, Some(built))
}

fn leaky(cx: &mut Checker, stage: &str, layer: &Layer) -> Option<Activation> {
    let args = cx.args(stage, layer, 1, &[])?;
    let slope = match args.positional.first() {
        None => Activation::DEFAULT_NEGATIVE_SLOPE,
        Some(Value::Int(v, _)) => *v as f32,
        Some(Value::Float(v, _)) if v.is_finite() && (*v as f32).is_finite() => *v as f32,
        Some(other) => {
            cx.err(other.loc(), msg::bad_slope(stage, &other.text()));
            return None;
        }
    };
    Some(Activation::LeakyRelu(slope))
}

fn tokens(a: &Activation) -> TokenStream {
    match a {
        Activation::Relu => quote!(::cnn::__private::Activation::Relu),
        Activation::Sigmoid => quote!(::cnn::__private::Activation::Sigmoid),
        Activation::Tanh => quote!(::cnn::__private::Activation::Tanh),
        Activation::LeakyRelu(s) => quote!(::cnn::__private::Activation::LeakyRelu(#s)),
    }
}

pub fn forward(a: &Activation, call: &Call) -> TokenStream {
    let (a, x, y) = (tokens(a), &call.x[0], &call.y);
    quote!(#a.forward(#x, #y);)
}

pub fn backward(a: &Activation, call: &Call) -> TokenStream {
    let (a, x, y, dy) = (tokens(a), &call.x[0], &call.y, &call.dy);
    let Some(dx) = &call.dx[0] else {
        return TokenStream::new();
    };
    quote!(#a.backward(#x, #y, #dy, #dx);)
}
