//! Pass 2: validate the declaration and compute every stage's shape, parameters and cost.
//!
//! All independent errors are collected. A stage that fails leaves the shape after it unknown,
//! and later stages then skip the checks that need it, so one mistake reports once.

use crate::messages::{self as msg, Limit};
use crate::parse::{Decl, Entry, Layer, Loc, Stage, Value};
use crate::report::Errors;
use cnn_runtime::activation::Activation;
use cnn_runtime::conv::Conv2d;
use cnn_runtime::dense::Dense;
use cnn_runtime::pool::{Pool2d, PoolKind};
use cnn_runtime::shape::{conv_out, pool_out};
use std::collections::HashSet;
use std::fmt;

mod args;

/// The shape of one sample between stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Image([usize; 3]),
    Flat(usize),
}

impl Shape {
    pub fn len(self) -> usize {
        match self {
            Shape::Image([c, h, w]) => c * h * w,
            Shape::Flat(n) => n,
        }
    }

    pub fn dims(self) -> Vec<usize> {
        match self {
            Shape::Image(d) => d.to_vec(),
            Shape::Flat(n) => vec![n],
        }
    }

    pub fn image(self) -> Option<[usize; 3]> {
        match self {
            Shape::Image(d) => Some(d),
            Shape::Flat(_) => None,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Image([c, h, w]) => write!(f, "[{c}, {h}, {w}]"),
            Shape::Flat(n) => write!(f, "[{n}]"),
        }
    }
}

/// One kernel call of the forward pass. `Flatten` has none: it only renames the layout.
#[derive(Clone, Debug)]
pub enum OpKind {
    Conv(Conv2d),
    Pool(Pool2d),
    Dense(Dense),
    Act(Activation),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub kind: OpKind,
    /// Elements of one sample flowing in and out.
    pub in_len: usize,
    pub out_len: usize,
    /// Where this op's parameters (weight, then bias) sit in the flat buffer.
    pub params: std::ops::Range<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

/// One line of the summary table.
#[derive(Clone, Debug)]
pub struct Row {
    pub stage: String,
    pub kind: String,
    pub shape: Shape,
    pub params: usize,
    pub macs: usize,
}

/// Everything `expand` needs: sizes as numbers, no tokens but spans already reported.
#[derive(Clone, Debug)]
pub struct Model {
    pub input: Shape,
    pub output_len: usize,
    pub ops: Vec<Op>,
    pub params: Vec<Param>,
    pub param_count: usize,
    pub macs: usize,
    pub rows: Vec<Row>,
}

/// What is known of a declaration that has errors, for the stubbed struct.
#[derive(Clone, Debug, Default)]
pub struct Partial {
    pub input: Option<Shape>,
    pub output_len: Option<usize>,
}

pub fn check(decl: &Decl) -> Result<Model, (syn::Error, Partial)> {
    let mut cx = Checker::default();
    let name_span = decl.header.name.span();
    if decl.entries.is_empty() {
        return Err((syn::Error::new(name_span, msg::empty_network()), Partial::default()));
    }
    let input = cx.input(decl);
    let mut shape = input;
    let mut names = HashSet::new();
    let mut stages = 0;
    for entry in &decl.entries {
        let Entry::Stage(stage) = entry else { continue };
        stages += 1;
        cx.name(stage, &mut names);
        shape = cx.stage(stage, shape);
    }
    if stages == 0 {
        cx.errors.error(name_span, msg::no_stages());
    }
    let partial = Partial {
        input,
        output_len: shape.map(Shape::len),
    };
    match (cx.errors.into_result(), input, shape) {
        (Ok(()), Some(input), Some(output)) => Ok(cx.model.finish(input, output)),
        (Err(e), _, _) => Err((e, partial)),
        // Unreachable in practice: an unknown shape always comes with an error.
        (Ok(()), _, _) => Err((
            syn::Error::new(name_span, "cnn!: could not compute the network's shapes"),
            partial,
        )),
    }
}

#[derive(Default)]
struct Checker {
    errors: Errors,
    model: Builder,
    /// The stage that flattened the image, for the hint when a later stage needs one.
    flat_since: Option<String>,
}

#[derive(Default)]
struct Builder {
    ops: Vec<Op>,
    params: Vec<Param>,
    param_count: usize,
    macs: usize,
    rows: Vec<Row>,
    activations_len: usize,
    max_len: usize,
    scratch_len: usize,
}

/// What one op adds to the network's totals; every field already known to fit.
struct Cost {
    in_len: usize,
    out_len: usize,
    param_len: usize,
    macs: usize,
    scratch_len: usize,
}

impl Builder {
    /// Records an op and adds its cost to the totals, or names the total that would no longer
    /// fit (and records nothing).
    fn op(&mut self, kind: OpKind, cost: Cost) -> Result<(), (&'static str, Limit)> {
        let param_count = self
            .param_count
            .checked_add(cost.param_len)
            .filter(|&n| n <= MAX_ELEMS)
            .ok_or(("network's parameter buffer", Limit::Memory))?;
        let macs = self
            .macs
            .checked_add(cost.macs)
            .ok_or(("network's number of multiply-adds", Limit::Count))?;
        let activations_len = self
            .activations_len
            .checked_add(cost.out_len)
            .ok_or(("network's activations", Limit::Memory))?;
        let max_len = self.max_len.max(cost.in_len).max(cost.out_len);
        // Each convolution keeps its unfolded input for the backward pass, and one more
        // unfolded input serves as scratch: the sum of twice each is an upper bound of both.
        let scratch_len = self
            .scratch_len
            .checked_add(cost.scratch_len)
            .ok_or(("scratch for the unfolded inputs", Limit::Memory))?;
        // A training step holds every activation, two gradient buffers and the scratch at
        // once (per sample): that one buffer must be possible.
        let workspace = max_len
            .checked_mul(2)
            .and_then(|g| g.checked_add(activations_len))
            .and_then(|n| n.checked_add(scratch_len));
        workspace
            .filter(|&n| n <= MAX_ELEMS)
            .ok_or(("working memory of a training step", Limit::Memory))?;
        let params = self.param_count..param_count;
        self.ops.push(Op {
            kind,
            in_len: cost.in_len,
            out_len: cost.out_len,
            params,
        });
        (
            self.param_count,
            self.macs,
            self.activations_len,
            self.max_len,
            self.scratch_len,
        ) = (param_count, macs, activations_len, max_len, scratch_len);
        Ok(())
    }

