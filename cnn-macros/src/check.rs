//! Pass 2: validate the declaration and compute every stage's shape, parameters and cost,
//! building the graph of [`ir`](crate::ir).
//!
//! This module walks the declaration (input, stages, groups and residual blocks, names); what a
//! layer kind means (its arguments, shape rule, cost and summary text) lives in its module under
//! [`kinds`](crate::kinds). All independent errors are collected. A stage whose output shape is
//! unknown after an error leaves the shape after it unknown, and later stages then skip the
//! checks that need it, so one mistake reports once; a stage that keeps its input's shape
//! (an activation, BatchNorm, Dropout) passes it on even when its arguments are wrong.

use crate::ir::{Model, Node, Op, Param, Partial, Row, Shape, ValueId, INPUT, MAX_ELEMS};
use crate::kinds::{self, Built};
use crate::messages::{self as msg, Limit};
use crate::parse::{Body, Decl, Entry, Group, Layer, Loc, Name, Stage, Value};
use crate::report::Errors;
use proc_macro2::Span;
use std::collections::HashSet;
use std::ops::Range;

pub mod args;

/// What flows from one stage to the next: a value of the graph and its shape (a `Flatten`
/// changes the shape, not the value).
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub value: ValueId,
    pub shape: Shape,
}

pub fn check(decl: &Decl) -> Result<Model, (syn::Error, Partial)> {
    let mut cx = Checker::default();
    let name_span = decl.header.name.span();
    if decl.entries.is_empty() {
        return Err((syn::Error::new(name_span, msg::empty_network()), Partial::default()));
    }
    let input = cx.input(decl);
    if let Some(shape) = input {
        cx.model.values.push(shape);
    }
    let flow = input.map(|shape| Flow { value: INPUT, shape });
    let stages = decl.entries.iter().filter(|e| matches!(e, Entry::Stage(_))).count();
    let out = cx.stages("", &decl.entries, flow, None);
    if stages == 0 {
        cx.errors.error(name_span, msg::no_stages());
    }
    let partial = Partial {
        input,
        output_len: out.map(|f| f.shape.len()),
    };
    match (cx.errors.into_result(), input, out) {
        (Ok(()), Some(input), Some(out)) => {
            let sites = std::mem::take(&mut cx.model.sites);
            let model = cx.model.finish(input, out);
            check_memory(&model, &sites).map_err(|e| (e, partial))?;
            Ok(model)
        }
        (Err(e), _, _) => Err((e, partial)),
        // Unreachable in practice: an unknown shape always comes with an error.
        (Ok(()), _, _) => Err((
            syn::Error::new(name_span, "cnn!: could not compute the network's shapes"),
            partial,
        )),
    }
}

#[derive(Default)]
pub struct Checker {
    pub errors: Errors,
    model: Builder,
    /// The stage that flattened the image, for the hint when a later stage needs one.
    pub flat_since: Option<String>,
    /// Dropout stages so far: each gets its own masks.
    pub dropouts: u32,
}

#[derive(Default)]
struct Builder {
    values: Vec<Shape>,
    nodes: Vec<Node>,
    params: Vec<Param>,
    param_count: usize,
    buffers: Vec<Param>,
    buffer_count: usize,
    ones: Vec<Range<usize>>,
    zeros: Vec<Range<usize>>,
    macs: usize,
    rows: Vec<Row>,
    /// Per node: its stage, where it is declared, and the shape flowing in (for messages).
    sites: Vec<(String, Loc, Shape)>,
}

/// What one op adds to the network's totals; already known to fit.
pub struct Cost {
    pub macs: usize,
}

impl Builder {
    /// Adds an op's cost to the totals, or names the total that would no longer fit (and
    /// records nothing).
    fn cost(&mut self, cost: &Cost) -> Result<(), (&'static str, Limit)> {
        // The memory a training step needs is checked on the plan, once the graph is whole
        // (`check_memory`): the same computation as the generated `workspace_len`.
        self.macs = self
            .macs
            .checked_add(cost.macs)
            .ok_or(("network's number of multiply-adds", Limit::Count))?;
        Ok(())
    }

    fn finish(self, input: Shape, out: Flow) -> Model {
        Model {
            input,
            output_len: out.shape.len(),
            values: self.values,
            nodes: self.nodes,
            output: out.value,
            params: self.params,
            param_count: self.param_count,
            buffers: self.buffers,
            buffer_count: self.buffer_count,
            ones: self.ones,
            zeros: self.zeros,
            macs: self.macs,
            rows: self.rows,
        }
    }
}

