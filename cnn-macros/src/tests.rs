//! Expansion tests without a compiler: declarations in, parsed Rust or errors out.
//!
//! The compile-fail cases in the `cnn` crate's `tests/ui/` show the same errors as a user sees
//! them; these tests pin the checker's numbers and the generated items' structure.

use crate::check;
use crate::expand_cnn;
use crate::ir::Op;
use crate::ir::{Model, Param, Shape};
use crate::parse::Decl;
use crate::plan::Kernel;
use proc_macro2::TokenStream;
use quote::quote;
use syn::{Expr, File, ImplItem, Item, ItemImpl, ItemStruct, Lit};

fn lenet5() -> TokenStream {
    quote! {
        /// LeNet-5 for 28x28 grayscale digits.
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
        }
    }
}

/// Parses and checks a declaration that must be valid.
fn model(input: TokenStream) -> Model {
    let decl: Decl = syn::parse2(input).unwrap_or_else(|e| panic!("parse: {e}"));
    match check::check(&decl) {
        Ok(model) => model,
        Err((e, _)) => panic!("check: {:?}", e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>()),
    }
}

/// Every error message of a declaration, parse or check, in order.
fn errors(input: TokenStream) -> Vec<String> {
    let result = syn::parse2::<Decl>(input).and_then(|decl| check::check(&decl).map(drop).map_err(|(e, _)| e));
    match result {
        Ok(()) => Vec::new(),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    }
}

/// The single error of a declaration.
fn error(input: TokenStream) -> String {
    let all = errors(input);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap_or_default()
}

/// The macro's whole output, which must always be a valid Rust file, as the compiler sees it
/// with the `cnn` crate's std feature on.
fn expand(input: TokenStream) -> File {
    expand_for(input, Std::On)
}

#[derive(Clone, Copy, PartialEq)]
enum Std {
    On,
    Off,
}

/// The output with the contents of `with_std! { .. }` (std on) or `without_std! { .. }` (off)
/// in place of the invocations, and the inherent impls merged into one.
fn expand_for(input: TokenStream, std: Std) -> File {
    let tokens = expand_cnn(input).unwrap_or_else(|e| panic!("expand_cnn: {e}"));
    let file: File =
        syn::parse2(tokens.clone()).unwrap_or_else(|e| panic!("the expansion does not parse: {e}\n{tokens}"));
    let mut items = Vec::new();
    for item in file.items {
        let Item::Macro(m) = &item else {
            items.push(item);
            continue;
        };
        let name = m.mac.path.segments.last().map(|s| s.ident.to_string());
        let keep = match name.as_deref() {
            Some("with_std") => std == Std::On,
            Some("without_std") => std == Std::Off,
            _ => {
                items.push(item);
                continue;
            }
        };
        if keep {
            let inner: File =
                syn::parse2(m.mac.tokens.clone()).unwrap_or_else(|e| panic!("{name:?} does not parse: {e}"));
            items.extend(inner.items);
        }
    }
    let mut merged: Option<ItemImpl> = None;
    let mut rest = Vec::new();
    for item in items {
        match item {
            Item::Impl(imp) if imp.trait_.is_none() => match &mut merged {
                Some(m) => m.items.extend(imp.items),
                None => merged = Some(imp),
            },
            other => rest.push(other),
        }
    }
    rest.extend(merged.map(Item::Impl));
    File { items: rest, ..file }
}

fn the_struct(file: &File) -> &ItemStruct {
    let mut structs = file
        .items
        .iter()
        .filter_map(|i| if let Item::Struct(s) = i { Some(s) } else { None });
    let s = structs.next().expect("a struct");
    assert!(structs.next().is_none(), "one struct");
    s
}

