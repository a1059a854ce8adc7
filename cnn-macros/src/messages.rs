//! The wording of every diagnostic, in one place, so messages stay consistent.

use crate::check::Shape;

pub const LAYER_KINDS: &str = "Conv2d, MaxPool2d, AvgPool2d, Flatten, Dense, Relu, Sigmoid, Tanh, LeakyRelu";

/// `[a, b]` or `a` for a pair whose halves agree, `(a, b)` otherwise.
pub fn pair(p: [usize; 2]) -> String {
    if p[0] == p[1] {
        p[0].to_string()
    } else {
        format!("({}, {})", p[0], p[1])
    }
}

pub fn missing_input() -> String {
    "missing `input`: the first entry must give the shape of one sample, `input: [C, H, W]` for an image or `input: [N]` for a vector".into()
}

pub fn input_not_first() -> String {
    "`input` must be the first entry, before every stage".into()
}

pub fn duplicate_input() -> String {
    "`input` is declared twice; keep one".into()
}

pub fn input_rank(rank: usize) -> String {
    format!("`input` must have rank 1 (`[N]`) or 3 (`[C, H, W]`), found rank {rank}")
}

pub fn input_dim_not_literal(text: &str) -> String {
    format!("`input` dimensions must be integer literals, found `{text}`")
}

pub fn input_dim_zero() -> String {
    "`input` dimensions must be at least 1, found 0".into()
}

pub fn input_too_large() -> String {
    "`input` is too large: its element count overflows `usize`".into()
}

pub fn no_stages() -> String {
    "the network has no stages; add at least one after `input`, e.g. `fc: Dense(10)`".into()
}

pub fn reserved_name() -> String {
    "`input` is reserved for the input shape; give this stage another name".into()
}

pub fn duplicate_stage(name: &str) -> String {
    format!("duplicate stage name `{name}`")
}

pub fn not_snake_case(name: &str) -> String {
    format!("stage name `{name}` must be snake_case (lowercase letters, digits and `_`): it becomes `{name}.weight` in weight files")
}

pub fn unknown_layer(kind: &str) -> String {
    format!("unknown layer `{kind}`; expected one of {LAYER_KINDS}")
}

pub fn not_an_activation(stage: &str, kind: &str) -> String {
    format!("`{stage}`: only an activation may follow `->` (Relu, Sigmoid, Tanh, LeakyRelu), found `{kind}`; declare it as a stage of its own")
}

pub fn unknown_argument(stage: &str, arg: &str, allowed: &[&str]) -> String {
    if allowed.is_empty() {
        return format!("`{stage}`: unknown argument `{arg}`; this layer takes no named arguments");
    }
    let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
    format!("`{stage}`: unknown argument `{arg}`; expected one of {}", list.join(", "))
}

pub fn duplicate_argument(stage: &str, arg: &str) -> String {
    format!("`{stage}`: argument `{arg}` is given twice")
}

pub fn no_arguments(stage: &str, kind: &str) -> String {
    format!("`{stage}`: {kind} takes no arguments")
}

pub fn extra_positional(stage: &str, kind: &str, takes: &str) -> String {
    format!("`{stage}`: too many arguments without a name; {kind} takes {takes}")
}

pub fn missing_argument(stage: &str, what: &str, example: &str) -> String {
    format!("`{stage}`: missing {what}; write e.g. `{example}`")
}

pub fn not_integer(stage: &str, arg: &str, text: &str, pair_ok: bool) -> String {
    let want = if pair_ok { "an integer or a pair `(h, w)`" } else { "an integer" };
    format!("`{stage}`: `{arg}` must be {want}, found `{text}`")
}

pub fn bad_tuple(stage: &str, arg: &str, len: usize) -> String {
    format!("`{stage}`: `{arg}` must be an integer or a pair `(h, w)`, found a tuple of {len}")
}

pub fn too_small(stage: &str, arg: &str, min: usize, got: usize) -> String {
    format!("`{stage}`: `{arg}` must be at least {min}, found {got}")
}

pub fn too_large(stage: &str, arg: &str, text: &str) -> String {
    format!("`{stage}`: `{arg}` = {text} does not fit in `usize`")
}

pub fn not_bool(stage: &str, arg: &str, text: &str) -> String {
    format!("`{stage}`: `{arg}` must be `true` or `false`, found `{text}`")
}

pub fn bad_slope(stage: &str, text: &str) -> String {
    format!("`{stage}`: the negative slope must be a finite number, e.g. `LeakyRelu(0.2)`, found `{text}`")
}

pub fn needs_image(stage: &str, kind: &str, shape: &Shape) -> String {
    format!("`{stage}`: {kind} needs an image input [C, H, W] but receives {shape}; move it before `Flatten`, or declare `input: [C, H, W]`")
}

pub fn needs_flat(stage: &str, shape: &Shape) -> String {
    format!("`{stage}`: Dense needs a flat input but receives {shape}; add `flatten: Flatten` before it")
}

pub fn already_flat(stage: &str, shape: &Shape) -> String {
    format!("`{stage}`: the input is already flat ({shape}); remove this `Flatten`")
}

pub fn kernel_too_big(stage: &str, kernel: [usize; 2], shape: &Shape, padded: [usize; 2], padding: [usize; 2], need: [usize; 2]) -> String {
    format!(
        "`{stage}`: a {}x{} kernel does not fit its input {shape} ({}x{} after padding {}); use a smaller kernel, or padding >= {}",
        kernel[0],
        kernel[1],
        padded[0],
        padded[1],
        pair(padding),
        pair(need)
    )
}

pub fn window_too_big(stage: &str, kernel: [usize; 2], shape: &Shape) -> String {
    format!("`{stage}`: a {}x{} window does not fit its input {shape}; use a smaller window, or remove this pool", kernel[0], kernel[1])
}

pub fn overflow(stage: &str, what: &str) -> String {
    format!("`{stage}`: the {what} overflows `usize`; these sizes cannot be built")
}