/// A training step keeps every activation, the gradient buffers and the scratch of one sample
/// in one buffer, `workspace_len(1)` floats: that buffer must be possible. Reported on the stage
/// after which it no longer fits.
fn check_memory(model: &Model, sites: &[(String, Loc, Shape)]) -> Result<(), syn::Error> {
    let plan = crate::plan::plan(model);
    let Some(step) = plan.first_step_over(MAX_ELEMS) else {
        return Ok(());
    };
    // A transpose the plan added counts against the node before it.
    let node = plan.steps[..=step].iter().rev().find_map(|s| s.node).unwrap_or(0);
    let Some((stage, loc, shape)) = sites.get(node) else {
        return Ok(());
    };
    let message = msg::overflow(stage, "working memory of a training step", shape, Limit::Memory);
    Err(syn::Error::new_spanned(&loc.0, message))
}

/// Product of sizes, `None` on overflow: for counts, such as multiply-adds.
pub fn count(xs: &[usize]) -> Option<usize> {
    xs.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x))
}

/// Product of sizes, `None` unless a buffer of that many `f32`s can exist.
pub fn elems(xs: &[usize]) -> Option<usize> {
    count(xs).filter(|&n| n <= MAX_ELEMS)
}

/// Where a table entry goes.
#[derive(Clone, Copy)]
pub enum Table {
    Params,
    Buffers,
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

    /// The stages of a body in order (`prefix` is the group's path and a dot, or empty), from
    /// `flow`; returns what flows out of the last. `group` is the enclosing group's kind.
    fn stages(&mut self, prefix: &str, entries: &[Entry], mut flow: Option<Flow>, group: Option<&str>) -> Option<Flow> {
        let mut names = HashSet::new();
        for entry in entries {
            match entry {
                Entry::Stage(stage) => {
                    let path = format!("{prefix}{}", stage.name);
                    self.name(&stage.name, &path, group.is_some(), &mut names);
                    flow = self.stage(&path, stage, flow);
                }
                Entry::Input(input) if group.is_some() => {
                    let group = prefix.strip_suffix('.').unwrap_or(prefix);
                    self.errors.error(input.key.span(), msg::input_in_group(group));
                }
                Entry::Input(_) => {}
            }
        }
        flow
    }

