//! Pass 2: validate the declaration and compute every stage's shape, parameters and cost.
//!
//! All independent errors are collected. A stage that fails leaves the shape after it unknown,
//! and later stages then skip the checks that need it, so one mistake reports once.

use crate::messages as msg;
use crate::parse::{Arg, Decl, Entry, Layer, Loc, Stage, Value};
use crate::report::Errors;
use cnn_runtime::activation::Activation;
use cnn_runtime::conv::Conv2d;
use cnn_runtime::dense::Dense;
use cnn_runtime::pool::{Pool2d, PoolKind};
use cnn_runtime::shape::{conv_out, pool_out};
use std::collections::HashSet;
use std::fmt;

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
    /// Elements of all op outputs of one sample.
    pub activations_len: usize,
    /// Largest op input or output of one sample: the size of each gradient buffer.
    pub max_len: usize,
    /// Scratch the convolutions need, independent of the batch.
    pub scratch_len: usize,
}

/// What is known of a declaration that has errors, for the stubbed struct.
#[derive(Clone, Debug, Default)]
pub struct Partial {
    pub input: Option<Shape>,
    pub output_len: Option<usize>,
}

pub fn check(decl: &Decl) -> Result<Model, (syn::Error, Partial)> {
    let mut cx = Checker::default();
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
        cx.errors.error(decl.name.span(), msg::no_stages());
    }
    let partial = Partial { input, output_len: shape.map(Shape::len) };
    match (cx.errors.into_result(), input, shape) {
        (Ok(()), Some(input), Some(output)) => Ok(cx.model.finish(input, output)),
        (Err(e), _, _) => Err((e, partial)),
        // Unreachable in practice: an unknown shape always comes with an error.
        (Ok(()), _, _) => Err((syn::Error::new(decl.name.span(), "cnn!: could not compute the network's shapes"), partial)),
    }
}

#[derive(Default)]
struct Checker {
    errors: Errors,
    model: Builder,
}

#[derive(Default)]
struct Builder {
    ops: Vec<Op>,
    params: Vec<Param>,
    param_count: usize,
    macs: usize,
    rows: Vec<Row>,
    overflowed: bool,
}

impl Builder {
    fn op(&mut self, kind: OpKind, in_len: usize, out_len: usize, param_len: usize) {
        let start = self.param_count;
        self.param_count += param_len;
        self.ops.push(Op { kind, in_len, out_len, params: start..self.param_count });
    }

    fn param(&mut self, stage: &str, what: &str, shape: Vec<usize>) {
        let offset = self.params.last().map_or(0, |p: &Param| p.offset + p.shape.iter().product::<usize>());
        self.params.push(Param { name: format!("{stage}.{what}"), shape, offset });
    }

