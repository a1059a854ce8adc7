//! `Conv2d(out, kernel = k, stride = 1, padding = 0, bias = true, groups = 1)`.

use super::{dx_option, Built, Call, Kind, Needs};
use crate::check::{count, elems, Checker, Cost, Table};
use crate::ir::{Op, Shape};
use crate::messages::{self as msg, Limit};
use crate::parse::{Layer, Value};
use cnn_runtime::conv::Conv2d;
use proc_macro2::TokenStream;
use quote::quote;
use std::ops::Range;

pub const CONV2D: Kind = Kind {
    name: "Conv2d",
    activation: false,
    check,
};

fn check(cx: &mut Checker, stage: &str, layer: &Layer, shape: Option<Shape>) -> (String, Option<Built>) {
    let example = "Conv2d(6, kernel = 3)";
    let Some(args) = cx.args(stage, layer, 1, &["kernel", "stride", "padding", "bias", "groups"]) else {
        return ("Conv2d".into(), None);
    };
    let out = match args.positional.first() {
        Some(v) => cx.size(stage, "the number of output channels", v, 1),
        None => {
            cx.err(
                &layer.loc,
                msg::missing_argument(stage, "the number of output channels", example),
            );
            None
        }
    };
    let kernel = match args.named("kernel") {
        Some(v) => cx.pair(stage, "`kernel`", v, 1),
        None => {
            cx.err(&layer.loc, msg::missing_argument(stage, "argument `kernel`", example));
            None
        }
    };
    let stride = args
        .named("stride")
        .map_or(Some([1, 1]), |v| cx.pair(stage, "`stride`", v, 1));
    let padding = match args.named("padding") {
        None => Some([0, 0]),
        // PyTorch spells some paddings as strings; say which number means the same.
        Some(Value::Other(loc)) if loc.0.to_string().starts_with('"') => {
            cx.err(loc, msg::padding_string(stage, &loc.0.to_string(), kernel));
            None
        }
        Some(v) => cx.pair(stage, "`padding`", v, 0),
    };
    let bias = args.named("bias").map_or(Some(true), |v| cx.boolean(stage, "bias", v));
    let groups = args
        .named("groups")
        .map_or(Some(1), |v| cx.size(stage, "`groups`", v, 1));
    let (Some(out), Some(kernel), Some(stride), Some(padding), Some(bias), Some(groups)) =
        (out, kernel, stride, padding, bias, groups)
    else {
        return ("Conv2d".into(), None);
    };
    let mut text = format!("Conv2d({out}, {}x{}", kernel[0], kernel[1]);
    if stride != [1, 1] {
        text += &format!(", stride {}", msg::pair(stride));
    }
    if padding != [0, 0] {
        text += &format!(", padding {}", msg::pair(padding));
    }
    if groups != 1 {
        text += &format!(", groups {groups}");
    }
    text += if bias { ")" } else { ", no bias)" };
    let Some(shape) = cx.image(stage, "Conv2d", layer, shape) else {
        return (text, None);
    };
    let Shape::Image([c, h, w]) = shape else {
        return (text, None);
    };
    if !c.is_multiple_of(groups) || !out.is_multiple_of(groups) {
        let loc = args.named("groups").map_or(&layer.loc, Value::loc);
        cx.err(loc, msg::groups_do_not_divide(stage, groups, c, out, &shape));
        // The output shape does not depend on `groups`: the stages after it are still checked.
        let oh = cnn_runtime::shape::conv_out(h, kernel[0], stride[0], padding[0]);
        let ow = cnn_runtime::shape::conv_out(w, kernel[1], stride[1], padding[1]);
        let out = oh
            .zip(ow)
            .filter(|&(oh, ow)| elems(&[out, oh, ow]).is_some())
            .map(|(oh, ow)| Built::Same(Shape::Image([out, oh, ow])));
        return (text, out);
    }
    // One group's convolution: `groups` of them side by side make the layer.
    let (c, oc) = (c / groups, out / groups);
    let padded = [
        h.checked_add(padding[0].saturating_mul(2)),
        w.checked_add(padding[1].saturating_mul(2)),
    ];
    let [Some(padded_h), Some(padded_w)] = padded else {
        cx.err(
            args.named("padding").map_or(&layer.loc, Value::loc),
            msg::overflow(stage, "padded input", &shape, Limit::Count),
        );
        return (text, None);
    };
    let (Some(oh), Some(ow)) = (
        cnn_runtime::shape::conv_out(h, kernel[0], stride[0], padding[0]),
        cnn_runtime::shape::conv_out(w, kernel[1], stride[1], padding[1]),
    ) else {
        // The padding that would make the kernel fit, per axis: ceil((k - size) / 2).
        let need = [
            kernel[0].saturating_sub(h).div_ceil(2).max(padding[0]),
            kernel[1].saturating_sub(w).div_ceil(2).max(padding[1]),
        ];
        let loc = args.named("kernel").map_or(&layer.loc, Value::loc);
        cx.err(
            loc,
            msg::kernel_too_big(stage, kernel, &shape, [padded_h, padded_w], padding, need),
        );
        return (text, None);
    };
    let weight = [out, c, kernel[0], kernel[1]];
    let sizes = (
        elems(&weight),
        elems(&[out, oh, ow]),
        count(&[out, oh, ow, c, kernel[0], kernel[1]]),
        // At least the larger of the two paths' scratch (`Conv2d::scratch_len`, one group's):
        // two unfolded samples, `[C*KH*KW, OH*OW]` each; two padded samples (four: a strided
        // one split into phases is up to twice as wide and twice as high), `OC`
        // wide rows of `(OH-1)*PW + OW` columns, two weights, two outputs, and `C*KH*KW` rows
        // of a margin of `KH*PW + KW` and a padded image (rounded up by at most 16); and a
        // grouped convolution's copies of one group's parameters and their gradient.
        elems(&[2, c, kernel[0], kernel[1], oh, ow]).and_then(|unfolded| {
            let padded = count(&[4, c, padded_h, padded_w])?;
            let wide = count(&[oh - 1, padded_w])?.checked_add(ow)?;
            let weight = count(&[oc, c, kernel[0], kernel[1]])?;
            let row = count(&[kernel[0].checked_add(padded_h)?, padded_w])?.checked_add(kernel[1] + 16)?;
            let direct = count(&[oc, wide])?
                .checked_add(padded)?
                .checked_add(count(&[2, weight])?)?
                .checked_add(count(&[2, oc, oh, ow])?)?
                .checked_add(count(&[c, kernel[0], kernel[1], row])?)?;
            let copies = count(&[2, weight.checked_add(oc)?])?;
            elems(&[unfolded.max(direct).checked_add(copies)?])
        }),
    );
    let (Some(_), Some(_), Some(macs), Some(_)) = sizes else {
        let (what, limit) = match sizes {
            (None, ..) => ("weight", Limit::Memory),
            (_, None, ..) => ("output", Limit::Memory),
            (_, _, None, _) => ("number of multiply-adds", Limit::Count),
            _ => ("scratch for the unfolded input", Limit::Memory),
        };
        cx.err(&layer.loc, msg::overflow(stage, what, &shape, limit));
        return (text, None);
    };
    let mut tensors = vec![("weight", weight.to_vec())];
    if bias {
        tensors.push(("bias", vec![out]));
    }
    let Some(params) = cx.tensors(Table::Params, stage, &layer.loc, shape, &tensors) else {
        return (text, None);
    };
    let geom = Conv2d::new([c, h, w], oc, kernel, stride, padding, bias);
    let cost = Cost { macs };
    let op = Op::Conv { geom, groups, params };
    let built = Built::Op {
        op,
        out: Shape::Image([out, oh, ow]),
        cost,
    };
    (text, Some(built))
}

