//! The macro under fuzzing: valid declarations, mutated token by token, through `expand_cnn`.
//!
//! Every case must end in generated code or in spanned errors: the output always parses as a
//! Rust file, and no error message is empty. Where only integers were replaced, the header is
//! intact, so the output is the struct (real or stubbed) and every error names the stage or
//! the `input` it is about.
//!
//! A declaration is flattened to a list of token texts, delimiters included, mutated, and
//! re-lexed; a mutation that unbalances the delimiters does not lex and the case is skipped.

use crate::expand_cnn;
use crate::ir::MAX_ELEMS;
use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::Config;
use std::collections::HashMap;
use syn::{Expr, ExprLit, File, ImplItem, Item, Lit, LitStr};

/// Valid declarations to start from, one per feature of the syntax.
const SEEDS: &[&str] = &[
    // LeNet-5: padding, pools, flatten, dense, activations after `->`.
    "/// LeNet-5 for 28x28 grayscale digits.
    #[derive(Clone)]
    pub struct LeNet5 {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2) -> Relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, kernel = 5) -> Relu,
        pool2: MaxPool2d(2),
        flatten: Flatten,
        fc1: Dense(120) -> Relu,
        fc2: Dense(84) -> Relu,
        fc3: Dense(10),
    }",
    // A multilayer perceptron on a flat input.
    "pub(crate) struct Mlp {
        input: [784],
        fc1: Dense(128) -> Relu,
        fc2: Dense(64) -> Tanh,
        fc3: Dense(10),
    }",
    // Strides, paddings and windows as `(h, w)` pairs, no bias, a leaky slope.
    "struct Strided {
        input: [3, 32, 48],
        conv1: Conv2d(16, kernel = (3, 5), stride = (2, 1), padding = (1, 2)) -> LeakyRelu(0.2),
        pool1: AvgPool2d((2, 3), stride = (2, 2)),
        conv2: Conv2d(8, kernel = 3, stride = 2, bias = false),
        flatten: Flatten,
        fc: Dense(10, bias = false),
    }",
    // Activations as stages of their own.
    "pub struct Stages {
        input: [2, 9, 9],
        conv: Conv2d(4, kernel = 3),
        relu: Relu,
        pool: MaxPool2d(2, stride = 1),
        sigmoid: Sigmoid,
        flatten: Flatten,
        fc: Dense(3),
        leaky: LeakyRelu,
        tanh: Tanh,
        out: Dense(2, bias = true),
    }",
    // A torchvision-style ResNet: groups, integer names, residual blocks with and without a
    // shortcut, an activation after a block, BatchNorm, global pooling, Dropout.
    "pub struct ResNet {
        input: [3, 16, 16],
        conv1: Conv2d(8, kernel = 3, padding = 1, bias = false),
        bn1: BatchNorm2d,
        relu: Relu,
        layer1: Sequential {
            0: Residual {
                conv1: Conv2d(8, kernel = 3, padding = 1, bias = false),
                bn1: BatchNorm2d(eps = 1e-3, momentum = 0.2),
            } -> Relu,
            1: Residual {
                conv1: Conv2d(16, kernel = 3, stride = 2, padding = 1),
                bn1: BatchNorm2d(affine = false),
                downsample: Shortcut {
                    0: Conv2d(16, kernel = 1, stride = 2, bias = false),
                    1: BatchNorm2d,
                },
            },
        },
        avgpool: GlobalAvgPool2d,
        flatten: Flatten,
        drop: Dropout(0.25),
        fc: Dense(10),
    }",
    // Grouped and depthwise convolutions, padded pools, BatchNorm1d.
    "struct Depthwise {
        input: [4, 12, 12],
        dw: Conv2d(8, kernel = 3, padding = 1, groups = 4) -> Relu,
        pool: MaxPool2d(3, stride = 2, padding = 1),
        pw: Conv2d(6, kernel = (1, 3), groups = 2, padding = (0, 1)),
        avg: AvgPool2d(3, stride = 2, padding = 1),
        flatten: Flatten,
        fc: Dense(12, bias = false),
        bn: BatchNorm1d,
        out: Dense(3),
    }",
    // Embedded weights; only the path is mutated (the file is read relative to the crate).
    "#[weights = \"missing.safetensors\"]
    pub struct Pretrained {
        input: [4],
        fc: Dense(2),
    }",
];

/// What an integer literal may become: the edges of every check.
const INTS: &[&str] = &[
    "0",
    "1",
    "2",
    "65536",
    "4294967296",
    "1_000_000_000_000",
    "4611686018427387904",
    // usize::MAX, and a value past it.
    "18446744073709551615",
    "99999999999999999999999",
];

/// What the weight file's path may become.
const PATHS: &[&str] = &[
    "\"\"",
    "\"src\"",
    "\"Cargo.toml\"",
    "\"/\"",
    "\"no/such/file.safetensors\"",
];