    fn finish(self, input: Shape, output: Shape) -> Model {
        let activations_len = self.ops.iter().map(|o| o.out_len).sum();
        let max_len = self.ops.iter().map(|o| o.in_len.max(o.out_len)).max().unwrap_or(0);
        let scratch_len = self
            .ops
            .iter()
            .map(|o| match o.kind {
                OpKind::Conv(g) => g.scratch_len(),
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        Model {
            input,
            output_len: output.len(),
            ops: self.ops,
            params: self.params,
            param_count: self.param_count,
            macs: self.macs,
            rows: self.rows,
            activations_len,
            max_len,
            scratch_len,
        }
    }
}

/// Product of sizes, `None` on overflow.
fn product(xs: &[usize]) -> Option<usize> {
    xs.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x))
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
            if i != 0 {
                self.errors.error(input.key.span(), msg::input_not_first());
            }
            found = Some(input);
        }
        let Some(input) = found else {
            self.errors.error(decl.name.span(), msg::missing_input());
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
        // Every later size is a product of these; refuse what cannot even be counted.
        if product(&dims).is_none() {
            self.err(&input.loc, msg::input_too_large());
            return None;
        }
        Some(shape)
    }

    fn name(&mut self, stage: &Stage, seen: &mut HashSet<String>) {
        let name = stage.name.to_string();
        if name == "input" {
            self.errors.error(stage.name.span(), msg::reserved_name());
        } else if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
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
                let message = if is_layer(&kind) { msg::not_an_activation(&name, &kind) } else { msg::unknown_layer(&kind) };
                self.errors.error(act.kind.span(), message);
                after = None;
            }
        }
        if let Some(shape) = after {
            let params = self.model.param_count - params_before;
            let macs = self.model.macs - macs_before;
            self.model.rows.push(Row { stage: name, kind: kind_text, shape, params, macs });
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
                let (Some(act), Some(shape)) = (act, shape) else { return (kind, None) };
                let n = shape.len();
                self.model.op(OpKind::Act(act), n, n, 0);
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
        let Some(args) = self.args(stage, layer, 1, &["kernel", "stride", "padding", "bias"]) else { return ("Conv2d".into(), None) };
        let out = match args.positional.first() {
            Some(v) => self.size(stage, "out", v, 1),
            None => {
                self.err(&layer.loc, msg::missing_argument(stage, "the number of output channels", example));
                None
            }
        };
        let kernel = match args.named("kernel") {
            Some(v) => self.pair(stage, "kernel", v, 1),
            None => {
                self.err(&layer.loc, msg::missing_argument(stage, "argument `kernel`", example));
                None
            }
        };
        let stride = args.named("stride").map_or(Some([1, 1]), |v| self.pair(stage, "stride", v, 1));
        let padding = args.named("padding").map_or(Some([0, 0]), |v| self.pair(stage, "padding", v, 0));
        let bias = args.named("bias").map_or(Some(true), |v| self.boolean(stage, "bias", v));
        let (Some(out), Some(kernel), Some(stride), Some(padding), Some(bias)) = (out, kernel, stride, padding, bias) else {
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
        let Some(shape) = self.image(stage, "Conv2d", layer, shape) else { return (text, None) };
        let Shape::Image([c, h, w]) = shape else { return (text, None) };
        let padded = [h.checked_add(padding[0].saturating_mul(2)), w.checked_add(padding[1].saturating_mul(2))];
        let [Some(padded_h), Some(padded_w)] = padded else {
            self.err(args.named("padding").map_or(&layer.loc, Value::loc), msg::overflow(stage, "padded input"));
            return (text, None);
        };
        let (Some(oh), Some(ow)) = (conv_out(h, kernel[0], stride[0], padding[0]), conv_out(w, kernel[1], stride[1], padding[1])) else {
            // The padding that would make the kernel fit, per axis: ceil((k - size) / 2).
            let need = [kernel[0].saturating_sub(h).div_ceil(2).max(padding[0]), kernel[1].saturating_sub(w).div_ceil(2).max(padding[1])];
            let loc = args.named("kernel").map_or(&layer.loc, Value::loc);
            self.err(loc, msg::kernel_too_big(stage, kernel, &shape, [padded_h, padded_w], padding, need));
            return (text, None);
        };
        let weight = [out, c, kernel[0], kernel[1]];
        let (Some(weight_len), Some(out_len), Some(macs)) = (product(&weight), product(&[out, oh, ow]), product(&[out, oh, ow, c, kernel[0], kernel[1]])) else {
            self.err(&layer.loc, msg::overflow(stage, "size of this convolution"));
            return (text, None);
        };
        let geom = Conv2d::new([c, h, w], out, kernel, stride, padding, bias);
        if !self.account(stage, layer, weight_len, bias.then_some(out), macs) {
            return (text, None);
        }
        self.model.param(stage, "weight", weight.to_vec());
        if bias {
            self.model.param(stage, "bias", vec![out]);
        }
        self.model.op(OpKind::Conv(geom), shape.len(), out_len, geom.param_len());
        (text, Some(Shape::Image([out, oh, ow])))
    }

    fn pool(&mut self, stage: &str, layer: &Layer, shape: Option<Shape>, kind: PoolKind) -> (String, Option<Shape>) {
        let name = if kind == PoolKind::Max { "MaxPool2d" } else { "AvgPool2d" };
        let Some(args) = self.args(stage, layer, 1, &["stride"]) else { return (name.into(), None) };
        let kernel = match args.positional.first() {
            Some(v) => self.pair(stage, "kernel", v, 1),
            None => {
                self.err(&layer.loc, msg::missing_argument(stage, "the window size", &format!("{name}(2)")));
                None
            }
        };
        let Some(kernel) = kernel else { return (name.into(), None) };
        let Some(stride) = args.named("stride").map_or(Some(kernel), |v| self.pair(stage, "stride", v, 1)) else { return (name.into(), None) };
        let mut text = format!("{name}({}x{}", kernel[0], kernel[1]);
        if stride != kernel {
            text += &format!(", stride {}", msg::pair(stride));
        }
        text += ")";
        let Some(shape) = self.image(stage, name, layer, shape) else { return (text, None) };
        let Shape::Image([c, h, w]) = shape else { return (text, None) };
        let (Some(oh), Some(ow)) = (pool_out(h, kernel[0], stride[0]), pool_out(w, kernel[1], stride[1])) else {
            self.err(args.positional.first().map_or(&layer.loc, |v| v.loc()), msg::window_too_big(stage, kernel, &shape));
            return (text, None);
        };
        let geom = Pool2d::new(kind, [c, h, w], kernel, stride);
        self.model.op(OpKind::Pool(geom), shape.len(), c * oh * ow, 0);
        (text, Some(Shape::Image([c, oh, ow])))
    }

    fn dense(&mut self, stage: &str, layer: &Layer, shape: Option<Shape>) -> (String, Option<Shape>) {
        let Some(args) = self.args(stage, layer, 1, &["bias"]) else { return ("Dense".into(), None) };
        let out = match args.positional.first() {
            Some(v) => self.size(stage, "out", v, 1),
            None => {
                self.err(&layer.loc, msg::missing_argument(stage, "the number of outputs", "Dense(10)"));
                None
            }
        };
        let bias = args.named("bias").map_or(Some(true), |v| self.boolean(stage, "bias", v));
        let (Some(out), Some(bias)) = (out, bias) else { return ("Dense".into(), None) };
        let text = if bias { format!("Dense({out})") } else { format!("Dense({out}, no bias)") };
        let inputs = match shape {
            Some(Shape::Flat(n)) => n,
            Some(image) => {
                self.errors.error(layer.kind.span(), msg::needs_flat(stage, &image));
                return (text, None);
            }
            None => return (text, None),
        };
        let Some(weight_len) = inputs.checked_mul(out) else {
            self.err(&layer.loc, msg::overflow(stage, "weight size"));
            return (text, None);
        };
        if !self.account(stage, layer, weight_len, bias.then_some(out), weight_len) {
            return (text, None);
        }
        self.model.param(stage, "weight", vec![out, inputs]);
        if bias {
            self.model.param(stage, "bias", vec![out]);
        }
        let geom = Dense::new(inputs, out, bias);
        self.model.op(OpKind::Dense(geom), inputs, out, geom.param_len());
        (text, Some(Shape::Flat(out)))
    }

    /// Adds a layer's parameters and multiply-adds to the running totals, refusing overflow.
    fn account(&mut self, stage: &str, layer: &Layer, weight_len: usize, bias_len: Option<usize>, macs: usize) -> bool {
        let total = weight_len.checked_add(bias_len.unwrap_or(0)).and_then(|n| n.checked_add(self.model.param_count));
        let macs_total = self.model.macs.checked_add(macs);
        match (total, macs_total) {
            (Some(_), Some(m)) if !self.model.overflowed => {
                self.model.macs = m;
                true
            }
            _ => {
                self.model.overflowed = true;
                self.err(&layer.loc, msg::overflow(stage, "network's parameter or multiply-add count"));
                false
            }
        }
    }

    fn image(&mut self, stage: &str, kind: &str, layer: &Layer, shape: Option<Shape>) -> Option<Shape> {
        match shape {
            Some(Shape::Flat(n)) => {
                self.errors.error(layer.kind.span(), msg::needs_image(stage, kind, &Shape::Flat(n)));
                None
            }
            other => other,
        }
    }

    /// Sorts a layer's arguments into positional and named, checking names and counts.
    fn args<'a>(&mut self, stage: &str, layer: &'a Layer, max_positional: usize, allowed: &[&str]) -> Option<Args<'a>> {
        let kind = layer.kind.to_string();
        let mut args = Args::default();
        let mut ok = true;
        for Arg { name, value } in &layer.args {
            match name {
                None if args.positional.len() < max_positional => args.positional.push(value),
                None => {
                    ok = false;
                    let message = match (max_positional, kind.as_str()) {
                        (0, _) => msg::no_arguments(stage, &kind),
                        (_, "Conv2d") => msg::extra_positional(stage, &kind, "one, the output channels; name the others, e.g. `kernel = 3`"),
                        (_, "Dense") => msg::extra_positional(stage, &kind, "one, the number of outputs"),
                        (_, "LeakyRelu") => msg::extra_positional(stage, &kind, "at most one, the negative slope"),
                        _ => msg::extra_positional(stage, &kind, "one, the window size; name the stride, e.g. `stride = 1`"),
                    };
                    self.err(value.loc(), message);
                }
                Some(ident) => {
                    let key = ident.to_string();
                    if !allowed.contains(&key.as_str()) {
                        ok = false;
                        let message = if allowed.is_empty() && max_positional == 0 { msg::no_arguments(stage, &kind) } else { msg::unknown_argument(stage, &key, allowed) };
                        self.errors.error(ident.span(), message);
                    } else if args.named.iter().any(|(k, _)| *k == key) {
                        ok = false;
                        self.errors.error(ident.span(), msg::duplicate_argument(stage, &key));
                    } else {
                        args.named.push((key, value));
                    }
                }
            }
        }
        ok.then_some(args)
    }

    /// A positive (or, with `min` 0, non-negative) integer.
    fn size(&mut self, stage: &str, arg: &str, value: &Value, min: usize) -> Option<usize> {
        match value {
            Value::Int(v, _) if *v >= min => Some(*v),
            Value::Int(v, loc) => {
                self.err(loc, msg::too_small(stage, arg, min, *v));
                None
            }
            Value::TooLarge(loc) => {
                self.err(loc, msg::too_large(stage, arg, &value.text()));
                None
            }
            other => {
                self.err(other.loc(), msg::not_integer(stage, arg, &other.text(), false));
                None
            }
        }
    }

    /// An integer (used for both axes) or a pair `(h, w)`.
    fn pair(&mut self, stage: &str, arg: &str, value: &Value, min: usize) -> Option<[usize; 2]> {
        match value {
            Value::Tuple(items, _) if items.len() == 2 => {
                let h = self.size(stage, arg, &items[0], min);
                let w = self.size(stage, arg, &items[1], min);
                Some([h?, w?])
            }
            Value::Tuple(items, loc) => {
                self.err(loc, msg::bad_tuple(stage, arg, items.len()));
                None
            }
            Value::Int(..) | Value::TooLarge(..) => self.size(stage, arg, value, min).map(|v| [v, v]),
            other => {
                self.err(other.loc(), msg::not_integer(stage, arg, &other.text(), true));
                None
            }
        }
    }

    fn boolean(&mut self, stage: &str, arg: &str, value: &Value) -> Option<bool> {
        match value {
            Value::Bool(b, _) => Some(*b),
            other => {
                self.err(other.loc(), msg::not_bool(stage, arg, &other.text()));
                None
            }
        }
    }
}

#[derive(Default)]
struct Args<'a> {
    positional: Vec<&'a Value>,
    named: Vec<(String, &'a Value)>,
}

impl<'a> Args<'a> {
    fn named(&self, key: &str) -> Option<&'a Value> {
        self.named.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

fn is_activation(kind: &str) -> bool {
    matches!(kind, "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu")
}

fn is_layer(kind: &str) -> bool {
    matches!(kind, "Conv2d" | "MaxPool2d" | "AvgPool2d" | "Flatten" | "Dense")
}