    /// Checks a stage's name (`path` is its full path, for messages).
    fn name(&mut self, name: &Name, path: &str, in_group: bool, seen: &mut HashSet<String>) {
        let text = &name.text;
        if name.int {
            if !in_group {
                self.errors.error(name.span, msg::int_name_outside_group(text));
            }
        } else if text == "input" {
            self.errors.error(name.span, msg::reserved_name());
        } else if !text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            self.errors.error(name.span, msg::not_snake_case(text));
        }
        if !seen.insert(text.clone()) {
            self.errors.error(name.span, msg::duplicate_stage(path));
        }
    }

    pub fn err(&mut self, loc: &Loc, message: String) {
        self.errors.push(syn::Error::new_spanned(&loc.0, message));
    }

    /// Checks one stage (a layer or a group) and its activation; returns what flows out.
    fn stage(&mut self, path: &str, stage: &Stage, flow: Option<Flow>) -> Option<Flow> {
        let params_before = self.model.param_count;
        let macs_before = self.model.macs;
        let row = self.model.rows.len();
        let (mut kind_text, mut after) = match &stage.body {
            Body::Layer(layer) => self.layer(path, layer, flow),
            Body::Group(group) => self.group(path, &stage.name, group, flow),
        };
        if let Some(act) = &stage.activation {
            let kind = act.kind.to_string();
            match kinds::find(&kind) {
                Some(k) if k.activation => {
                    let (text, out) = self.layer(path, act, after);
                    kind_text = format!("{kind_text} -> {text}");
                    after = out;
                }
                // The activation is wrong, but would not have changed the shape: the stages
                // after it are still checked.
                found => {
                    let message = match found {
                        Some(_) => msg::not_an_activation(path, &kind),
                        None => msg::unknown_activation(path, &kind),
                    };
                    self.errors.error(act.kind.span(), message);
                }
            }
        }
        if let (
            Some(Shape::Image(_)),
            Some(Flow {
                shape: Shape::Flat(_), ..
            }),
        ) = (flow.map(|f| f.shape), after)
        {
            self.flat_since = Some(path.to_string());
        }
        if let Some(out) = after {
            let params = self.model.param_count - params_before;
            let macs = self.model.macs - macs_before;
            // A group's row comes before the rows of its stages.
            self.model.rows.insert(
                row,
                Row {
                    stage: path.to_string(),
                    kind: kind_text,
                    shape: out.shape,
                    params,
                    macs,
                },
            );
        }
        after
    }

    /// Checks one layer against what flows in: returns its summary text and what flows out,
    /// and records its op, parameters and buffers.
    pub fn layer(&mut self, stage: &str, layer: &Layer, flow: Option<Flow>) -> (String, Option<Flow>) {
        let kind = layer.kind.to_string();
        let Some(k) = kinds::find(&kind) else {
            self.errors.error(layer.kind.span(), msg::unknown_layer(&kind));
            return (kind, None);
        };
        let (text, built) = (k.check)(self, stage, layer, flow.map(|f| f.shape));
        let (Some(built), Some(flow)) = (built, flow) else {
            return (text, None);
        };
        let out = match built {
            Built::Same(shape) => Some(Flow {
                value: flow.value,
                shape,
            }),
            Built::Op { op, out, cost } => self.node(stage, &layer.loc, op, &[flow], out, cost),
        };
        (text, out)
    }

    /// Records an op reading `inputs` (the first one's shape is the one messages give) and
    /// giving a new value of shape `out`; reports the total that would no longer fit, if one
    /// would not.
    fn node(&mut self, stage: &str, loc: &Loc, op: Op, inputs: &[Flow], out: Shape, cost: Cost) -> Option<Flow> {
        if let Err((what, limit)) = self.model.cost(&cost) {
            let shape = inputs.first().map_or(out, |f| f.shape);
            self.err(loc, msg::overflow(stage, what, &shape, limit));
            return None;
        }
        let shape = inputs.first().map_or(out, |f| f.shape);
        self.model.sites.push((stage.to_string(), loc.clone(), shape));
        let inputs: Vec<ValueId> = inputs.iter().map(|f| f.value).collect();
        let value = self.model.values.len();
        self.model.values.push(out);
        self.model.nodes.push(Node {
            op,
            inputs,
            output: value,
        });
        Some(Flow { value, shape: out })
    }

    /// Adds named tensors `stage.what` to the parameter or buffer table; returns their range, or
    /// `None` (reported on `loc`) if the table would grow past the limit.
    pub fn tensors(
        &mut self,
        table: Table,
        stage: &str,
        loc: &Loc,
        shape: Shape,
        tensors: &[(&str, Vec<usize>)],
    ) -> Option<Range<usize>> {
        let (list, total) = match table {
            Table::Params => (&mut self.model.params, &mut self.model.param_count),
            Table::Buffers => (&mut self.model.buffers, &mut self.model.buffer_count),
        };
        let start = *total;
        let mut end = start;
        for (what, dims) in tensors {
            let Some(len) = elems(dims).and_then(|n| end.checked_add(n)).filter(|&n| n <= MAX_ELEMS) else {
                let what = match table {
                    Table::Params => "network's parameter buffer",
                    Table::Buffers => "network's buffers",
                };
                self.err(loc, msg::overflow(stage, what, &shape, Limit::Memory));
                return None;
            };
            list.push(Param {
                name: format!("{stage}.{what}"),
                shape: dims.clone(),
                offset: end,
            });
            end = len;
        }
        *total = end;
        Some(start..end)
    }

    /// Parameters declared so far.
    pub fn param_count(&self) -> usize {
        self.model.param_count
    }

    /// BatchNorm's weight starts at 1 and its bias at 0, not PyTorch's uniform default.
    pub fn init_constant(&mut self, ones: Range<usize>, zeros: Range<usize>) {
        self.model.ones.push(ones);
        self.model.zeros.push(zeros);
    }

    pub fn image(&mut self, stage: &str, kind: &str, layer: &Layer, shape: Option<Shape>) -> Option<Shape> {
        match shape {
            Some(Shape::Flat(n)) => {
                let message = msg::needs_image(stage, kind, &Shape::Flat(n), self.flat_since.as_deref());
                self.errors.error(layer.kind.span(), message);
                None
            }
            other => other,
        }
    }

    /// A group of stages: `Sequential` runs them in order; `Residual` adds its main path's
    /// output to its shortcut's (the identity when it has no `Shortcut`).
    fn group(&mut self, path: &str, name: &Name, group: &Group, flow: Option<Flow>) -> (String, Option<Flow>) {
        let kind = group.kind.to_string();
        if !kinds::BLOCKS.contains(&kind.as_str()) {
            let message = match kinds::find(&kind) {
                Some(_) => msg::layer_with_braces(path, &kind),
                None => msg::unknown_block(path, &kind),
            };
            self.errors.error(group.kind.span(), message);
            return (kind, None);
        }
        if group.entries.is_empty() {
            self.errors.error(name.span, msg::empty_group(path, &kind));
            return (kind, None);
        }
        let prefix = format!("{path}.");
        match kind.as_str() {
            "Sequential" => {
                let out = self.stages(&prefix, &group.entries, flow, Some("Sequential"));
                (kind, out)
            }
            "Residual" => self.residual(path, &prefix, name.span, group, flow),
            "Shortcut" => {
                self.errors.error(name.span, msg::shortcut_outside_residual(path));
                (kind, None)
            }
            _ => unreachable!("`{kind}` is not one of the blocks"),
        }
    }

    fn residual(
        &mut self,
        path: &str,
        prefix: &str,
        span: Span,
        group: &Group,
        flow: Option<Flow>,
    ) -> (String, Option<Flow>) {
        let kind = "Residual".to_string();
        // The shortcut is an entry of the block like the others (its name is in the block's
        // namespace), but it reads the block's input, not the main path's.
        let is_shortcut = |e: &Entry| shortcut_of(e).is_some();
        let mut shortcuts = group.entries.iter().filter_map(shortcut_of);
        let shortcut = shortcuts.next();
        for (extra, _) in shortcuts {
            let first = shortcut.map_or(String::new(), |(s, _)| format!("{prefix}{}", s.name));
            let message = msg::second_shortcut(&format!("{prefix}{}", extra.name), &first);
            self.errors.error(extra.name.span, message);
        }
        let main: Vec<&Entry> = group.entries.iter().filter(|e| !is_shortcut(e)).collect();
        // Names are unique across the main path and the shortcut.
        let mut names = HashSet::new();
        let mut main_flow = flow;
        if main.is_empty() {
            self.errors.error(span, msg::empty_main_path(path));
            main_flow = None;
        }
        for entry in group.entries.iter() {
            match entry {
                Entry::Stage(stage) if is_shortcut(entry) => {
                    self.name(&stage.name, &format!("{prefix}{}", stage.name), true, &mut names);
                }
                Entry::Stage(stage) => {
                    let stage_path = format!("{prefix}{}", stage.name);
                    self.name(&stage.name, &stage_path, true, &mut names);
                    main_flow = self.stage(&stage_path, stage, main_flow);
                }
                Entry::Input(input) => self.errors.error(input.key.span(), msg::input_in_group(path)),
            }
        }
        let short_flow = match shortcut {
            None => flow,
            Some((stage, g)) => {
                let short_path = format!("{prefix}{}", stage.name);
                let row = self.model.rows.len();
                let params_before = self.model.param_count;
                let macs_before = self.model.macs;
                let out = if g.entries.is_empty() {
                    self.errors
                        .error(stage.name.span, msg::empty_group(&short_path, "Shortcut"));
                    None
                } else {
                    self.stages(&format!("{short_path}."), &g.entries, flow, Some("Shortcut"))
                };
                if let Some(act) = &stage.activation {
                    self.errors
                        .error(act.kind.span(), msg::activation_on_shortcut(&short_path));
                }
                if let Some(out) = out {
                    let row_data = Row {
                        stage: short_path,
                        kind: "Shortcut".into(),
                        shape: out.shape,
                        params: self.model.param_count - params_before,
                        macs: self.model.macs - macs_before,
                    };
                    self.model.rows.insert(row, row_data);
                }
                out
            }
        };
        let (Some(main), Some(short)) = (main_flow, short_flow) else {
            return (kind, None);
        };
        if main.shape != short.shape {
            let message = if let Some((stage, _)) = shortcut {
                msg::residual_mismatch_shortcut(path, &format!("{prefix}{}", stage.name), &main.shape, &short.shape)
            } else {
                msg::residual_mismatch(path, &main.shape, &short.shape)
            };
            self.errors.error(span, message);
            return (kind, None);
        }
        let cost = Cost { macs: 0 };
        let loc = Loc::of(&group.kind);
        let out = self.node(path, &loc, Op::Add, &[main, short], main.shape, cost);
        (kind, out)
    }
}

/// The stage of an entry that is a `Shortcut` group, and the group.
fn shortcut_of(entry: &Entry) -> Option<(&Stage, &Group)> {
    match entry {
        Entry::Stage(s) => match &s.body {
            Body::Group(g) if g.kind == "Shortcut" => Some((s, g)),
            _ => None,
        },
        Entry::Input(_) => None,
    }
}
