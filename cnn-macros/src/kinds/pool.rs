//! `MaxPool2d(k, stride = k, padding = 0)`, `AvgPool2d(...)` and `GlobalAvgPool2d`.

use super::{Built, Call, Kind};
use crate::check::{Checker, Cost};
use crate::ir::{Op, Shape};
use crate::messages as msg;
use crate::parse::{Layer, Value};
use cnn_runtime::pool::{Pool2d, PoolKind};
use cnn_runtime::shape::pool_out;
use proc_macro2::TokenStream;
use quote::quote;

pub const MAX_POOL2D: Kind = Kind {
    name: "MaxPool2d",
    activation: false,
    check: |cx, stage, layer, shape| check(cx, stage, layer, shape, PoolKind::Max),
};

pub const AVG_POOL2D: Kind = Kind {
    name: "AvgPool2d",
    activation: false,
    check: |cx, stage, layer, shape| check(cx, stage, layer, shape, PoolKind::Avg),
};

/// PyTorch's `AdaptiveAvgPool2d(1)`: an average pool whose window is the whole image.
pub const GLOBAL_AVG_POOL2D: Kind = Kind {
    name: "GlobalAvgPool2d",
    activation: false,
    check: global,
};

fn check(
    cx: &mut Checker,
    stage: &str,
    layer: &Layer,
    shape: Option<Shape>,
    kind: PoolKind,
) -> (String, Option<Built>) {
    let name = if kind == PoolKind::Max {
        "MaxPool2d"
    } else {
        "AvgPool2d"
    };
    let Some(args) = cx.args(stage, layer, 1, &["stride", "padding"]) else {
        return (name.into(), None);
    };
    let kernel = match args.positional.first() {
        Some(v) => cx.pair(stage, "the window size", v, 1),
        None => {
            cx.err(
                &layer.loc,
                msg::missing_argument(stage, "the window size", &format!("{name}(2)")),
            );
            None
        }
    };
    let Some(kernel) = kernel else {
        return (name.into(), None);
    };
    let stride = args
        .named("stride")
        .map_or(Some(kernel), |v| cx.pair(stage, "`stride`", v, 1));
    let padding = args
        .named("padding")
        .map_or(Some([0, 0]), |v| cx.pair(stage, "`padding`", v, 0));
    let (Some(stride), Some(padding)) = (stride, padding) else {
        return (name.into(), None);
    };
    let mut text = format!("{name}({}x{}", kernel[0], kernel[1]);
    if stride != kernel {
        text += &format!(", stride {}", msg::pair(stride));
    }
    if padding != [0, 0] {
        text += &format!(", padding {}", msg::pair(padding));
    }
    text += ")";
    // PyTorch's rule: a window must always hold at least one element of the image.
    if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
        let loc = args.named("padding").map_or(&layer.loc, Value::loc);
        cx.err(loc, msg::pool_padding_too_big(stage, padding, kernel));
        return (text, None);
    }
    let Some(shape) = cx.image(stage, name, layer, shape) else {
        return (text, None);
    };
    let Shape::Image([c, h, w]) = shape else {
        return (text, None);
    };
    let (Some(oh), Some(ow)) = (
        pool_out(h, kernel[0], stride[0], padding[0]),
        pool_out(w, kernel[1], stride[1], padding[1]),
    ) else {
        cx.err(
            args.positional.first().map_or(&layer.loc, |v| v.loc()),
            msg::window_too_big(stage, kernel, [c, h, w]),
        );
        return (text, None);
    };
    let op = Op::Pool(Pool2d::new(kind, [c, h, w], kernel, stride, padding));
    (text, Some(built(op, [c, oh, ow])))
}

fn global(cx: &mut Checker, stage: &str, layer: &Layer, shape: Option<Shape>) -> (String, Option<Built>) {
    let text = "GlobalAvgPool2d".to_string();
    cx.args(stage, layer, 0, &[]);
    let Some(Shape::Image([c, h, w])) = cx.image(stage, "GlobalAvgPool2d", layer, shape) else {
        return (text, None);
    };
    let op = Op::Pool(Pool2d::new(PoolKind::Avg, [c, h, w], [h, w], [h, w], [0, 0]));
    (text, Some(built(op, [c, 1, 1])))
}

fn built(op: Op, out: [usize; 3]) -> Built {
    let cost = Cost { macs: 0 };
    Built::Op {
        op,
        out: Shape::Image(out),
        cost,
    }
}

fn geom_tokens(g: &Pool2d) -> TokenStream {
    let kind = match g.kind {
        PoolKind::Max => quote!(::cnn::__private::PoolKind::Max),
        PoolKind::Avg => quote!(::cnn::__private::PoolKind::Avg),
    };
    let (c, h, w, kh, kw, sh, sw, ph, pw) = (g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw);
    quote!(::cnn::__private::Pool2d::new(#kind, [#c, #h, #w], [#kh, #kw], [#sh, #sw], [#ph, #pw]))
}

pub fn forward(g: &Pool2d, call: &Call) -> TokenStream {
    let (geom, x, y) = (geom_tokens(g), &call.x[0], &call.y);
    quote!({ const G: ::cnn::__private::Pool2d = #geom; G.forward(batch, #x, #y); })
}

pub fn backward(g: &Pool2d, call: &Call) -> TokenStream {
    let (geom, x, dy) = (geom_tokens(g), &call.x[0], &call.dy);
    let Some(dx) = &call.dx[0] else {
        return TokenStream::new();
    };
    quote!({ const G: ::cnn::__private::Pool2d = #geom; G.backward(batch, #x, #dy, #dx); })
}