    fn param(&mut self, stage: &str, what: &str, shape: Vec<usize>) {
        let offset = self
            .params
            .last()
            .map_or(0, |p: &Param| p.offset + p.shape.iter().product::<usize>());
        self.params.push(Param {
            name: format!("{stage}.{what}"),
            shape,
            offset,
        });
    }

    fn finish(self, input: Shape, output: Shape) -> Model {
        Model {
            input,
            output_len: output.len(),
            ops: self.ops,
            params: self.params,
            param_count: self.param_count,
            macs: self.macs,
            rows: self.rows,
        }
    }
}

/// The most `f32`s a declaration may need in one buffer: 2^32, 16 GiB.
///
/// It bounds the input sample, every parameter tensor and the whole parameter buffer, each
/// stage's output, and the working memory of a training step per sample (every activation, the
/// two gradient buffers and the convolution scratch, summed). A network past it is a compile
/// error naming the stage.
///
/// Why this number: it is far above any network this crate can train on a CPU (VGG-16 has
/// 138 million parameters), and far below the limits where the generated code itself would
/// break. rustc refuses an array type of 2^61 bytes or more (`[f32; OUTPUT_LEN]` in `forward`)
/// with an error that names no stage, and `isize::MAX` bytes is the most one allocation can
/// hold. Under this bound every size the generated code computes from these lengths fits
/// `usize` on a 64-bit host.
pub const MAX_ELEMS: usize = 1 << 32;

/// Product of sizes, `None` on overflow: for counts, such as multiply-adds.
fn count(xs: &[usize]) -> Option<usize> {
    xs.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x))
}