pub fn needs(groups: usize) -> Needs {
    if groups == 1 {
        Needs::AnyToChannelMajor
    } else {
        Needs::ChannelMajor
    }
}

pub fn scratch_len(geom: &Conv2d, groups: usize) -> usize {
    if groups == 1 {
        geom.scratch_len().max(geom.folded_scratch_len())
    } else {
        cnn_runtime::conv_groups::scratch_len(geom)
    }
}

/// The geometry as a constant expression.
fn geom_tokens(g: &Conv2d) -> TokenStream {
    let (c, h, w, oc, kh, kw, sh, sw, ph, pw, bias) = (g.c, g.h, g.w, g.oc, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.bias);
    quote!(::cnn::__private::Conv2d::new([#c, #h, #w], #oc, [#kh, #kw], [#sh, #sw], [#ph, #pw], #bias))
}

pub fn forward(geom: &Conv2d, groups: usize, params: &Range<usize>, call: &Call) -> TokenStream {
    let (g, ps, pe) = (geom_tokens(geom), params.start, params.end);
    let (x, y, layout) = (&call.x[0], &call.y, &call.layout);
    let relu = call.relu;
    if groups > 1 {
        return quote!({ const G: ::cnn::__private::Conv2d = #g; ::cnn::__private::grouped_forward(&G, #groups, batch, #x, &params[#ps..#pe], #y, #relu, scratch); });
    }
    let forward = if relu { quote!(forward_relu) } else { quote!(forward) };
    quote!({ const G: ::cnn::__private::Conv2d = #g; G.#forward(batch, #x, #layout, &params[#ps..#pe], #y, scratch); })
}

/// A convolution with a BatchNorm folded into it, as generated code names it: the constants
/// `G` and `BN`, and the slices of its parameters, the BatchNorm's, its buffers, and where its
/// prepared parameters lie in `prepared` (from `at`).
pub struct Folded {
    consts: TokenStream,
    params: TokenStream,
    bn_params: TokenStream,
    buffers: TokenStream,
    slot: Slot,
}

/// Where a layer's prepared parameters lie in `prepared`: `len` floats from `at`.
#[derive(Clone, Copy)]
struct Slot {
    at: usize,
    len: usize,
}

impl Slot {
    /// `at..at + len`, as generated code slices `prepared`.
    fn range(self) -> TokenStream {
        let (at, end) = (self.at, self.at + self.len);
        quote!(#at..#end)
    }
}

impl Folded {
    pub fn new(
        geom: &Conv2d,
        params: &Range<usize>,
        bn: &cnn_runtime::batchnorm::BatchNorm,
        bn_params: &Range<usize>,
        buffers: &Range<usize>,
        at: usize,
    ) -> Self {
        let (g, bg) = (geom_tokens(geom), super::batchnorm::geom_tokens(bn, false));
        let slice = |r: &Range<usize>, of: TokenStream| {
            let (s, e) = (r.start, r.end);
            quote!(&#of[#s..#e])
        };
        Folded {
            consts: quote! {
                const G: ::cnn::__private::Conv2d = #g;
                const BN: ::cnn::__private::BatchNorm = #bg;
            },
            params: slice(params, quote!(params)),
            bn_params: slice(bn_params, quote!(params)),
            buffers: slice(buffers, quote!(buffers)),
            slot: Slot {
                at,
                len: geom.prepared_len(),
            },
        }
    }

    /// Inference of `then(batchnorm(conv(x)))` in one call: from the prepared parameters if
    /// there are (`Conv2d::forward_prepared`), else folded on the way
    /// (`Conv2d::forward_batchnorm`).
    pub fn forward(&self, x: &TokenStream, y: &TokenStream, layout: &TokenStream, then: super::Then) -> TokenStream {
        let Folded {
            consts,
            params,
            bn_params,
            buffers,
            slot,
        } = self;
        let range = slot.range();
        let then = match (then.residual, then.relu) {
            (None, false) => quote!(Nothing),
            (None, true) => quote!(Relu),
            (Some(r), false) => quote!(Add(#r)),
            (Some(r), true) => quote!(AddRelu(#r)),
        };
        quote!({
            #consts
            match prepared {
                ::core::option::Option::Some(prepared) => G.forward_prepared(batch, #x, #layout, &prepared[#range], ::cnn::__private::Then::#then, #y, scratch),
                ::core::option::Option::None => G.forward_batchnorm(batch, #x, #layout, #params, &BN, #bn_params, #buffers, ::cnn::__private::Then::#then, #y, scratch),
            }
        })
    }

    /// Writes the parameters [`forward`](Self::forward) reads (`Conv2d::prepare_batchnorm`).
    pub fn prepare(&self) -> TokenStream {
        let Folded {
            consts,
            params,
            bn_params,
            buffers,
            slot,
        } = self;
        let range = slot.range();
        quote!({
            #consts
            G.prepare_batchnorm(#params, &BN, #bn_params, #buffers, &mut prepared[#range]);
        })
    }

    /// Floats of the prepared parameters.
    pub fn prepared_len(&self) -> usize {
        self.slot.len
    }
}

/// A convolution alone whose inference reads its parameters prepared (`Conv2d::prepare`),
/// as generated code names it: the constant `G`, the slice of its parameters, and where its
/// prepared parameters lie in `prepared`.
pub struct Prepared {
    consts: TokenStream,
    params: TokenStream,
    slot: Slot,
}

impl Prepared {
    pub fn new(geom: &Conv2d, params: &Range<usize>, at: usize) -> Self {
        let (g, ps, pe) = (geom_tokens(geom), params.start, params.end);
        Prepared {
            consts: quote!(const G: ::cnn::__private::Conv2d = #g;),
            params: quote!(&params[#ps..#pe]),
            slot: Slot {
                at,
                len: geom.prepared_len(),
            },
        }
    }

    /// Inference of the convolution (and its ReLU): from the prepared parameters if there are
    /// (`Conv2d::forward_prepared`), else prepared on the way (`Conv2d::forward_as_prepared`,
    /// the same bits).
    pub fn forward(&self, call: &Call) -> TokenStream {
        let (consts, params, range) = (&self.consts, &self.params, self.slot.range());
        let (x, y, layout) = (&call.x[0], &call.y, &call.layout);
        let then = if call.relu { quote!(Relu) } else { quote!(Nothing) };
        quote!({
            #consts
            match prepared {
                ::core::option::Option::Some(prepared) => G.forward_prepared(batch, #x, #layout, &prepared[#range], ::cnn::__private::Then::#then, #y, scratch),
                ::core::option::Option::None => G.forward_as_prepared(batch, #x, #layout, #params, ::cnn::__private::Then::#then, #y, scratch),
            }
        })
    }

    /// Writes the parameters [`forward`](Self::forward) reads.
    pub fn prepare(&self) -> TokenStream {
        let (consts, params, range) = (&self.consts, &self.params, self.slot.range());
        quote!({
            #consts
            G.prepare(#params, &mut prepared[#range]);
        })
    }

    /// Floats of the prepared parameters.
    pub fn prepared_len(&self) -> usize {
        self.slot.len
    }
}

pub fn backward(geom: &Conv2d, groups: usize, params: &Range<usize>, call: &Call) -> TokenStream {
    let (g, ps, pe) = (geom_tokens(geom), params.start, params.end);
    let (x, y, dy, layout) = (&call.x[0], &call.y, &call.dy, &call.layout);
    let dx = dx_option(&call.dx[0]);
    let relu = call.relu;
    if groups > 1 {
        return quote!({ const G: ::cnn::__private::Conv2d = #g; ::cnn::__private::grouped_backward(&G, #groups, batch, #x, &params[#ps..#pe], #y, #relu, #dy, &mut grad[#ps..#pe], #dx, scratch); });
    }
    let (backward, y) = if relu {
        (quote!(backward_relu), quote!(#y,))
    } else {
        (quote!(backward), quote!())
    };
    quote!({ const G: ::cnn::__private::Conv2d = #g; G.#backward(batch, #x, #layout, &params[#ps..#pe], #y #dy, &mut grad[#ps..#pe], #dx, scratch); })
}