/// The inherent impl (`trait_name` `None`) or the impl of the trait whose last segment is given.
fn the_impl<'a>(file: &'a File, trait_name: Option<&str>) -> &'a ItemImpl {
    file.items
        .iter()
        .find_map(|i| match i {
            Item::Impl(imp) => {
                let name = imp
                    .trait_
                    .as_ref()
                    .and_then(|(_, path, _)| path.segments.last())
                    .map(|s| s.ident.to_string());
                (name.as_deref() == trait_name).then_some(imp)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no impl {trait_name:?}"))
}

fn const_expr<'a>(imp: &'a ItemImpl, name: &str) -> &'a Expr {
    imp.items
        .iter()
        .find_map(|i| match i {
            ImplItem::Const(c) if c.ident == name => Some(&c.expr),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no const {name}"))
}

fn int(expr: &Expr) -> usize {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(i) => i.base10_parse().expect("a usize"),
            other => panic!("not an integer: {other:?}"),
        },
        other => panic!("not a literal: {}", quote!(#other)),
    }
}

fn ints(expr: &Expr) -> Vec<usize> {
    match expr {
        Expr::Reference(r) => ints(&r.expr),
        Expr::Array(a) => a.elems.iter().map(int).collect(),
        other => panic!("not an array: {}", quote!(#other)),
    }
}

fn has_fn(imp: &ItemImpl, name: &str) -> bool {
    imp.items
        .iter()
        .any(|i| matches!(i, ImplItem::Fn(f) if f.sig.ident == name))
}

// ---- check.rs alone ----

#[test]
fn lenet5_shapes_after_every_stage() {
    let m = model(lenet5());
    let rows: Vec<(&str, Shape)> = m.rows.iter().map(|r| (r.stage.as_str(), r.shape)).collect();
    assert_eq!(
        rows,
        [
            ("conv1", Shape::Image([6, 28, 28])),
            ("pool1", Shape::Image([6, 14, 14])),
            ("conv2", Shape::Image([16, 10, 10])),
            ("pool2", Shape::Image([16, 5, 5])),
            ("flatten", Shape::Flat(400)),
            ("fc1", Shape::Flat(120)),
            ("fc2", Shape::Flat(84)),
            ("fc3", Shape::Flat(10)),
        ]
    );
    assert_eq!(m.input, Shape::Image([1, 28, 28]));
    assert_eq!(m.output_len, 10);
}

#[test]
fn lenet5_counts() {
    let m = model(lenet5());
    assert_eq!(m.param_count, 61_706);
    // conv1 6*28*28*25 + conv2 16*10*10*150 + fc 400*120 + 120*84 + 84*10.
    assert_eq!(m.macs, 416_520);
    let per_stage: Vec<(usize, usize)> = m.rows.iter().map(|r| (r.params, r.macs)).collect();
    assert_eq!(
        per_stage,
        [
            (156, 117_600),
            (0, 0),
            (2_416, 240_000),
            (0, 0),
            (0, 0),
            (48_120, 48_000),
            (10_164, 10_080),
            (850, 840)
        ]
    );
    // One op per conv, pool, dense and activation; `Flatten` only renames the layout.
    assert_eq!(m.nodes.len(), 11);
    let last = m.nodes.last().map(|n| match &n.op {
        Op::Dense { params, .. } => params.end,
        _ => 0,
    });
    assert_eq!(last, Some(61_706));
}

#[test]
fn lenet5_parameter_layout() {
    let m = model(lenet5());
    let want: [(&str, &[usize], usize); 10] = [
        ("conv1.weight", &[6, 1, 5, 5], 0),
        ("conv1.bias", &[6], 150),
        ("conv2.weight", &[16, 6, 5, 5], 156),
        ("conv2.bias", &[16], 2_556),
        ("fc1.weight", &[120, 400], 2_572),
        ("fc1.bias", &[120], 50_572),
        ("fc2.weight", &[84, 120], 50_692),
        ("fc2.bias", &[84], 60_772),
        ("fc3.weight", &[10, 84], 60_856),
        ("fc3.bias", &[10], 61_696),
    ];
    let want: Vec<Param> = want
        .iter()
        .map(|&(name, shape, offset)| Param {
            name: name.into(),
            shape: shape.to_vec(),
            offset,
        })
        .collect();
    assert_eq!(m.params, want);
}

#[test]
fn memory_plan() {
    let m = model(quote! {
        struct Small {
            input: [1, 6, 6],
            conv: Conv2d(2, kernel = 3) -> Relu,
            flatten: Flatten,
            fc: Dense(3),
        }
    });
    let p = crate::plan::plan(&m);
    // Steps: conv [2,4,4] = 32 with its ReLU, the transpose back to sample-major 32, dense 3.
    assert_eq!(p.steps.len(), 3);
    assert!(p.steps[0].relu);
    assert!(matches!(p.steps[0].kernel, Kernel::Op(Op::Conv { .. })));
    assert!(matches!(
        p.steps[1].kernel,
        Kernel::ToSampleMajor { channels: 2, plane: 16 }
    ));
    assert_eq!(p.activations_len, 32 + 32 + 3);
    // The largest gradient (the input's is never computed), in two buffers taken in turn.
    assert_eq!(p.gradient_len, 32);
    assert_eq!(p.gradient_buffers, 2);
    // A stride-1 convolution's backward pass: the padded input [1, 6, 6] and its gradient, the
    // output gradient in 2 wide rows of 3*6 + 4 = 22 columns, pixel-major and masked [16, 2]
    // each, the weight gradient transposed [9, 2], and 1*3*3 rows of the input gradient's
    // columns, a margin of 2*6 + 2 and the padded image, 50 rounded up to 56.
    assert_eq!(p.scratch_len, 2 * 36 + 2 * 22 + 2 * 32 + 18 + 9 * 56);
}

#[test]
fn only_a_relu_after_a_stride_one_convolution_a_batchnorm_or_a_sum_joins_it() {
    let m = model(quote! {
        struct Mixed {
            input: [1, 9, 9],
            a: Conv2d(2, kernel = 3, stride = 2) -> Relu,
            b: Conv2d(2, kernel = 3) -> Tanh,
            c: Conv2d(2, kernel = 1),
            r: Relu,
            s: Relu,
            bn: BatchNorm2d -> Relu,
            block: Residual { e: Conv2d(2, kernel = 1), e_bn: BatchNorm2d } -> Relu,
        }
    });
    let steps: Vec<String> = crate::plan::plan(&m)
        .steps
        .iter()
        .map(|step| match &step.kernel {
            Kernel::Op(Op::Conv { .. }) => format!("conv{}", if step.relu { "+relu" } else { "" }),
            Kernel::Op(Op::BatchNorm { .. }) => format!("bn{}", if step.relu { "+relu" } else { "" }),
            Kernel::Op(Op::Add) => format!("add{}", if step.relu { "+relu" } else { "" }),
            Kernel::Op(Op::Act(a)) => format!("{a:?}"),
            Kernel::ToSampleMajor { .. } => "transpose".into(),
            other => format!("{other:?}"),
        })
        .collect();
    // Strided: a ReLU of its own; Tanh: its own; a ReLU stage after a stride-1 convolution
    // joins it, and a second ReLU stays (applying it twice changes nothing, but it is asked);
    // a BatchNorm's joins it, and a residual sum's.
    assert_eq!(
        steps,
        [
            "conv",
            "Relu",
            "conv",
            "Tanh",
            "conv+relu",
            "Relu",
            "bn+relu",
            "conv",
            "bn",
            "add+relu",
            "transpose"
        ]
    );
}

#[test]
fn a_batchnorm_folds_into_the_convolution_it_alone_reads_at_inference() {
    let m = model(quote! {
        struct Folds {
            input: [3, 8, 8],
            a: Conv2d(4, kernel = 3, padding = 1, bias = false),
            a_bn: BatchNorm2d,
            a_relu: Relu,
            b: Conv2d(4, kernel = 3, stride = 2, padding = 1),
            b_bn: BatchNorm2d,
            block: Residual {
                c: Conv2d(4, kernel = 3, padding = 1),
                c_bn: BatchNorm2d,
            } -> Relu,
            d: Conv2d(4, kernel = 1) -> Relu,
            d_bn: BatchNorm2d,
        }
    });
    let plan = crate::plan::plan(&m);
    let folds: Vec<_> = (0..plan.steps.len())
        .filter_map(|i| plan.folded(i).map(|f| (i, f.bn, f.add, f.relu, f.last())))
        .collect();
    // a + its BatchNorm, which applies the ReLU; b + its BatchNorm (no ReLU after it); c + its
    // BatchNorm + the block's sum with b_bn's output (region 4), which applies the block's
    // ReLU; d's BatchNorm reads a ReLU, not the conv.
    assert_eq!(
        folds,
        [
            (0, 1, None, true, 1),
            (2, 3, None, false, 3),
            (4, 5, Some((6, 4)), true, 6)
        ]
    );
}

#[test]
fn defaults_and_pairs() {
    let m = model(quote! {
        struct Net {
            input: [3, 17, 13],
            conv1: Conv2d(8, kernel = (3, 5), stride = 2, padding = 1, bias = false) -> LeakyRelu,
            pool1: AvgPool2d((2, 1), stride = 1),
            act: LeakyRelu(0.2),
            flatten: Flatten,
            fc: Dense(1_0, bias = false),
        }
    });
    let shapes: Vec<Shape> = m.rows.iter().map(|r| r.shape).collect();
    // (17 + 2 - 3) / 2 + 1 = 9, (13 + 2 - 5) / 2 + 1 = 6; then (9 - 2) + 1 = 8, 6.
    assert_eq!(
        shapes,
        [
            Shape::Image([8, 9, 6]),
            Shape::Image([8, 8, 6]),
            Shape::Image([8, 8, 6]),
            Shape::Flat(384),
            Shape::Flat(10)
        ]
    );
    assert_eq!(m.param_count, 8 * 3 * 15 + 384 * 10);
    let kinds: Vec<&str> = m.rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Conv2d(8, 3x5, stride 2, padding 1, no bias) -> LeakyRelu(0.01)",
            "AvgPool2d(2x1, stride 1)",
            "LeakyRelu(0.2)",
            "Flatten",
            "Dense(10, no bias)"
        ]
    );
}

#[test]
fn vector_input_and_activation_stages() {
    let m = model(quote! { struct Mlp { input: [20], act: Tanh, fc: Dense(5) -> Sigmoid } });
    assert_eq!(m.input, Shape::Flat(20));
    assert_eq!(m.param_count, 105);
    assert_eq!(m.nodes.len(), 3);
}

// ---- the expansion ----

#[test]
fn struct_keeps_docs_attributes_and_visibility() {
    let file = expand(lenet5());
    let s = the_struct(&file);
    assert_eq!(s.ident, "LeNet5");
    assert!(matches!(s.vis, syn::Visibility::Public(_)));
    let attrs: Vec<String> = s.attrs.iter().map(|a| quote!(#a).to_string()).collect();
    assert!(
        attrs.iter().any(|a| a.contains("LeNet-5 for 28x28 grayscale digits.")),
        "{attrs:#?}"
    );
    assert!(
        attrs.iter().any(|a| a.contains("derive") && a.contains("Clone")),
        "{attrs:#?}"
    );
    // The rustdoc carries the summary table.
    assert!(attrs.iter().any(|a| a.contains("61,706")), "{attrs:#?}");
    // Fields stay private.
    assert!(s.fields.iter().all(|f| matches!(f.vis, syn::Visibility::Inherited)));
}

#[test]
fn inherent_constants_and_methods() {
    let file = expand(lenet5());
    let imp = the_impl(&file, None);
    assert_eq!(ints(const_expr(imp, "INPUT_SHAPE")), [1, 28, 28]);
    assert_eq!(int(const_expr(imp, "INPUT_LEN")), 784);
    assert_eq!(int(const_expr(imp, "OUTPUT_LEN")), 10);
    assert_eq!(int(const_expr(imp, "PARAM_COUNT")), 61_706);
    assert_eq!(int(const_expr(imp, "MACS")), 416_520);
    for name in ["new", "forward", "predict", "probabilities", "summary"] {
        assert!(has_fn(imp, name), "no fn {name}");
    }
    let forward = imp.items.iter().find_map(|i| match i {
        ImplItem::Fn(f) if f.sig.ident == "forward" => Some(f),
        _ => None,
    });
    let sig = forward.map(|f| f.sig.clone());
    assert_eq!(
        quote!(#sig).to_string(),
        quote!(fn forward(&self, input: &[f32; 784usize]) -> [f32; 10usize]).to_string()
    );
}

#[test]
fn network_impl_and_param_table() {
    let file = expand(lenet5());
    let imp = the_impl(&file, Some("Network"));
    assert_eq!(int(const_expr(imp, "PARAM_COUNT")), 61_706);
    assert_eq!(ints(const_expr(imp, "INPUT_SHAPE")), [1, 28, 28]);
    // The table is the inherent `PARAMS`.
    let imp = the_impl(&file, None);
    let Expr::Reference(table) = const_expr(imp, "PARAMS") else {
        panic!("PARAMS is not a reference")
    };
    let Expr::Array(rows) = &*table.expr else {
        panic!("PARAMS is not an array")
    };
    let mut got = Vec::new();
    for row in &rows.elems {
        let Expr::Struct(s) = row else {
            panic!("not a ParamInfo")
        };
        let field = |name: &str| {
            s.fields
                .iter()
                .find(|f| quote!(#f).to_string().starts_with(name))
                .map(|f| &f.expr)
                .expect(name)
        };
        let Expr::Lit(syn::ExprLit {
            lit: Lit::Str(pname), ..
        }) = field("name")
        else {
            panic!("name")
        };
        got.push((pname.value(), ints(field("shape")), int(field("offset"))));
    }
    assert_eq!(got.len(), 10);
    assert_eq!(got[0], ("conv1.weight".to_string(), vec![6, 1, 5, 5], 0));
    assert_eq!(got[3], ("conv2.bias".to_string(), vec![16], 2_556));
    assert_eq!(got[9], ("fc3.bias".to_string(), vec![10], 61_696));
    let imp = the_impl(&file, Some("Network"));
    for name in ["params", "params_mut", "forward_batch", "loss_and_grad"] {
        assert!(has_fn(imp, name), "no fn {name}");
    }
}

#[test]
fn generated_paths_are_fully_qualified() {
    let text = expand(lenet5())
        .items
        .iter()
        .map(|i| quote!(#i).to_string())
        .collect::<String>();
    assert!(text.contains(":: cnn :: __private :: Conv2d :: new"));
    assert!(text.contains("impl :: cnn :: __private :: Network for LeNet5"));
}

#[test]
fn no_attributes_private_struct() {
    let file = expand(quote! { struct Tiny { input: [2], fc: Dense(1), } });
    let s = the_struct(&file);
    assert!(matches!(s.vis, syn::Visibility::Inherited));
    assert_eq!(int(const_expr(the_impl(&file, None), "PARAM_COUNT")), 3);
}

// ---- errors ----

/// The product contract's examples (the README's errors). Lists that grew since (the arguments of `Conv2d`, the layer kinds) keep
/// the example's text as their beginning.
#[test]
fn design_examples_word_for_word() {
    let e = error(
        quote! { struct N { input: [1, 28, 28], conv1: Conv2d(6, kernel = 5), pool1: MaxPool2d(6), conv2: Conv2d(16, kernel = 5) } },
    );
    assert_eq!(e, "`conv2`: a 5x5 kernel does not fit its input [6, 4, 4] (4x4 after padding 0); use a smaller kernel, or padding >= 1");
    let e = error(quote! { struct N { input: [16, 5, 5], fc1: Dense(120) } });
    assert_eq!(
        e,
        "`fc1`: Dense needs a flat input but receives [16, 5, 5]; add `flatten: Flatten` before it"
    );
    let e = error(quote! { struct N { input: [1, 28, 28], conv1: Conv2d(6, kernal = 5) } });
    assert_eq!(
        e,
        "`conv1`: unknown argument `kernal`; expected one of `kernel`, `stride`, `padding`, `bias`, `groups`"
    );
    let e = error(quote! { struct N { input: [1, 8, 8], pool1: MaxPool2d(2), pool1: MaxPool2d(2) } });
    assert_eq!(e, "duplicate stage name `pool1`");
    let e = error(quote! { struct N { input: [1, 8, 8], conv: Conv3d(4, kernel = 3) } });
    assert!(e.starts_with("unknown layer `Conv3d`; expected one of Conv2d, MaxPool2d, AvgPool2d, Flatten, Dense, Relu, Sigmoid, Tanh, LeakyRelu, "), "{e}");
    assert!(e.contains("BatchNorm2d") && e.contains("Dropout"), "{e}");
}

#[test]
fn independent_errors_come_back_together() {
    let all = errors(quote! {
        pub struct Net {
            input: [1, 28, 28],
            conv1: Conv2d(6, kernal = 5) -> Relu,
            pool1: MaxPool2d(2),
            conv2: Conv3d(16, kernel = 5),
            pool1: AvgPool2d(2),
            fc1: Dense(0) -> Relu,
            fc2: Dense(10, bias = yes),
        }
    });
    assert_eq!(all.len(), 5, "{all:#?}");
    assert!(all[0].starts_with("`conv1`: unknown argument `kernal`"));
    assert!(all[1].starts_with("unknown layer `Conv3d`"));
    assert_eq!(all[2], "duplicate stage name `pool1`");
    assert_eq!(all[3], "`fc1`: the number of outputs must be at least 1, found 0");
    assert_eq!(all[4], "`fc2`: `bias` must be `true` or `false`, found `yes`");
}

#[test]
fn one_mistake_reports_once() {
    // conv2 fails; the stages after it have no known shape and add nothing.
    let all = errors(quote! {
        struct Net {
            input: [1, 28, 28],
            conv1: Conv2d(6, kernel = 5),
            conv2: Conv2d(16, kernel = 30) -> Relu,
            pool: MaxPool2d(2),
            flatten: Flatten,
            fc: Dense(10),
        }
    });
    assert_eq!(all.len(), 1, "{all:#?}");
}

#[test]
fn syntax_errors_of_several_entries_come_back_together() {
    let all = errors(quote! {
        struct Net {
            input: [784],
            fc1 Dense(100),
            fc2: Dense(10) => Relu,
            fc3: Dense(10),
        }
    });
    assert_eq!(
        all,
        [
            "expected `:` after `fc1`, as in `fc1: Dense(10)`",
            "`fc2`: expected `,` after this stage, or `-> Relu` to add an activation; found `=>`"
        ]
    );
}

#[test]
fn argument_errors() {
    let stage = |layer: TokenStream| error(quote! { struct N { input: [1, 28, 28], s: #layer } });
    assert_eq!(
        stage(quote!(Conv2d(6, kernel = (3, 3, 3)))),
        "`s`: `kernel` must be an integer or a pair `(h, w)`, found a tuple of 3"
    );
    assert_eq!(
        stage(quote!(Conv2d(6, kernel = 2.5))),
        "`s`: `kernel` must be an integer or a pair `(h, w)`, found `2.5`"
    );
    assert_eq!(
        stage(quote!(Conv2d(6, kernel = 3, padding = -1))),
        "`s`: `padding` must be at least 0, found -1"
    );
    assert_eq!(
        stage(quote!(Conv2d(6, kernel = 3, stride = 0))),
        "`s`: `stride` must be at least 1, found 0"
    );
    assert_eq!(
        stage(quote!(Conv2d(6, kernel = 3, bias = 1))),
        "`s`: `bias` must be `true` or `false`, found `1`"
    );
    assert_eq!(
        stage(quote!(Conv2d(6, kernel = 3, stride = 1, stride = 2))),
        "`s`: argument `stride` is given twice"
    );
    assert_eq!(
        stage(quote!(Conv2d(6))),
        "`s`: missing argument `kernel`; write e.g. `Conv2d(6, kernel = 3)`"
    );
    assert_eq!(
        stage(quote!(Conv2d(kernel = 3))),
        "`s`: missing the number of output channels; write e.g. `Conv2d(6, kernel = 3)`"
    );
    assert!(stage(quote!(Conv2d(6, kernel = 5, padding = "same")))
        .ends_with("`padding = 2` keeps the size with this 5x5 kernel"));
    assert_eq!(
        stage(quote!(MaxPool2d(0))),
        "`s`: the window size must be at least 1, found 0"
    );
    assert!(stage(quote!(Relu(0.1))).starts_with("`s`: Relu takes no arguments"));
    assert!(stage(quote!(LeakyRelu(x))).starts_with("`s`: the negative slope must be a finite number"));
    assert!(stage(quote!(Softmax)).contains("the softmax belongs to the loss"));
    assert!(stage(quote!(Linear(10))).ends_with("did you mean `Dense`?"));
}

#[test]
fn input_errors() {
    assert!(error(quote! { struct N { fc: Dense(10) } }).starts_with("missing `input`"));
    assert_eq!(
        error(quote! { struct N { input: [28, 28], fc: Dense(10) } }),
        "`input` must have rank 1 (`[N]`) or 3 (`[C, H, W]`), found rank 2"
    );
    assert_eq!(
        error(quote! { struct N { input: [1, W, 28], fc: Dense(10) } }),
        "`input` dimensions must be integer literals, found `W`"
    );
    assert_eq!(
        error(quote! { struct N { fc: Dense(10), input: [4] } }),
        "`input` must be the first entry; move it before `fc`"
    );
    assert_eq!(
        error(quote! { struct N { input: [0], fc: Dense(10) } }),
        "`input` dimensions must be at least 1, found 0"
    );
    assert!(error(quote! { struct N { input: [784] } }).starts_with("the network has no stages"));
    assert!(error(quote! { struct N {} }).starts_with("the network is empty"));
}

#[test]
fn overflow_is_an_error_not_a_panic() {
    let max = usize::MAX;
    for decl in [
        quote! { struct N { input: [100000, 100000, 100000], conv: Conv2d(100000, kernel = 1) } },
        quote! { struct N { input: [1000], fc: Dense(#max) } },
        quote! { struct N { input: [#max, #max, #max], flatten: Flatten } },
        quote! { struct N { input: [1, 28, 28], conv: Conv2d(1, kernel = 3, padding = #max) } },
        quote! { struct N { input: [1, 28, 28], conv: Conv2d(1, kernel = 3, padding = 1000000000) } },
        quote! { struct N { input: [1, 1, 1], conv: Conv2d(#max, kernel = 1) } },
        quote! { struct N { input: [1, 1, 1], pool: MaxPool2d(#max, stride = #max) } },
        quote! { struct N { input: [1, 1, 1], conv: Conv2d(1, kernel = #max, stride = #max, padding = #max) } },
        // Each activation's output is kept for the backward pass: the third no longer fits.
        quote! { struct N { input: [1_000_000_000], a: Relu, b: Relu, c: Relu, d: Relu } },
        quote! { struct N { input: [1], fc: Dense(18446744073709551616) } },
    ] {
        let all = errors(decl.clone());
        assert_eq!(all.len(), 1, "{decl}: {all:#?}");
        // The erroneous expansion still parses: errors and a stub.
        expand(decl);
    }
}

#[test]
fn erroneous_declaration_still_emits_the_struct() {
    let file = expand(quote! {
        /// Docs survive.
        pub struct Net { input: [1, 28, 28], conv: Conv2d(6, kernel = 5), fc: Dense(10), oops: Dense(0) }
    });
    let errors = file
        .items
        .iter()
        .filter(
            |i| matches!(i, Item::Macro(m) if m.mac.path.segments.last().is_some_and(|s| s.ident == "compile_error")),
        )
        .count();
    assert_eq!(errors, 2);
    let s = the_struct(&file);
    assert!(matches!(s.vis, syn::Visibility::Public(_)));
    assert!(s.attrs.iter().any(|a| quote!(#a).to_string().contains("Docs survive.")));
    // The input is known, so `forward` keeps its array type.
    assert_eq!(int(const_expr(the_impl(&file, None), "INPUT_LEN")), 784);
    assert!(has_fn(the_impl(&file, Some("Network")), "loss_and_grad"));

    // A syntax error in the body: the struct is emitted from the header alone.
    let file = expand(quote! { pub struct Net { input: [784], fc: Dense(10) => Relu } });
    assert_eq!(the_struct(&file).ident, "Net");
}

#[test]
fn never_panics() {
    // Every combination of small sizes: either a model whose shapes match the runtime's
    // formula, or errors; never a panic.
    for size in [1usize, 2, 5] {
        for k in [0usize, 1, 3, 7] {
            for s in [0usize, 1, 2] {
                for p in [0usize, 1, 4] {
                    let decl = quote! { struct N { input: [2, #size, #size], c: Conv2d(3, kernel = #k, stride = #s, padding = #p), m: MaxPool2d(#k, stride = #s) } };
                    expand(decl.clone());
                    let conv = cnn_runtime::shape::conv_out(size, k, s, p);
                    let pool = conv.and_then(|c| cnn_runtime::shape::pool_out(c, k, s, 0));
                    assert_eq!(errors(decl).is_empty(), pool.is_some(), "size {size} k {k} s {s} p {p}");
                }
            }
        }
    }
    for text in [
        "",
        "struct",
        "struct N",
        "struct N {} extra",
        "pub(crate) struct N { input: [], }",
        "struct N { input: [1, 2, 3, 4], }",
        "struct N { input: [784], , }",
        "struct N { input: [784], fc: }",
        "struct N { input: [784], fc: Dense(10) -> }",
        "struct N { input: [784], fc: Dense(10) -> Relu -> Relu }",
        "struct N { input: [784], fc: Dense(,) }",
        "struct N { input: [784], fc: Dense(10, bias = ) }",
        "struct N { input: [784], fc: Dense(-10) }",
        "struct N { input: [784], fc: Dense(10)(3) }",
        "struct N { input: [-1], fc: LeakyRelu(1e999) }",
        "struct N { input: [1, 1, 1], c: Conv2d(1, kernel = ()) }",
        "struct N { input: [1, 1, 1], c: Conv2d(1, kernel = (1,)) }",
        "struct N { input: [1, 1, 1], c: Conv2d(1, kernel = ((1, 1), 1)) }",
        "struct N { input: [1, 1, 1], c: MaxPool2d(1, 2, 3) }",
        "struct N { input: [1, 1, 1], r#type: Relu }",
        "struct N { input: [1, 1, 1], c: Conv2d(1, kernel = 1, kernel.x = 1) }",
        "struct N<T> { input: [1], fc: Dense(1) }",
        "#[derive(Debug)] struct N { input: (1), fc: Dense(1) }",
    ] {
        let tokens: TokenStream = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        let out = expand_cnn(tokens.clone());
        let _ = errors(tokens);
        if let Ok(out) = out {
            syn::parse2::<File>(out).unwrap_or_else(|e| panic!("{text}: the expansion does not parse: {e}"));
        }
    }
}

#[test]
fn without_std_the_struct_borrows_and_nothing_names_std() {
    let file = expand_for(lenet5(), Std::Off);
    let s = the_struct(&file);
    let fields: Vec<String> = s.fields.iter().map(|f| quote!(#f).to_string()).collect();
    assert_eq!(
        fields,
        [
            quote!(params: &'static [f32]).to_string(),
            quote!(buffers: &'static [f32]).to_string()
        ]
    );
    // The only trait implemented is the generated code's own (`Compiled`), not `Network`.
    let traits: Vec<String> = file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Impl(imp) => imp.trait_.as_ref().map(|(_, path, _)| quote!(#path).to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(traits, [quote!(::cnn::__private::Compiled).to_string()]);
    let text = quote!(#file).to_string();
    for std_only in ["Vec", "Workspace", "chunks_for", "fn new"] {
        assert!(!text.contains(std_only), "`{std_only}` without std");
    }
    let imp = the_impl(&file, None);
    for name in ["forward", "predict", "forward_into", "loss_and_grad_into", "init_into"] {
        assert!(has_fn(imp, name), "no fn {name}");
    }
    // No `#[weights]`: nothing to construct the struct from, and no embedded data.
    assert!(!has_fn(imp, "pretrained"));
    assert!(!text.contains("include_bytes"));
}

#[test]
fn weights_are_gathered_from_the_checked_file() {
    // CARGO_MANIFEST_DIR is this crate's folder when its tests run.
    let body = lenet5();
    let file = expand_for(quote!(#[weights = "../models/lenet5.safetensors"] #body), Std::Off);
    let imp = the_impl(&file, None);
    assert!(has_fn(imp, "pretrained") && has_fn(imp, "pretrained_params"));
    // The attribute does not carry over to the struct.
    assert!(the_struct(&file).attrs.iter().all(|a| !a.path().is_ident("weights")));
    let text = quote!(#file).to_string().replace(' ', "");
    assert!(text.contains("include_bytes!"), "{text}");
    // conv1.weight (600 bytes) comes first in the parameter layout; in the file it follows
    // conv1.bias (24 bytes), after the 8-byte length and the header.
    assert!(text.contains("gather::<246824usize>"), "{text}");
    assert!(text.contains("(760usize,600usize),(736usize,24usize)"), "{text}");
}

/// Token trees of an expansion, nested ones included.
fn token_count(tokens: TokenStream) -> usize {
    tokens
        .into_iter()
        .map(|t| match t {
            proc_macro2::TokenTree::Group(g) => 1 + token_count(g.stream()),
            _ => 1,
        })
        .sum()
}

#[test]
fn expansion_size() {
    let tokens = expand_cnn(lenet5()).unwrap_or_else(|e| panic!("{e}"));
    let count = token_count(tokens);
    println!("LeNet-5 expands to {count} tokens");
    // What does not depend on the network lives in the runtime (`cnn_runtime::compiled`):
    // 6,084 tokens before it moved there, 5,119 after.
    assert!(count < 5_500, "LeNet-5 expands to {count} tokens");
}

/// The limit on a training step's memory is checked on the plan's own total, the one the
/// generated `workspace_len(1)` gives: a ReLU on `[N]` keeps its output and one gradient buffer,
/// `2 N` floats, so `N = 2^31` is the largest that fits.
#[test]
fn memory_limit_is_the_generated_workspace() {
    let fits = model(quote! { struct N { input: [2147483648], a: Relu } });
    let plan = crate::plan::plan(&fits);
    let whole = plan.workspace_upto(plan.steps.len());
    let generated = plan.partial_len
        + plan.saved_len
        + plan.activations_len
        + plan.gradient_buffers * plan.gradient_len
        + plan.scratch_len;
    assert_eq!(whole, Some(generated));
    assert_eq!(generated, crate::ir::MAX_ELEMS);
    let e = error(quote! { struct N { input: [2147483649], a: Relu } });
    assert!(
        e.starts_with("`a`: on input [2147483649], the working memory of a training step"),
        "{e}"
    );
}
