//! `Flatten`: `[C, H, W] -> [C*H*W]`. No kernel call: the plan transposes a channel-major image
//! back to sample-major where a stage needs that.

use super::{Built, Kind};
use crate::check::Checker;
use crate::ir::Shape;
use crate::messages as msg;
use crate::parse::Layer;

pub const FLATTEN: Kind = Kind {
    name: "Flatten",
    activation: false,
    check,
};

fn check(cx: &mut Checker, stage: &str, layer: &Layer, shape: Option<Shape>) -> (String, Option<Built>) {
    let kind = "Flatten".to_string();
    cx.args(stage, layer, 0, &[]);
    match shape {
        Some(Shape::Image(d)) => (kind, Some(Built::Same(Shape::Flat(d[0] * d[1] * d[2])))),
        Some(flat) => {
            cx.err(&layer.loc, msg::already_flat(stage, &flat));
            (kind, None)
        }
        None => (kind, None),
    }
}
