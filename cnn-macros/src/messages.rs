//! The wording of every diagnostic, in one place, so messages stay consistent.

use crate::ir::{Shape, MAX_ELEMS};
use crate::kinds::{BLOCKS, KINDS};

/// Every layer kind, comma-separated, in the table's order.
fn layer_kinds() -> String {
    KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// Every activation kind, comma-separated.
fn activation_kinds() -> String {
    KINDS
        .iter()
        .filter(|k| k.activation)
        .map(|k| k.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[a, b]` or `a` for a pair whose halves agree, `(a, b)` otherwise.
pub fn pair(p: [usize; 2]) -> String {
    if p[0] == p[1] {
        p[0].to_string()
    } else {
        format!("({}, {})", p[0], p[1])
    }
}

pub fn generic_network() -> String {
    "a network cannot be generic: every size is fixed in the declaration".into()
}

pub fn trailing_tokens() -> String {
    "unexpected tokens after the network's closing brace".into()
}

pub fn bad_stage_name(text: &str) -> String {
    format!(
        "`{text}` is not a stage name; write a snake_case name, e.g. `conv1`, or inside a group an integer, e.g. `0`"
    )
}

pub fn expected_colon(name: &str) -> String {
    format!("expected `:` after `{name}`, as in `{name}: Dense(10)`")
}

pub fn shape_on_stage(name: &str) -> String {
    format!("only `input` takes a shape in brackets; a stage needs a layer, e.g. `{name}: Dense(10)`")
}

pub fn argument_name() -> String {
    "an argument name must be a plain identifier, e.g. `kernel = 3`".into()
}

/// After a complete entry, something other than the `,` that ends it.
pub fn expected_comma(entry: &str, is_stage: bool, found: &str) -> String {
    if is_stage {
        format!("`{entry}`: expected `,` after this stage, or `-> Relu` to add an activation; found `{found}`")
    } else {
        format!("expected `,` after `input`, found `{found}`")
    }
}

pub fn missing_input() -> String {
    "missing `input`: the first entry must give the shape of one sample, `input: [C, H, W]` for an image or `input: [N]` for a vector".into()
}

pub fn input_not_first(first_stage: &str) -> String {
    format!("`input` must be the first entry; move it before `{first_stage}`")
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

pub fn input_too_large(dims: &[usize]) -> String {
    let dims: Vec<String> = dims.iter().map(ToString::to_string).collect();
    format!(
        "`input` is too large: [{}] has more than {MAX_ELEMS} elements, the limit for one buffer (16 GiB of `f32`); use smaller sizes",
        dims.join(", ")
    )
}

pub fn empty_network() -> String {
    "the network is empty; declare its input and stages, e.g. `input: [784], fc: Dense(10)`".into()
}

pub fn no_stages() -> String {
    "the network has no stages; add at least one after `input`, e.g. `fc: Dense(10)`".into()
}

pub fn reserved_name() -> String {
    "`input` is reserved for the input shape; give this stage another name".into()
}

/// `path` is the stage's full path: its name at the top level, `layer1.0.conv1` in a group.
pub fn duplicate_stage(path: &str) -> String {
    format!("duplicate stage name `{path}`")
}

pub fn not_snake_case(name: &str) -> String {
    format!("stage name `{name}` must be snake_case (lowercase letters, digits and `_`): it becomes `{name}.weight` in weight files")
}

pub fn unknown_layer(kind: &str) -> String {
    let hint = match kind {
        "Softmax" | "LogSoftmax" => "; a network ends with logits: the softmax belongs to the loss and to `predict`/`probabilities`, so remove it".to_string(),
        _ => match similar_layer(kind) {
            Some(known) => format!("; did you mean `{known}`?"),
            None => String::new(),
        },
    };
    if BLOCKS.contains(&kind) {
        return format!("`{kind}` is a block: it takes its stages in braces, e.g. `{kind} {{ conv: Conv2d(8, kernel = 3), relu: Relu }}`");
    }
    format!("unknown layer `{kind}`; expected one of {}{hint}", layer_kinds())
}

/// The layer a user most likely meant: the same name in another case, or PyTorch's name.
fn similar_layer(kind: &str) -> Option<&'static str> {
    let lower = kind.to_ascii_lowercase();
    let known = KINDS
        .iter()
        .map(|k| k.name)
        .chain(BLOCKS.iter().copied())
        .find(|k| k.to_ascii_lowercase() == lower);
    known.or(match lower.as_str() {
        "linear" | "fc" | "fullyconnected" => Some("Dense"),
        "conv" | "convolution" => Some("Conv2d"),
        "maxpool" | "maxpooling2d" => Some("MaxPool2d"),
        "avgpool" | "averagepooling2d" => Some("AvgPool2d"),
        "batchnorm" | "batchnormalization" => Some("BatchNorm2d"),
        "adaptiveavgpool2d" | "globalaveragepooling2d" | "globalavgpool" => Some("GlobalAvgPool2d"),
        _ => None,
    })
}

/// An unknown kind after `->`: only the activations are worth listing there.
pub fn unknown_activation(stage: &str, kind: &str) -> String {
    let hint = match kind {
        "Softmax" | "LogSoftmax" => "; a network ends with logits: the softmax belongs to the loss and to `predict`/`probabilities`, so remove it".to_string(),
        _ => match similar_layer(kind) {
            Some(known) => format!("; did you mean `{known}`?"),
            None => String::new(),
        },
    };
    format!(
        "`{stage}`: unknown activation `{kind}` after `->`; expected one of {}{hint}",
        activation_kinds()
    )
}

pub fn not_an_activation(stage: &str, kind: &str) -> String {
    format!(
        "`{stage}`: only an activation may follow `->` ({}), found `{kind}`; declare it as a stage of its own",
        activation_kinds()
    )
}

pub fn unknown_argument(stage: &str, arg: &str, allowed: &[&str]) -> String {
    if allowed.is_empty() {
        return format!("`{stage}`: unknown argument `{arg}`; this layer takes no named arguments");
    }
    let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
    format!(
        "`{stage}`: unknown argument `{arg}`; expected one of {}",
        list.join(", ")
    )
}

pub fn duplicate_argument(stage: &str, arg: &str) -> String {
    format!("`{stage}`: argument `{arg}` is given twice")
}

pub fn no_arguments(stage: &str, kind: &str) -> String {
    let hint = match kind {
        "Relu" => "; for a slope on negative inputs, use `LeakyRelu(0.01)`",
        "GlobalAvgPool2d" => {
            "; it always averages each channel to 1x1, like PyTorch's `AdaptiveAvgPool2d(1)`: write `GlobalAvgPool2d`"
        }
        _ => "",
    };
    format!("`{stage}`: {kind} takes no arguments{hint}")
}

pub fn extra_positional(stage: &str, kind: &str, takes: &str) -> String {
    format!("`{stage}`: too many unnamed arguments; {kind} takes {takes}")
}

pub fn missing_argument(stage: &str, what: &str, example: &str) -> String {
    format!("`{stage}`: missing {what}; write e.g. `{example}`")
}

pub fn not_integer(stage: &str, arg: &str, text: &str, pair_ok: bool) -> String {
    let want = if pair_ok {
        "an integer or a pair `(h, w)`"
    } else {
        "an integer literal"
    };
    format!("`{stage}`: {arg} must be {want}, found `{text}`")
}

pub fn bad_tuple(stage: &str, arg: &str, len: usize) -> String {
    format!("`{stage}`: {arg} must be an integer or a pair `(h, w)`, found a tuple of {len}")
}

pub fn too_small(stage: &str, arg: &str, min: usize, got: &str) -> String {
    format!("`{stage}`: {arg} must be at least {min}, found {got}")
}

pub fn too_large(stage: &str, arg: &str, text: &str) -> String {
    format!("`{stage}`: {arg} is {text}, which does not fit in `usize`; use a smaller number")
}

pub fn padding_string(stage: &str, text: &str, kernel: Option<[usize; 2]>) -> String {
    let fix = match kernel {
        _ if text == "\"valid\"" => "write `padding = 0` (the default)".to_string(),
        Some(k) if k[0] % 2 == 1 && k[1] % 2 == 1 => {
            format!(
                "write it as a number: `padding = {}` keeps the size with this {}x{} kernel",
                pair([k[0] / 2, k[1] / 2]),
                k[0],
                k[1]
            )
        }
        _ => {
            "write it as an integer or a pair `(h, w)`; `(k - 1) / 2` keeps the size with an odd kernel `k`".to_string()
        }
    };
    format!("`{stage}`: padding {text} is not supported; {fix}")
}

pub fn not_bool(stage: &str, arg: &str, text: &str) -> String {
    format!("`{stage}`: `{arg}` must be `true` or `false`, found `{text}`")
}

pub fn bad_slope(stage: &str, text: &str) -> String {
    format!("`{stage}`: the negative slope must be a finite number, e.g. `LeakyRelu(0.2)`, found `{text}`")
}

/// `flat_since` is the stage whose output is the flat shape, `None` when it is the input.
pub fn needs_image(stage: &str, kind: &str, shape: &Shape, flat_since: Option<&str>) -> String {
    let fix = match flat_since {
        Some(before) => format!("move it before `{before}`"),
        None => "declare an image input, `input: [C, H, W]`".to_string(),
    };
    format!("`{stage}`: {kind} needs an image input [C, H, W] but receives {shape}; {fix}")
}

pub fn needs_flat(stage: &str, shape: &Shape) -> String {
    format!("`{stage}`: Dense needs a flat input but receives {shape}; add `flatten: Flatten` before it")
}

pub fn already_flat(stage: &str, shape: &Shape) -> String {
    format!("`{stage}`: the input is already flat ({shape}); remove this `Flatten`")
}

pub fn kernel_too_big(
    stage: &str,
    kernel: [usize; 2],
    shape: &Shape,
    padded: [usize; 2],
    padding: [usize; 2],
    need: [usize; 2],
) -> String {
    format!(
        "`{stage}`: {} {}x{} kernel does not fit its input {shape} ({}x{} after padding {}); use a smaller kernel, or padding >= {}",
        article(kernel[0]),
        kernel[0],
        kernel[1],
        padded[0],
        padded[1],
        pair(padding),
        pair(need)
    )
}

pub fn window_too_big(stage: &str, kernel: [usize; 2], input: [usize; 3]) -> String {
    let [c, h, w] = input;
    format!(
        "`{stage}`: {} {}x{} window does not fit its input [{c}, {h}, {w}]; use a window of at most {h}x{w}, or remove this pool",
        article(kernel[0]),
        kernel[0],
        kernel[1],
    )
}

/// Which limit a size breaks.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// A count (multiply-adds, padded size) beyond `usize::MAX`.
    Count,
    /// A buffer of more than [`MAX_ELEMS`] `f32`s.
    Memory,
}

pub fn overflow(stage: &str, what: &str, shape: &Shape, limit: Limit) -> String {
    let broken = match limit {
        Limit::Count => "overflows `usize`",
        Limit::Memory => &format!("is more than {MAX_ELEMS} `f32`s, the limit for one buffer (16 GiB)"),
    };
    format!("`{stage}`: on input {shape}, the {what} {broken}; use smaller sizes")
}

/// "a" or "an" before a number read aloud: an 8x8 window, an 11x11 kernel, a 5x5 kernel.
fn article(n: usize) -> &'static str {
    let digits = n.to_string();
    let eleven_or_eighteen = digits.len() % 3 == 2 && (digits.starts_with("11") || digits.starts_with("18"));
    if digits.starts_with('8') || eleven_or_eighteen {
        "an"
    } else {
        "a"
    }
}

// `#[weights = "..."]`: the file's name is the path as written, relative to CARGO_MANIFEST_DIR.

pub fn weights_form() -> String {
    "expected `#[weights = \"path/to/file.safetensors\"]`, a path relative to the crate's Cargo.toml".into()
}

pub fn weights_twice() -> String {
    "`#[weights]` is given twice; keep one".into()
}

pub fn weights_unreadable(file: &str, error: &str) -> String {
    format!("cannot read weight file `{file}` (relative to CARGO_MANIFEST_DIR): {error}")
}

/// A file that is not a well-formed safetensors file.
pub fn weights_damaged(file: &str, what: &str) -> String {
    format!("weight file `{file}` is damaged: {what}")
}

pub fn tensor_missing(tensor: &str, file: &str, shape: &[usize]) -> String {
    format!("`{tensor}` {} is missing from weight file `{file}`", dims(shape))
}

pub fn tensor_unexpected(tensor: &str, file: &str, shape: &[usize], declared: &[&str]) -> String {
    format!(
        "weight file `{file}` has tensor `{tensor}` {}, which the network does not declare; its parameters are {}",
        dims(shape),
        declared.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    )
}

pub fn tensor_dtype(tensor: &str, file: &str, dtype: &str) -> String {
    format!("`{tensor}` is {dtype} in weight file `{file}`; parameters are F32 (convert before saving, e.g. `tensor.float()` in PyTorch)")
}

pub fn counter_form(tensor: &str, file: &str, dtype: &str, shape: &[usize]) -> String {
    format!(
        "`{tensor}` is {dtype} {} in weight file `{file}`; a BatchNorm's batch counter is a non-negative I64 scalar (shape [])",
        dims(shape)
    )
}

pub fn tensor_value(tensor: &str, file: &str, index: &[usize], value: f32) -> String {
    let rule = if value.is_finite() {
        "a variance cannot be negative"
    } else {
        "a trained network holds only finite values"
    };
    format!("`{tensor}` holds {value} at index {index:?} in weight file `{file}`; {rule}")
}

pub fn tensor_shape(tensor: &str, declared: &[usize], file: &str, found: &[usize]) -> String {
    format!(
        "`{tensor}` is declared {} but weight file `{file}` has {}",
        dims(declared),
        dims(found)
    )
}

fn dims(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("[{}]", dims.join(", "))
}

// Groups and blocks.

pub fn input_in_group(group: &str) -> String {
    format!("`{group}`: `input` belongs at the top of the network, not inside a group; remove it (a group's input is the output of the stage before it)")
}

pub fn int_name_outside_group(name: &str) -> String {
    format!("stage name `{name}`: integer names are for stages inside a group (`Sequential`, `Residual`, `Shortcut`), like the indices of `nn.Sequential`; give this stage a snake_case name")
}

pub fn empty_group(path: &str, kind: &str) -> String {
    format!("`{path}`: this {kind} is empty; give it at least one stage, e.g. `{kind} {{ relu: Relu }}`, or remove it")
}

pub fn unknown_block(path: &str, kind: &str) -> String {
    format!(
        "`{path}`: unknown block `{kind}`; expected one of {}",
        BLOCKS.join(", ")
    )
}

/// A layer kind written with braces, as if it were a block.
pub fn layer_with_braces(path: &str, kind: &str) -> String {
    format!("`{path}`: {kind} is a layer, not a block: its arguments go in parentheses, e.g. `{path}: {}`; only {} take stages in braces", layer_example(kind), BLOCKS.join(", "))
}

fn layer_example(kind: &str) -> &'static str {
    match kind {
        "Conv2d" => "Conv2d(8, kernel = 3)",
        "Dense" => "Dense(10)",
        "MaxPool2d" => "MaxPool2d(2)",
        "AvgPool2d" => "AvgPool2d(2)",
        "BatchNorm2d" => "BatchNorm2d(eps = 1e-5)",
        "BatchNorm1d" => "BatchNorm1d(eps = 1e-5)",
        "Dropout" => "Dropout(0.5)",
        "LeakyRelu" => "LeakyRelu(0.2)",
        "Flatten" => "Flatten",
        "GlobalAvgPool2d" => "GlobalAvgPool2d",
        "Sigmoid" => "Sigmoid",
        "Tanh" => "Tanh",
        _ => "Relu",
    }
}

pub fn shortcut_outside_residual(path: &str) -> String {
    format!("`{path}`: a Shortcut belongs inside a Residual block (the path the block's input takes around its main path); move it into a `Residual {{ ... }}`, or make it a `Sequential`")
}

/// `path` is the second Shortcut's, `first` the first's.
pub fn second_shortcut(path: &str, first: &str) -> String {
    format!("`{path}`: a Residual block has at most one Shortcut, and `{first}` is already one; merge them into one")
}

pub fn empty_main_path(path: &str) -> String {
    format!("`{path}`: the Residual block has only a Shortcut; give it a main path, the stages outside the Shortcut")
}

pub fn activation_on_shortcut(path: &str) -> String {
    format!(
        "`{path}`: a Shortcut takes no `->` activation; put it after the Residual block, where it applies to the sum"
    )
}

pub fn residual_mismatch(path: &str, main: &Shape, input: &Shape) -> String {
    format!("`{path}`: the main path gives {main} but the shortcut gives {input}; add a `Shortcut {{ ... }}` that maps {input} to {main}")
}

pub fn residual_mismatch_shortcut(path: &str, shortcut: &str, main: &Shape, short: &Shape) -> String {
    format!("`{path}`: the main path gives {main} but the shortcut `{shortcut}` gives {short}; change one of them so that both give the same shape")
}

// The layers of modern networks.

pub fn groups_do_not_divide(stage: &str, groups: usize, c: usize, out: usize, shape: &Shape) -> String {
    let common: Vec<String> = common_divisors(c, out).iter().map(|g| g.to_string()).collect();
    let mut fix = match &common[..] {
        [one] => format!("use `groups = {one}`"),
        [init @ .., last] => format!("use {} or {last}", init.join(", ")),
        [] => String::new(),
    };
    if c.is_multiple_of(groups) {
        fix += &format!(", or make the output channels a multiple of {groups}");
    }
    if c > 1 && out.is_multiple_of(c) {
        fix += &format!(" (`groups = {c}` is a depthwise convolution)");
    }
    format!("`{stage}`: `groups = {groups}` must divide both the input channels ({c}, from {shape}) and the output channels ({out}); {fix}")
}

/// The divisors of both `a` and `b`, ascending: those of their greatest common divisor, found
/// up to its square root (channel counts may be in the billions).
fn common_divisors(a: usize, b: usize) -> Vec<usize> {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    let mut small = Vec::new();
    let mut large = Vec::new();
    let mut d = 1;
    while d <= x / d {
        if x.is_multiple_of(d) {
            small.push(d);
            if d != x / d {
                large.push(x / d);
            }
        }
        d += 1;
    }
    small.extend(large.into_iter().rev());
    small
}

pub fn pool_padding_too_big(stage: &str, padding: [usize; 2], kernel: [usize; 2]) -> String {
    format!(
        "`{stage}`: padding {} is more than half the {}x{} window; use padding <= {}",
        pair(padding),
        kernel[0],
        kernel[1],
        pair([kernel[0] / 2, kernel[1] / 2])
    )
}

pub fn not_number(stage: &str, arg: &str, text: &str) -> String {
    let hint = if text.starts_with('"') {
        "; write it without the quotes"
    } else {
        ""
    };
    format!("`{stage}`: {arg} must be a number, found `{text}`{hint}")
}

/// A number out of range; `fix` says what to write instead.
pub fn bad_float(stage: &str, arg: &str, want: &str, text: &str, fix: &str) -> String {
    format!("`{stage}`: {arg} must be {want}, found {text}; {fix}")
}

pub fn batchnorm_rank(stage: &str, kind: &str, shape: &Shape, image: bool) -> String {
    if image {
        format!(
            "`{stage}`: {kind} needs an image input [C, H, W] but receives {shape}; use `BatchNorm1d` for a flat input"
        )
    } else {
        format!("`{stage}`: {kind} needs a flat input [N] but receives {shape}; use `BatchNorm2d` for an image")
    }
}