/// One token as written, and whether it is joined to the next (`-` of `->`).
#[derive(Clone, Debug)]
struct Tok {
    text: String,
    joint: bool,
}

fn tok(text: &str) -> Tok {
    Tok {
        text: text.to_string(),
        joint: false,
    }
}

fn flatten(tokens: TokenStream, out: &mut Vec<Tok>) {
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                out.push(tok(open));
                flatten(g.stream(), out);
                out.push(tok(close));
            }
            TokenTree::Punct(p) => out.push(Tok {
                text: p.as_char().to_string(),
                joint: p.spacing() == Spacing::Joint,
            }),
            other => out.push(tok(&other.to_string())),
        }
    }
}

fn seed(i: usize) -> Vec<Tok> {
    let tokens: TokenStream = SEEDS[i].parse().expect("the seeds lex");
    let mut out = Vec::new();
    flatten(tokens, &mut out);
    out
}

fn unparse(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| {
            if t.joint {
                t.text.clone()
            } else {
                format!("{} ", t.text)
            }
        })
        .collect()
}

fn is_int(t: &Tok) -> bool {
    t.text.starts_with(|c: char| c.is_ascii_digit()) && !t.text.contains('.')
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(Index),
    Swap(Index, Index),
    Duplicate(Index),
    /// The chosen integer literal becomes another.
    Int(Index, &'static str),
    /// The chosen integer literal `v` becomes `((v, v), v)`.
    Nest(Index),
    /// The chosen string literal (the weight file's path) becomes another.
    Path(Index, &'static str),
}

impl Mutation {
    fn only_ints(&self) -> bool {
        matches!(self, Mutation::Int(..) | Mutation::Nest(..))
    }

    fn apply(&self, toks: &mut Vec<Tok>) {
        if toks.is_empty() {
            return;
        }
        let nth = |toks: &[Tok], i: &Index, keep: fn(&Tok) -> bool| {
            let at: Vec<usize> = (0..toks.len()).filter(|&k| keep(&toks[k])).collect();
            (!at.is_empty()).then(|| at[i.index(at.len())])
        };
        let len = toks.len();
        match self {
            Mutation::Delete(i) => {
                toks.remove(i.index(len));
            }
            Mutation::Swap(i, j) => toks.swap(i.index(len), j.index(len)),
            Mutation::Duplicate(i) => {
                let k = i.index(len);
                toks.insert(k, toks[k].clone());
            }
            Mutation::Int(i, value) => {
                if let Some(k) = nth(toks, i, is_int) {
                    toks[k] = tok(value);
                }
            }
            Mutation::Nest(i) => {
                if let Some(k) = nth(toks, i, is_int) {
                    let v = &toks[k].text;
                    toks[k] = tok(&format!("(({v}, {v}), {v})"));
                }
            }
            Mutation::Path(i, path) => {
                if let Some(k) = nth(toks, i, |t| t.text.starts_with('"')) {
                    toks[k] = tok(path);
                }
            }
        }
    }
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => any::<Index>().prop_map(Mutation::Delete),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
        2 => any::<Index>().prop_map(Mutation::Duplicate),
        4 => int_mutation(),
        1 => any::<Index>().prop_map(Mutation::Nest),
        1 => (any::<Index>(), select(PATHS)).prop_map(|(i, p)| Mutation::Path(i, p)),
    ]
}

fn int_mutation() -> impl Strategy<Value = Mutation> {
    (any::<Index>(), select(INTS)).prop_map(|(i, v)| Mutation::Int(i, v))
}

/// How the macro answered one input.
struct Outcome {
    /// Whether it returned tokens (generated code, or errors with the struct stubbed).
    tokens: bool,
    /// Every error message, from `compile_error!` items or the `Err`.
    errors: Vec<String>,
}

/// Runs the macro on one input and checks what holds for every input: the output parses as a
/// Rust file, an `Err` has at least one message, and no message is empty.
fn run(input: TokenStream) -> Outcome {
    let shown = input.to_string();
    let outcome = match expand_cnn(input) {
        Ok(tokens) => {
            let file: File = syn::parse2(tokens.clone())
                .unwrap_or_else(|e| panic!("the output does not parse: {e}\ninput: {shown}\noutput: {tokens}"));
            let errors = compile_errors(&file);
            if errors.is_empty() {
                check_sizes(&file, &shown);
            }
            Outcome { tokens: true, errors }
        }
        Err(e) => {
            let errors: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            assert!(!errors.is_empty(), "an Err without a message\ninput: {shown}");
            Outcome { tokens: false, errors }
        }
    };
    for message in &outcome.errors {
        assert!(!message.trim().is_empty(), "an empty error message\ninput: {shown}");
    }
    outcome
}

/// The sizes a generated network declares stay within [`MAX_ELEMS`], and its largest
/// working memory (a training step on one sample) is a `usize`.
fn check_sizes(file: &File, shown: &str) {
    let consts: HashMap<String, u128> = file
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Impl(imp) if imp.trait_.is_none() => Some(&imp.items),
            _ => None,
        })
        .flatten()
        .filter_map(|item| match item {
            ImplItem::Const(c) => match &c.expr {
                Expr::Lit(ExprLit { lit: Lit::Int(n), .. }) => Some((c.ident.to_string(), n.base10_parse().ok()?)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let get = |name: &str| {
        *consts
            .get(name)
            .unwrap_or_else(|| panic!("no integer const {name}\ninput: {shown}"))
    };
    for name in ["INPUT_LEN", "OUTPUT_LEN", "PARAM_COUNT"] {
        assert!(
            get(name) <= MAX_ELEMS as u128,
            "{name} = {} past the bound\ninput: {shown}",
            get(name)
        );
    }
    let workspace = get("ACTIVATIONS_LEN") + 2 * get("GRADIENT_BUFFER_LEN") + get("SCRATCH_LEN");
    assert!(
        workspace <= usize::MAX as u128,
        "workspace_len(1) overflows\ninput: {shown}"
    );
}

/// The messages of the `compile_error!` items of an expansion.
fn compile_errors(file: &File) -> Vec<String> {
    file.items
        .iter()
        .filter_map(|item| match item {
            Item::Macro(m) if m.mac.path.segments.last().is_some_and(|s| s.ident == "compile_error") => {
                let message: LitStr = syn::parse2(m.mac.tokens.clone())
                    .unwrap_or_else(|e| panic!("compile_error! without a string: {e}"));
                Some(message.value())
            }
            _ => None,
        })
        .collect()
}

/// Checks one declaration whose only changes are integer literals: the header is intact, so
/// the macro returns tokens, and every error says which stage (or the input) it is about.
fn run_ints_only(input: TokenStream) {
    let shown = input.to_string();
    let outcome = run(input);
    assert!(outcome.tokens, "an intact header must give tokens\ninput: {shown}");
    for message in &outcome.errors {
        // The seed with `#[weights]` names a file that does not exist: that error names it.
        // Integer stage names made equal name the stage that repeats.
        assert!(
            message.starts_with('`')
                || message.starts_with("cannot read weight file `")
                || message.starts_with("duplicate stage name `"),
            "the error does not name a stage or the input: {message}\ninput: {shown}"
        );
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Failures shrink to a small case in the test output; no files in the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(6000))]

    /// Deletes, swaps, duplicates, integer and path replacements, nesting: one to five per case.
    #[test]
    fn mutated_declarations_expand_or_report(
        seed_index in 0..SEEDS.len(),
        mutations in prop::collection::vec(any_mutation(), 1..=5),
    ) {
        let mut toks = seed(seed_index);
        for m in &mutations {
            m.apply(&mut toks);
        }
        if let Ok(input) = unparse(&toks).parse::<TokenStream>() {
            if mutations.iter().all(Mutation::only_ints) {
                run_ints_only(input);
            } else {
                run(input);
            }
        }
    }
}

proptest! {
    #![proptest_config(config(4000))]

    /// Only integer literals change, several at a time: sizes at and past every limit.
    #[test]
    fn integer_replacements_name_the_stage(
        seed_index in 0..SEEDS.len(),
        mutations in prop::collection::vec(
            prop_oneof![4 => int_mutation(), 1 => any::<Index>().prop_map(Mutation::Nest)],
            1..=6,
        ),
    ) {
        let mut toks = seed(seed_index);
        for m in &mutations {
            m.apply(&mut toks);
        }
        let input = unparse(&toks).parse().expect("integer replacements lex");
        run_ints_only(input);
    }
}

/// Every integer of every seed, one at a time, replaced by each edge value and nested.
#[test]
fn every_integer_at_every_edge() {
    for s in 0..SEEDS.len() {
        let toks = seed(s);
        let ints: Vec<usize> = (0..toks.len()).filter(|&k| is_int(&toks[k])).collect();
        for &k in &ints {
            let v = toks[k].text.clone();
            let nested = format!("(({v}, {v}), {v})");
            for value in INTS.iter().copied().chain([nested.as_str()]) {
                let mut mutated = toks.clone();
                mutated[k] = tok(value);
                run_ints_only(unparse(&mutated).parse().expect("integer replacements lex"));
            }
        }
    }
}

/// The seeds themselves expand without errors, so every error above comes from a mutation.
#[test]
fn seeds_are_valid() {
    // All but the last, whose weight file does not exist.
    for text in &SEEDS[..SEEDS.len() - 1] {
        let outcome = run(text.parse().expect("the seeds lex"));
        assert!(outcome.tokens && outcome.errors.is_empty(), "{:?}", outcome.errors);
    }
}