/// Product of sizes, `None` unless a buffer of that many `f32`s can exist.
fn elems(xs: &[usize]) -> Option<usize> {
    count(xs).filter(|&n| n <= MAX_ELEMS)
}

impl Checker {
    fn input(&mut self, decl: &Decl) -> Option<Shape> {
        let mut found = None;
        for (i, entry) in decl.entries.iter().enumerate() {
            let Entry::Input(input) = entry else { continue };
            if found.is_some() {
                self.errors.error(input.key.span(), msg::duplicate_input());
                continue;
            }
            if let Some(Entry::Stage(first)) = decl.entries.first().filter(|_| i != 0) {
                self.errors
                    .error(input.key.span(), msg::input_not_first(&first.name.to_string()));
            }
            found = Some(input);
        }
        let Some(input) = found else {
            self.errors.error(decl.header.name.span(), msg::missing_input());
            return None;
        };
        let mut dims = Vec::new();
        for dim in &input.dims {
            match dim {
                Value::Int(0, loc) => self.err(loc, msg::input_dim_zero()),
                Value::Int(v, _) => dims.push(*v),
                other => self.err(other.loc(), msg::input_dim_not_literal(&other.text())),
            }
        }
        if input.dims.len() != 1 && input.dims.len() != 3 {
            self.err(&input.loc, msg::input_rank(input.dims.len()));
            return None;
        }
        if dims.len() != input.dims.len() {
            return None;
        }
        let shape = match dims[..] {
            [n] => Shape::Flat(n),
            [c, h, w] => Shape::Image([c, h, w]),
            _ => return None,
        };
        // Every later size is a product of these; refuse what cannot even be held in memory.
        if elems(&dims).is_none() {
            self.err(&input.loc, msg::input_too_large(&dims));
            return None;
        }
        Some(shape)
    }

