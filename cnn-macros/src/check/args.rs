//! A layer's arguments: sorting them into positional and named, and reading their values.

use super::Checker;
use crate::messages as msg;
use crate::parse::{Arg, Layer, Value};

#[derive(Default)]
pub struct Args<'a> {
    pub positional: Vec<&'a Value>,
    pub named: Vec<(String, &'a Value)>,
}

impl<'a> Args<'a> {
    pub fn named(&self, key: &str) -> Option<&'a Value> {
        self.named.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl Checker {
    /// Sorts a layer's arguments into positional and named, checking names and counts.
    pub fn args<'a>(
        &mut self,
        stage: &str,
        layer: &'a Layer,
        max_positional: usize,
        allowed: &[&str],
    ) -> Option<Args<'a>> {
        let kind = layer.kind.to_string();
        let mut args = Args::default();
        let mut ok = true;
        for Arg { name, value } in &layer.args {
            match name {
                None if args.positional.len() < max_positional => args.positional.push(value),
                None => {
                    ok = false;
                    let text = value.text();
                    let message = match (max_positional, kind.as_str()) {
                        (0, _) => msg::no_arguments(stage, &kind),
                        (_, "Conv2d") => msg::extra_positional(
                            stage,
                            &kind,
                            &format!("one, the output channels (the input channels come from the stage before); name the others, e.g. `kernel = {text}`"),
                        ),
                        (_, "Dense") => msg::extra_positional(stage, &kind, "one, the number of outputs (the number of inputs comes from the stage before)"),
                        (_, "Dropout") => msg::extra_positional(stage, &kind, "one, the drop probability"),
                        (_, "LeakyRelu") => msg::extra_positional(stage, &kind, "at most one, the negative slope"),
                        _ => msg::extra_positional(stage, &kind, &format!("one, the window size; name the stride, e.g. `stride = {text}`")),
                    };
                    self.err(value.loc(), message);
                }
                Some(ident) => {
                    let key = ident.to_string();
                    if !allowed.contains(&key.as_str()) {
                        ok = false;
                        let message = if allowed.is_empty() && max_positional == 0 {
                            msg::no_arguments(stage, &kind)
                        } else {
                            msg::unknown_argument(stage, &key, allowed)
                        };
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
    pub fn size(&mut self, stage: &str, arg: &str, value: &Value, min: usize) -> Option<usize> {
        match value {
            Value::Int(v, _) if *v >= min => Some(*v),
            Value::Int(v, loc) => {
                self.err(loc, msg::too_small(stage, arg, min, &v.to_string()));
                None
            }
            Value::Float(v, loc) if *v < 0.0 => {
                self.err(loc, msg::too_small(stage, arg, min, &value.text()));
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
    pub fn pair(&mut self, stage: &str, arg: &str, value: &Value, min: usize) -> Option<[usize; 2]> {
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
            Value::Float(v, _) if *v < 0.0 => self.size(stage, arg, value, min).map(|v| [v, v]),
            other => {
                self.err(other.loc(), msg::not_integer(stage, arg, &other.text(), true));
                None
            }
        }
    }

    /// A finite number, integer or float (range checks are the caller's).
    pub fn float(&mut self, stage: &str, arg: &str, value: &Value) -> Option<f64> {
        match value {
            Value::Int(v, _) => Some(*v as f64),
            Value::Float(v, _) if v.is_finite() => Some(*v),
            other => {
                self.err(other.loc(), msg::not_number(stage, arg, &other.text()));
                None
            }
        }
    }

    pub fn boolean(&mut self, stage: &str, arg: &str, value: &Value) -> Option<bool> {
        match value {
            Value::Bool(b, _) => Some(*b),
            other => {
                self.err(other.loc(), msg::not_bool(stage, arg, &other.text()));
                None
            }
        }
    }
}