    fn name(&mut self, stage: &Stage, seen: &mut HashSet<String>) {
        let name = stage.name.to_string();
        if name == "input" {
            self.errors.error(stage.name.span(), msg::reserved_name());
        } else if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            self.errors.error(stage.name.span(), msg::not_snake_case(&name));
        }
        if !seen.insert(name.clone()) {
            self.errors.error(stage.name.span(), msg::duplicate_stage(&name));
        }
    }

    fn err(&mut self, loc: &Loc, message: String) {
        self.errors.push(syn::Error::new_spanned(&loc.0, message));
    }

    /// Checks one stage and its activation; returns the shape after them (`None` if unknown).
    fn stage(&mut self, stage: &Stage, shape: Option<Shape>) -> Option<Shape> {
        let name = stage.name.to_string();
        let params_before = self.model.param_count;
        let macs_before = self.model.macs;
        let (mut kind_text, mut after) = self.layer(&name, &stage.layer, shape);
        if let Some(act) = &stage.activation {
            let kind = act.kind.to_string();
            if is_activation(&kind) {
                let (text, out) = self.layer(&name, act, after);
                kind_text = format!("{kind_text} -> {text}");
                after = out;
            } else {
                let message = if is_layer(&kind) {
                    msg::not_an_activation(&name, &kind)
                } else {
                    msg::unknown_layer(&kind)
                };
                self.errors.error(act.kind.span(), message);
                after = None;
            }
        }
        if let (Some(Shape::Image(_)), Some(Shape::Flat(_))) = (shape, after) {
            self.flat_since = Some(name.clone());
        }
        if let Some(shape) = after {
            let params = self.model.param_count - params_before;
            let macs = self.model.macs - macs_before;
            self.model.rows.push(Row {
                stage: name,
                kind: kind_text,
                shape,
                params,
                macs,
            });
        }
        after
    }

    /// Checks one layer against the shape flowing in: returns its summary text and the shape
    /// after it, and records its op and parameters.
    fn layer(&mut self, stage: &str, layer: &Layer, shape: Option<Shape>) -> (String, Option<Shape>) {
        let kind = layer.kind.to_string();
        match kind.as_str() {
            "Conv2d" => self.conv(stage, layer, shape),
            "MaxPool2d" => self.pool(stage, layer, shape, PoolKind::Max),
            "AvgPool2d" => self.pool(stage, layer, shape, PoolKind::Avg),
            "Dense" => self.dense(stage, layer, shape),
            "Flatten" => {
                self.args(stage, layer, 0, &[]);
                match shape {
                    Some(Shape::Image(d)) => (kind, Some(Shape::Flat(d[0] * d[1] * d[2]))),
                    Some(flat) => {
                        self.err(&layer.loc, msg::already_flat(stage, &flat));
                        (kind, None)
                    }
                    None => (kind, None),
                }
            }
            "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu" => {
                let act = self.activation(stage, layer);
                let (Some(act), Some(shape)) = (act, shape) else {
                    return (kind, None);
                };
                let n = shape.len();
                if !self.op(
                    stage,
                    layer,
                    shape,
                    OpKind::Act(act),
                    Cost {
                        in_len: n,
                        out_len: n,
                        param_len: 0,
                        macs: 0,
                        scratch_len: 0,
                    },
                ) {
                    return (kind, None);
                }
                let text = match act {
                    Activation::LeakyRelu(s) => format!("LeakyRelu({s})"),
                    _ => kind,
                };
                (text, Some(shape))
            }
            _ => {
                self.errors.error(layer.kind.span(), msg::unknown_layer(&kind));
                (kind, None)
            }
        }
    }

    fn activation(&mut self, stage: &str, layer: &Layer) -> Option<Activation> {
        let kind = layer.kind.to_string();
        if kind != "LeakyRelu" {
            self.args(stage, layer, 0, &[]);
            return Some(match kind.as_str() {
                "Relu" => Activation::Relu,
                "Sigmoid" => Activation::Sigmoid,
                _ => Activation::Tanh,
            });
        }
        let args = self.args(stage, layer, 1, &[])?;
        let slope = match args.positional.first() {
            None => Activation::DEFAULT_NEGATIVE_SLOPE,
            Some(Value::Int(v, _)) => *v as f32,
            Some(Value::Float(v, _)) if v.is_finite() && (*v as f32).is_finite() => *v as f32,
            Some(other) => {
                self.err(other.loc(), msg::bad_slope(stage, &other.text()));
                return None;
            }
        };
        Some(Activation::LeakyRelu(slope))
    }

    fn conv(&mut self, stage: &str, layer: &Layer, shape: Option<Shape>) -> (String, Option<Shape>) {
        let example = "Conv2d(6, kernel = 3)";
        let Some(args) = self.args(stage, layer, 1, &["kernel", "stride", "padding", "bias"]) else {
            return ("Conv2d".into(), None);
        };
        let out = match args.positional.first() {
            Some(v) => self.size(stage, "the number of output channels", v, 1),
            None => {
                self.err(
                    &layer.loc,
                    msg::missing_argument(stage, "the number of output channels", example),
                );
                None
            }
        };
        let kernel = match args.named("kernel") {
            Some(v) => self.pair(stage, "`kernel`", v, 1),
            None => {
                self.err(&layer.loc, msg::missing_argument(stage, "argument `kernel`", example));
                None
            }
        };
        let stride = args
            .named("stride")
            .map_or(Some([1, 1]), |v| self.pair(stage, "`stride`", v, 1));
        let padding = match args.named("padding") {
            None => Some([0, 0]),
            // PyTorch spells some paddings as strings; say which number means the same.
            Some(Value::Other(loc)) if loc.0.to_string().starts_with('"') => {
                self.err(loc, msg::padding_string(stage, &loc.0.to_string(), kernel));
                None
            }
            Some(v) => self.pair(stage, "`padding`", v, 0),
        };
        let bias = args
            .named("bias")
            .map_or(Some(true), |v| self.boolean(stage, "bias", v));
        let (Some(out), Some(kernel), Some(stride), Some(padding), Some(bias)) = (out, kernel, stride, padding, bias)
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
        text += if bias { ")" } else { ", no bias)" };
        let Some(shape) = self.image(stage, "Conv2d", layer, shape) else {
            return (text, None);
        };
        let Shape::Image([c, h, w]) = shape else {
            return (text, None);
        };
        let padded = [
            h.checked_add(padding[0].saturating_mul(2)),
            w.checked_add(padding[1].saturating_mul(2)),
        ];
        let [Some(padded_h), Some(padded_w)] = padded else {
            self.err(
                args.named("padding").map_or(&layer.loc, Value::loc),
                msg::overflow(stage, "padded input", &shape, Limit::Count),
            );
            return (text, None);
        };
        let (Some(oh), Some(ow)) = (
            conv_out(h, kernel[0], stride[0], padding[0]),
            conv_out(w, kernel[1], stride[1], padding[1]),
        ) else {
            // The padding that would make the kernel fit, per axis: ceil((k - size) / 2).
            let need = [
                kernel[0].saturating_sub(h).div_ceil(2).max(padding[0]),
                kernel[1].saturating_sub(w).div_ceil(2).max(padding[1]),
            ];
            let loc = args.named("kernel").map_or(&layer.loc, Value::loc);
            self.err(
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
            // At least the larger of the two paths' scratch (`Conv2d::scratch_len`): two
            // unfolded samples, `[C*KH*KW, OH*OW]` each; for stride 1, two padded samples, `OC`
            // wide rows of `(OH-1)*PW + OW` columns, two weights, two outputs, and `C*KH*KW` rows
            // of a margin of `KH*PW + KW` and a padded image (rounded up by at most 16).
            elems(&[2, c, kernel[0], kernel[1], oh, ow]).and_then(|unfolded| {
                let padded = count(&[2, c, padded_h, padded_w])?;
                let wide = count(&[oh - 1, padded_w])?.checked_add(ow)?;
                let weight = count(&[out, c, kernel[0], kernel[1]])?;
                let row = count(&[kernel[0].checked_add(padded_h)?, padded_w])?.checked_add(kernel[1] + 16)?;
                let direct = count(&[out, wide])?
                    .checked_add(padded)?
                    .checked_add(count(&[2, weight])?)?
                    .checked_add(count(&[2, out, oh, ow])?)?
                    .checked_add(count(&[c, kernel[0], kernel[1], row])?)?;
                elems(&[unfolded.max(direct)])
            }),
        );
        let (Some(weight_len), Some(out_len), Some(macs), Some(scratch_len)) = sizes else {
            let (what, limit) = match sizes {
                (None, ..) => ("weight", Limit::Memory),
                (_, None, ..) => ("output", Limit::Memory),
                (_, _, None, _) => ("number of multiply-adds", Limit::Count),
                _ => ("scratch for the unfolded input", Limit::Memory),
            };
            self.err(&layer.loc, msg::overflow(stage, what, &shape, limit));
            return (text, None);
        };
        // Cannot overflow: the bias is no longer than the weight, and both are below MAX_ELEMS.
        let param_len = weight_len + if bias { out } else { 0 };
        let cost = Cost {
            in_len: shape.len(),
            out_len,
            param_len,
            macs,
            scratch_len,
        };
        if !self.op(
            stage,
            layer,
            shape,
            OpKind::Conv(Conv2d::new([c, h, w], out, kernel, stride, padding, bias)),
            cost,
        ) {
            return (text, None);
        }
        self.model.param(stage, "weight", weight.to_vec());
        if bias {
            self.model.param(stage, "bias", vec![out]);
        }
        (text, Some(Shape::Image([out, oh, ow])))
    }

    fn pool(&mut self, stage: &str, layer: &Layer, shape: Option<Shape>, kind: PoolKind) -> (String, Option<Shape>) {
        let name = if kind == PoolKind::Max {
            "MaxPool2d"
        } else {
            "AvgPool2d"
        };
        let Some(args) = self.args(stage, layer, 1, &["stride"]) else {
            return (name.into(), None);
        };
        let kernel = match args.positional.first() {
            Some(v) => self.pair(stage, "the window size", v, 1),
            None => {
                self.err(
                    &layer.loc,
                    msg::missing_argument(stage, "the window size", &format!("{name}(2)")),
                );
                None
            }
        };
        let Some(kernel) = kernel else {
            return (name.into(), None);
        };
        let Some(stride) = args
            .named("stride")
            .map_or(Some(kernel), |v| self.pair(stage, "`stride`", v, 1))
        else {
            return (name.into(), None);
        };
        let mut text = format!("{name}({}x{}", kernel[0], kernel[1]);
        if stride != kernel {
            text += &format!(", stride {}", msg::pair(stride));
        }
        text += ")";
        let Some(shape) = self.image(stage, name, layer, shape) else {
            return (text, None);
        };
        let Shape::Image([c, h, w]) = shape else {
            return (text, None);
        };
        let (Some(oh), Some(ow)) = (pool_out(h, kernel[0], stride[0]), pool_out(w, kernel[1], stride[1])) else {
            self.err(
                args.positional.first().map_or(&layer.loc, |v| v.loc()),
                msg::window_too_big(stage, kernel, [c, h, w]),
            );
            return (text, None);
        };
        let cost = Cost {
            in_len: shape.len(),
            out_len: c * oh * ow,
            param_len: 0,
            macs: 0,
            scratch_len: 0,
        };
        if !self.op(
            stage,
            layer,
            shape,
            OpKind::Pool(Pool2d::new(kind, [c, h, w], kernel, stride)),
            cost,
        ) {
            return (text, None);
        }
        (text, Some(Shape::Image([c, oh, ow])))
    }

    fn dense(&mut self, stage: &str, layer: &Layer, shape: Option<Shape>) -> (String, Option<Shape>) {
        let Some(args) = self.args(stage, layer, 1, &["bias"]) else {
            return ("Dense".into(), None);
        };
        let out = match args.positional.first() {
            Some(v) => self.size(stage, "the number of outputs", v, 1),
            None => {
                self.err(
                    &layer.loc,
                    msg::missing_argument(stage, "the number of outputs", "Dense(10)"),
                );
                None
            }
        };
        let bias = args
            .named("bias")
            .map_or(Some(true), |v| self.boolean(stage, "bias", v));
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
                self.errors.error(layer.kind.span(), msg::needs_flat(stage, &image));
                return (text, None);
            }
            None => return (text, None),
        };
        let Some(weight_len) = elems(&[inputs, out]) else {
            self.err(
                &layer.loc,
                msg::overflow(stage, "weight", &Shape::Flat(inputs), Limit::Memory),
            );
            return (text, None);
        };
        // Cannot overflow: the bias is no longer than the weight, and both are below MAX_ELEMS.
        let param_len = weight_len + if bias { out } else { 0 };
        let cost = Cost {
            in_len: inputs,
            out_len: out,
            param_len,
            macs: weight_len,
            scratch_len: 0,
        };
        if !self.op(
            stage,
            layer,
            Shape::Flat(inputs),
            OpKind::Dense(Dense::new(inputs, out, bias)),
            cost,
        ) {
            return (text, None);
        }
        self.model.param(stage, "weight", vec![out, inputs]);
        if bias {
            self.model.param(stage, "bias", vec![out]);
        }
        (text, Some(Shape::Flat(out)))
    }

    /// Adds an op to the model; reports the total that would no longer fit, if one would not.
    fn op(&mut self, stage: &str, layer: &Layer, shape: Shape, kind: OpKind, cost: Cost) -> bool {
        match self.model.op(kind, cost) {
            Ok(()) => true,
            Err((what, limit)) => {
                self.err(&layer.loc, msg::overflow(stage, what, &shape, limit));
                false
            }
        }
    }

    fn image(&mut self, stage: &str, kind: &str, layer: &Layer, shape: Option<Shape>) -> Option<Shape> {
        match shape {
            Some(Shape::Flat(n)) => {
                let message = msg::needs_image(stage, kind, &Shape::Flat(n), self.flat_since.as_deref());
                self.errors.error(layer.kind.span(), message);
                None
            }
            other => other,
        }
    }
}

fn is_activation(kind: &str) -> bool {
    matches!(kind, "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu")
}

fn is_layer(kind: &str) -> bool {
    matches!(kind, "Conv2d" | "MaxPool2d" | "AvgPool2d" | "Flatten" | "Dense")
}
