//! Pass 3: generate the network. Reports no user errors: `check` has validated everything.
//!
//! The forward and backward passes are straight-line code, one kernel call per op with its
//! sizes as literals; the kernels live in `cnn-runtime`.

use crate::check::{Model, Partial, Shape};
use crate::parse::{Decl, Header};
use crate::plan::{self, Plan, Step};
use crate::weights::Embedded;
use cnn_runtime::activation::Activation;
use cnn_runtime::conv::Conv2d;
use cnn_runtime::dense::Dense;
use cnn_runtime::layout::Layout;
use cnn_runtime::pool::{Pool2d, PoolKind};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

/// The network struct, its inherent API and its `Network` impl.
///
/// What needs a heap (the struct that owns its parameters and workspace, `new`, the `Network`
/// impl) is wrapped in `::cnn::__private::with_std!`; without std the struct borrows embedded
/// weights instead (`without_std!`). The constants and the allocation-free associated functions
/// over caller buffers are generated in both.
pub fn network(decl: &Decl, model: &Model, embedded: Option<&Embedded>) -> TokenStream {
    let Header { attrs, vis, name, .. } = &decl.header;
    let plan = plan::plan(model);
    let summary = summary(model);
    let doc = format!("\n\n# Layers\n\n```text\n{summary}```\n");
    let input_dims = model.input.dims();
    let rank = input_dims.len();
    let input_len = model.input.len();
    let output_len = model.output_len;
    let param_count = model.param_count;
    let macs = model.macs;
    let Plan {
        activations_len,
        gradient_len,
        scratch_len,
        ..
    } = plan;
    let infer_one = activations_len + scratch_len;
    let params = model.params.iter().map(|p| {
        let (pname, shape, offset) = (&p.name, &p.shape, p.offset);
        quote!(::cnn::__private::ParamInfo { name: #pname, shape: &[#(#shape),*], offset: #offset })
    });
    // Samples per block of inference (see `__infer`): 8 LeNet-5 samples' activations, 450 KB,
    // fit a 512 KB L2 cache; batch-64 inference ran about 5% faster than a layer at a time
    // (cnn bench, 2-core EPYC).
    let infer_block = 8usize;
    let forward_body = forward_body(&plan);
    let backward_body = backward_body(&plan);
    let name_str = name.to_string();
    let logits = if plan.ops.is_empty() {
        quote!(input)
    } else {
        quote!(&acts[batch * (#activations_len - #output_len)..])
    };
    let pretrained = embedded.map(|e| pretrained(e, param_count));
    let pretrained_std = embedded.map(|_| {
        quote! {
            /// The network with the weights embedded at compile time (a copy of
            /// [`Self::pretrained_params`]).
            pub fn pretrained() -> Self {
                <Self as ::cnn::__private::Network>::from_params(Self::pretrained_params())
            }
        }
    });
    let pretrained_no_std = embedded.map(|_| {
        quote! {
            /// The network with the weights embedded at compile time, read in place.
            pub fn pretrained() -> Self {
                Self { params: Self::pretrained_params() }
            }
        }
    });

    quote! {
        ::cnn::__private::with_std! {
            #(#attrs)*
            #[doc = #doc]
            #vis struct #name {
                params: ::cnn::__private::Vec<f32>,
                workspace: ::cnn::__private::Workspace,
            }

            impl #name {
                /// A network initialized as PyTorch does by default (every weight and bias uniform
                /// in ±1/sqrt(fan_in)), reproducibly from `seed`.
                pub fn new(seed: u64) -> Self {
                    let mut params = ::cnn::__private::Vec::new();
                    params.resize(Self::PARAM_COUNT, 0.0f32);
                    Self::init_into(&mut params, seed);
                    Self { params, workspace: ::core::default::Default::default() }
                }

                #pretrained_std

                /// The logits of one sample.
                pub fn forward(&self, input: &[f32; #input_len]) -> [f32; #output_len] {
                    let mut output = [0.0f32; #output_len];
                    ::cnn::__private::Network::forward_batch(self, input, &mut output);
                    output
                }

                /// The class with the largest logit (the first, on a tie).
                pub fn predict(&self, input: &[f32; #input_len]) -> usize {
                    Self::__argmax(&self.forward(input))
                }

                /// The softmax of the logits of one sample: class probabilities summing to 1.
                pub fn probabilities(&self, input: &[f32; #input_len]) -> [f32; #output_len] {
                    let mut p = self.forward(input);
                    ::cnn::__private::softmax_in_place(&mut p, #output_len);
                    p
                }
            }

            impl ::cnn::__private::Network for #name {
                const INPUT_SHAPE: &'static [usize] = &[#(#input_dims),*];
                const INPUT_LEN: usize = #input_len;
                const OUTPUT_LEN: usize = #output_len;
                const PARAM_COUNT: usize = #param_count;
                const PARAMS: &'static [::cnn::__private::ParamInfo] = #name::PARAMS;

                fn from_params(params: &[f32]) -> Self {
                    assert_eq!(params.len(), #param_count, "{}::from_params: expected {} parameters, got {}", #name_str, #param_count, params.len());
                    Self { params: params.to_vec(), workspace: ::core::default::Default::default() }
                }

                fn params(&self) -> &[f32] {
                    &self.params
                }

                fn params_mut(&mut self) -> &mut [f32] {
                    &mut self.params
                }

                fn forward_batch(&self, input: &[f32], output: &mut [f32]) {
                    assert!(input.len().is_multiple_of(#input_len), "{}::forward_batch: input length {} is not a multiple of INPUT_LEN = {}", #name_str, input.len(), #input_len);
                    let batch = input.len() / #input_len;
                    assert_eq!(output.len(), batch * #output_len, "{}::forward_batch: output must hold batch * OUTPUT_LEN = {} * {} values, got {}", #name_str, batch, #output_len, output.len());
                    let chunks = ::cnn::__private::chunks_for(batch, ::cnn::__private::MIN_ROWS_PER_THREAD);
                    if chunks == 1 {
                        return self.workspace.with(Self::inference_len(batch), |ws| Self::__infer(&self.params, batch, input, output, ws));
                    }
                    self.workspace.run(
                        batch,
                        chunks,
                        |n| n * #output_len + Self::inference_len(n),
                        |_, rows, slot| {
                            let n = rows.len();
                            let (logits, ws) = slot.split_at_mut(n * #output_len);
                            Self::__infer(&self.params, n, &input[rows.start * #input_len..rows.end * #input_len], logits, ws);
                            0.0
                        },
                        |slots, _| {
                            for (i, slot) in slots.iter().enumerate() {
                                let rows = ::cnn::__private::chunk_range(batch, chunks, i);
                                output[rows.start * #output_len..rows.end * #output_len].copy_from_slice(&slot[..rows.len() * #output_len]);
                            }
                        },
                    )
                }

                fn loss_and_grad(&self, input: &[f32], labels: &[u32], grad: &mut [f32]) -> f32 {
                    let batch = labels.len();
                    assert!(batch > 0, "{}::loss_and_grad: the batch is empty (no labels)", #name_str);
                    assert_eq!(input.len(), batch * #input_len, "{}::loss_and_grad: input must hold labels.len() * INPUT_LEN = {} * {} values, got {}", #name_str, batch, #input_len, input.len());
                    assert_eq!(grad.len(), #param_count, "{}::loss_and_grad: grad must hold PARAM_COUNT = {} values, got {}", #name_str, #param_count, grad.len());
                    let chunks = ::cnn::__private::chunks_for(batch, ::cnn::__private::MIN_ROWS_PER_THREAD);
                    if chunks == 1 {
                        return self.workspace.with(Self::workspace_len(batch), |ws| Self::__train(&self.params, batch, input, labels, batch, grad, ws));
                    }
                    // Each thread writes its share of the gradient into its own slot; the shares are
                    // then added in chunk order, so a thread count always gives the same bits.
                    self.workspace.run(
                        batch,
                        chunks,
                        |n| #param_count + Self::workspace_len(n),
                        |_, rows, slot| {
                            let (g, ws) = slot.split_at_mut(#param_count);
                            let x = &input[rows.start * #input_len..rows.end * #input_len];
                            Self::__train(&self.params, rows.len(), x, &labels[rows], batch, g, ws)
                        },
                        |slots, losses| {
                            grad.copy_from_slice(&slots[0][..#param_count]);
                            for slot in &slots[1..] {
                                for (g, s) in grad.iter_mut().zip(&slot[..#param_count]) {
                                    *g += s;
                                }
                            }
                            losses.iter().sum::<f32>()
                        },
                    )
                }
            }
        }

        ::cnn::__private::without_std! {
            #(#attrs)*
            #[doc = #doc]
            #vis struct #name {
                params: &'static [f32],
            }

            impl #name {
                #pretrained_no_std

                /// The logits of one sample. Allocates nothing: its working memory,
                /// `inference_len(1)` `f32`s, is on the stack (use [`Self::forward_into`] to
                /// keep it elsewhere).
                pub fn forward(&self, input: &[f32; #input_len]) -> [f32; #output_len] {
                    let mut output = [0.0f32; #output_len];
                    let mut ws = [0.0f32; #infer_one];
                    Self::__infer(self.params, 1, input, &mut output, &mut ws);
                    output
                }

                /// The class with the largest logit (the first, on a tie).
                pub fn predict(&self, input: &[f32; #input_len]) -> usize {
                    Self::__argmax(&self.forward(input))
                }

                /// The softmax of the logits of one sample: class probabilities summing to 1.
                pub fn probabilities(&self, input: &[f32; #input_len]) -> [f32; #output_len] {
                    let mut p = self.forward(input);
                    ::cnn::__private::softmax_in_place(&mut p, #output_len);
                    p
                }
            }
        }

        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, clippy::unnecessary_cast, clippy::let_unit_value)]
        impl #name {
            /// Shape of one input sample.
            pub const INPUT_SHAPE: [usize; #rank] = [#(#input_dims),*];
            /// Number of `f32`s in one input sample.
            pub const INPUT_LEN: usize = #input_len;
            /// Number of logits per sample.
            pub const OUTPUT_LEN: usize = #output_len;
            /// Number of parameters: the length of a parameter buffer, of a gradient, and of an
            /// SGD momentum buffer.
            pub const PARAM_COUNT: usize = #param_count;
            /// Where each parameter tensor lies in the flat parameter buffer, in declaration
            /// order, weight before bias.
            pub const PARAMS: &'static [::cnn::__private::ParamInfo] = &[#(#params),*];
            /// Multiply-adds of one sample's forward pass (convolutions and dense layers).
            pub const MACS: usize = #macs;
            /// Memory plan, per sample: `f32`s of every stage's output.
            pub const ACTIVATIONS_LEN: usize = #activations_len;
            /// Memory plan, per sample: `f32`s of each of the two buffers the backward pass passes
            /// gradients in.
            pub const GRADIENT_BUFFER_LEN: usize = #gradient_len;
            /// Memory plan: `f32`s of convolution scratch (unfolded samples), whatever the batch size.
            pub const SCRATCH_LEN: usize = #scratch_len;

            /// `f32`s of working memory that inference on `batch` samples uses
            /// ([`Self::forward_into`]).
            pub const fn inference_len(batch: usize) -> usize {
                batch * Self::ACTIVATIONS_LEN + Self::SCRATCH_LEN
            }

            /// `f32`s of working memory that a training step on `batch` samples uses
            /// ([`Self::loss_and_grad_into`]).
            pub const fn workspace_len(batch: usize) -> usize {
                batch * (Self::ACTIVATIONS_LEN + 2 * Self::GRADIENT_BUFFER_LEN) + Self::SCRATCH_LEN
            }

            /// A table of the stages: kind, output shape, parameters and multiply-adds.
            pub fn summary() -> &'static str {
                #summary
            }

            #pretrained

            /// Fills `params` (`PARAM_COUNT` long) as [`new`](Self::new) does: PyTorch's default
            /// initialization, reproducibly from `seed`. Allocates nothing.
            ///
            /// # Panics
            ///
            /// If `params.len() != PARAM_COUNT`.
            pub fn init_into(params: &mut [f32], seed: u64) {
                assert_eq!(params.len(), #param_count, "{}::init_into: params must hold PARAM_COUNT = {} values, got {}", #name_str, #param_count, params.len());
                ::cnn::__private::pytorch_default(params, Self::PARAMS, seed);
            }

            /// Logits of a batch into `output` with parameters `params`, in the caller's working
            /// memory `ws`: allocates nothing, uses no thread, and gives the bits of `forward`.
            /// `input.len() == batch * INPUT_LEN`, `output.len() == batch * OUTPUT_LEN`,
            /// `ws.len() >= inference_len(batch)`.
            ///
            /// # Panics
            ///
            /// If a length does not fit, as above; the message gives expected and actual lengths.
            pub fn forward_into(params: &[f32], input: &[f32], output: &mut [f32], ws: &mut [f32]) {
                assert_eq!(params.len(), #param_count, "{}::forward_into: params must hold PARAM_COUNT = {} values, got {}", #name_str, #param_count, params.len());
                assert!(input.len().is_multiple_of(#input_len), "{}::forward_into: input length {} is not a multiple of INPUT_LEN = {}", #name_str, input.len(), #input_len);
                let batch = input.len() / #input_len;
                assert_eq!(output.len(), batch * #output_len, "{}::forward_into: output must hold batch * OUTPUT_LEN = {} * {} values, got {}", #name_str, batch, #output_len, output.len());
                let need = Self::inference_len(batch);
                assert!(ws.len() >= need, "{}::forward_into: ws must hold inference_len({}) = {} values, got {}", #name_str, batch, need, ws.len());
                Self::__infer(params, batch, input, output, &mut ws[..need]);
            }

            /// Mean softmax cross-entropy of a batch, and its gradient written over `grad`
            /// (`PARAM_COUNT` long, the layout of `PARAMS`), in the caller's working memory
            /// `ws`: allocates nothing and uses no thread. With
            /// `cnn::optim::sgd_step(params, grad, momentum_buf, lr, momentum)` it makes a
            /// training step without an allocator. `input.len() == labels.len() * INPUT_LEN`,
            /// `ws.len() >= workspace_len(labels.len())`.
            ///
            /// # Panics
            ///
            /// If a length does not fit, as above, the batch is empty, or a label is not below
            /// `OUTPUT_LEN`.
            pub fn loss_and_grad_into(params: &[f32], input: &[f32], labels: &[u32], grad: &mut [f32], ws: &mut [f32]) -> f32 {
                let batch = labels.len();
                assert!(batch > 0, "{}::loss_and_grad_into: the batch is empty (no labels)", #name_str);
                assert_eq!(params.len(), #param_count, "{}::loss_and_grad_into: params must hold PARAM_COUNT = {} values, got {}", #name_str, #param_count, params.len());
                assert_eq!(input.len(), batch * #input_len, "{}::loss_and_grad_into: input must hold labels.len() * INPUT_LEN = {} * {} values, got {}", #name_str, batch, #input_len, input.len());
                assert_eq!(grad.len(), #param_count, "{}::loss_and_grad_into: grad must hold PARAM_COUNT = {} values, got {}", #name_str, #param_count, grad.len());
                let need = Self::workspace_len(batch);
                assert!(ws.len() >= need, "{}::loss_and_grad_into: ws must hold workspace_len({}) = {} values, got {}", #name_str, batch, need, ws.len());
                Self::__train(params, batch, input, labels, batch, grad, &mut ws[..need])
            }

            fn __argmax(logits: &[f32; #output_len]) -> usize {
                let mut best = 0;
                for (i, &z) in logits.iter().enumerate() {
                    if z > logits[best] {
                        best = i;
                    }
                }
                best
            }

            /// Logits of `batch` samples into `logits`, in `ws` (`inference_len(batch)` long): a
            /// block of a few samples at a time through every layer, so that their activations
            /// stay in cache from one layer to the next.
            #[inline]
            fn __infer(params: &[f32], batch: usize, input: &[f32], logits: &mut [f32], ws: &mut [f32]) {
                let (total, all_input) = (batch, input);
                let mut done = 0;
                while done < total {
                    let batch = ::core::cmp::min(#infer_block, total - done);
                    let input = &all_input[done * #input_len..(done + batch) * #input_len];
                    let (acts, scratch) = ws.split_at_mut(batch * Self::ACTIVATIONS_LEN);
                    Self::__forward(params, batch, input, acts, scratch);
                    logits[done * #output_len..(done + batch) * #output_len].copy_from_slice(#logits);
                    done += batch;
                }
            }

            /// Loss and gradient of `batch` samples as their share of a batch of `total`, in `ws`
            /// (`workspace_len(batch)` long).
            #[inline]
            fn __train(params: &[f32], batch: usize, input: &[f32], labels: &[u32], total: usize, grad: &mut [f32], ws: &mut [f32]) -> f32 {
                let (acts, rest) = ws.split_at_mut(batch * Self::ACTIVATIONS_LEN);
                let (ga, rest) = rest.split_at_mut(batch * Self::GRADIENT_BUFFER_LEN);
                let (gb, scratch) = rest.split_at_mut(batch * Self::GRADIENT_BUFFER_LEN);
                Self::__forward(params, batch, input, acts, scratch);
                let loss = ::cnn::__private::softmax_cross_entropy_part(#logits, labels, #output_len, &mut ga[..batch * #output_len], total);
                Self::__backward(params, grad, batch, input, acts, ga, gb, scratch);
                loss
            }

            #[inline]
            fn __forward(params: &[f32], batch: usize, input: &[f32], acts: &mut [f32], scratch: &mut [f32]) {
                let _ = (params, batch, input, &acts, &scratch);
                #forward_body
            }

            #[inline]
            fn __backward(params: &[f32], grad: &mut [f32], batch: usize, input: &[f32], acts: &[f32], ga: &mut [f32], gb: &mut [f32], scratch: &mut [f32]) {
                let _ = (params, &grad, batch, input, acts, &ga, &gb, &scratch);
                #backward_body
            }
        }
    }
}

/// `pretrained_params()`: the file embedded with `include_bytes!` (so cargo rebuilds when it
/// changes), its tensors gathered at compile time (const evaluation, one copy per tensor) into
/// declaration order in an `f32`-aligned static, read in place.
fn pretrained(embedded: &Embedded, param_count: usize) -> TokenStream {
    let path = &embedded.path;
    let bytes = 4 * param_count;
    let moves = embedded.moves.iter().map(|(from, len)| quote!((#from, #len)));
    let doc = format!(
        "The weights of `{}`, checked against the declaration and embedded at compile time, in \
         the layout of `PARAMS`. Read in place: allocates nothing.",
        std::path::Path::new(path)
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned())
    );
    quote! {
        #[doc = #doc]
        pub fn pretrained_params() -> &'static [f32] {
            static BYTES: ::cnn::__private::Aligned<[u8; #bytes]> =
                ::cnn::__private::Aligned(::cnn::__private::gather::<#bytes>(::core::include_bytes!(#path), &[#(#moves),*]));
            ::cnn::__private::f32s(&BYTES.0)
        }
    }
}

/// Splits `acts` into one slice per op output (`a0`, `a1`, ...), then calls each op in order.
fn forward_body(plan: &Plan) -> TokenStream {
    let mut body = TokenStream::new();
    for (i, op) in plan.ops.iter().enumerate() {
        let a = act_name(i);
        let len = op.out_len;
        body.extend(quote!(let (#a, acts) = acts.split_at_mut(batch * #len);));
    }
    for (i, op) in plan.ops.iter().enumerate() {
        let x = if i == 0 {
            quote!(input)
        } else {
            let p = act_name(i - 1);
            quote!(&*#p)
        };
        let y = act_name(i);
        body.extend(match &op.step {
            Step::Conv {
                geom,
                layout,
                params,
                relu,
            } => {
                let (geom, layout, ps, pe) = (conv(geom), layout_tokens(*layout), params.start, params.end);
                let forward = if *relu { quote!(forward_relu) } else { quote!(forward) };
                quote!({ const G: ::cnn::__private::Conv2d = #geom; G.#forward(batch, #x, #layout, &params[#ps..#pe], #y, scratch); })
            }
            Step::Dense { geom, params } => {
                let (geom, ps, pe) = (dense(geom), params.start, params.end);
                quote!({ const G: ::cnn::__private::Dense = #geom; G.forward(batch, #x, &params[#ps..#pe], #y); })
            }
            Step::Pool(g) => {
                let geom = pool(g);
                quote!({ const G: ::cnn::__private::Pool2d = #geom; G.forward(batch, #x, #y); })
            }
            Step::Act(a) => {
                let a = activation(a);
                quote!(#a.forward(#x, #y);)
            }
            Step::ToSampleMajor { channels, plane } => quote!(::cnn::__private::to_sample_major(#channels, batch, #plane, #x, #y);),
        });
    }
    body
}

/// Walks the ops in reverse. Gradients ping-pong between `ga` (which holds d loss / d logits on
/// entry) and `gb`; the first op computes no input gradient.
fn backward_body(plan: &Plan) -> TokenStream {
    let mut body = TokenStream::new();
    for (i, op) in plan.ops.iter().enumerate() {
        let a = act_name(i);
        let len = op.out_len;
        body.extend(quote!(let (#a, acts) = acts.split_at(batch * #len);));
    }
    let n = plan.ops.len();
    for (i, op) in plan.ops.iter().enumerate().rev() {
        let (dy, dx) = if (n - 1 - i).is_multiple_of(2) {
            (quote!(ga), quote!(gb))
        } else {
            (quote!(gb), quote!(ga))
        };
        let (in_len, out_len) = (op.in_len, op.out_len);
        let dy = quote!(&#dy[..batch * #out_len]);
        let dx_slice = quote!(&mut #dx[..batch * #in_len]);
        let x = if i == 0 {
            quote!(input)
        } else {
            let p = act_name(i - 1);
            quote!(#p)
        };
        let y = act_name(i);
        let dx_opt = if i == 0 {
            quote!(::core::option::Option::None)
        } else {
            quote!(::core::option::Option::Some(#dx_slice))
        };
        body.extend(match &op.step {
            Step::Conv {
                geom,
                layout,
                params,
                relu,
            } => {
                let (geom, layout, ps, pe) = (conv(geom), layout_tokens(*layout), params.start, params.end);
                let (backward, y) = if *relu {
                    (quote!(backward_relu), quote!(#y,))
                } else {
                    (quote!(backward), quote!())
                };
                quote!({ const G: ::cnn::__private::Conv2d = #geom; G.#backward(batch, #x, #layout, &params[#ps..#pe], #y #dy, &mut grad[#ps..#pe], #dx_opt, scratch); })
            }
            Step::Dense { geom, params } => {
                let (geom, ps, pe) = (dense(geom), params.start, params.end);
                quote!({ const G: ::cnn::__private::Dense = #geom; G.backward(batch, #x, &params[#ps..#pe], #dy, &mut grad[#ps..#pe], #dx_opt); })
            }
            // Ops without parameters only pass the gradient on: nothing to do for the first.
            _ if i == 0 => quote!(),
            Step::Pool(g) => {
                let geom = pool(g);
                quote!({ const G: ::cnn::__private::Pool2d = #geom; G.backward(batch, #x, #dy, #dx_slice); })
            }
            Step::Act(a) => {
                let a = activation(a);
                quote!(#a.backward(#x, #y, #dy, #dx_slice);)
            }
            Step::ToSampleMajor { channels, plane } => quote!(::cnn::__private::to_channel_major(#channels, batch, #plane, #dy, #dx_slice);),
        });
    }
    body
}

fn act_name(i: usize) -> Ident {
    format_ident!("a{}", i)
}

fn layout_tokens(layout: Layout) -> TokenStream {
    match layout {
        Layout::SampleMajor => quote!(::cnn::__private::Layout::SampleMajor),
        Layout::ChannelMajor => quote!(::cnn::__private::Layout::ChannelMajor),
    }
}

/// The runtime values describing ops, as constant expressions.
fn conv(g: &Conv2d) -> TokenStream {
    let (c, h, w, oc, kh, kw, sh, sw, ph, pw, bias) = (g.c, g.h, g.w, g.oc, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.bias);
    quote!(::cnn::__private::Conv2d::new([#c, #h, #w], #oc, [#kh, #kw], [#sh, #sw], [#ph, #pw], #bias))
}

fn pool(g: &Pool2d) -> TokenStream {
    let kind = match g.kind {
        PoolKind::Max => quote!(::cnn::__private::PoolKind::Max),
        PoolKind::Avg => quote!(::cnn::__private::PoolKind::Avg),
    };
    let (c, h, w, kh, kw, sh, sw) = (g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw);
    quote!(::cnn::__private::Pool2d::new(#kind, [#c, #h, #w], [#kh, #kw], [#sh, #sw]))
}

fn dense(g: &Dense) -> TokenStream {
    let (i, o, b) = (g.inputs, g.outputs, g.bias);
    quote!(::cnn::__private::Dense::new(#i, #o, #b))
}

fn activation(a: &Activation) -> TokenStream {
    match a {
        Activation::Relu => quote!(::cnn::__private::Activation::Relu),
        Activation::Sigmoid => quote!(::cnn::__private::Activation::Sigmoid),
        Activation::Tanh => quote!(::cnn::__private::Activation::Tanh),
        Activation::LeakyRelu(s) => quote!(::cnn::__private::Activation::LeakyRelu(#s)),
    }
}

/// When the declaration has errors: the struct with its API, every body unreachable, so that
/// code using the type reports no follow-on errors.
pub fn stub(header: &Header, partial: &Partial) -> TokenStream {
    let Header {
        attrs,
        vis,
        name,
        weights,
        ..
    } = header;
    let input_dims = partial.input.map(Shape::dims).unwrap_or_default();
    let rank = input_dims.len();
    let input_len = partial.input.map_or(0, Shape::len);
    let output_len = partial.output_len.unwrap_or(0);
    let input_ty = if partial.input.is_some() {
        quote!([f32; #input_len])
    } else {
        quote!([f32])
    };
    let output_ty = if partial.output_len.is_some() {
        quote!([f32; #output_len])
    } else {
        quote!(&'static [f32])
    };
    let unreachable = quote!(::core::unreachable!("this network's declaration has errors"));
    let pretrained = (!weights.is_empty()).then(|| {
        quote! {
            pub fn pretrained() -> Self { #unreachable }
            pub fn pretrained_params() -> &'static [f32] { #unreachable }
        }
    });
    quote! {
        #(#attrs)*
        #vis struct #name {}

        #[allow(dead_code, unused_variables)]
        impl #name {
            pub const INPUT_SHAPE: [usize; #rank] = [#(#input_dims),*];
            pub const INPUT_LEN: usize = #input_len;
            pub const OUTPUT_LEN: usize = #output_len;
            pub const PARAM_COUNT: usize = 0;
            pub const MACS: usize = 0;
            pub fn new(seed: u64) -> Self { #unreachable }
            pub fn forward(&self, input: &#input_ty) -> #output_ty { #unreachable }
            pub fn predict(&self, input: &#input_ty) -> usize { #unreachable }
            pub fn probabilities(&self, input: &#input_ty) -> #output_ty { #unreachable }
            pub fn summary() -> &'static str { #unreachable }
            #pretrained
        }

        #[allow(unused_variables)]
        impl ::cnn::__private::Network for #name {
            const INPUT_SHAPE: &'static [usize] = &[#(#input_dims),*];
            const INPUT_LEN: usize = #input_len;
            const OUTPUT_LEN: usize = #output_len;
            const PARAM_COUNT: usize = 0;
            const PARAMS: &'static [::cnn::__private::ParamInfo] = &[];
            fn from_params(params: &[f32]) -> Self { #unreachable }
            fn params(&self) -> &[f32] { #unreachable }
            fn params_mut(&mut self) -> &mut [f32] { #unreachable }
            fn forward_batch(&self, input: &[f32], output: &mut [f32]) { #unreachable }
            fn loss_and_grad(&self, input: &[f32], labels: &[u32], grad: &mut [f32]) -> f32 { #unreachable }
        }
    }
}

/// The summary table: one row per stage, then the totals.
pub fn summary(model: &Model) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "stage".into(),
        "kind".into(),
        "output".into(),
        "params".into(),
        "MACs".into(),
    ]];
    rows.push([
        "input".into(),
        String::new(),
        model.input.to_string(),
        String::new(),
        String::new(),
    ]);
    for r in &model.rows {
        rows.push([
            r.stage.clone(),
            r.kind.clone(),
            r.shape.to_string(),
            thousands(r.params),
            thousands(r.macs),
        ]);
    }
    rows.push([
        "total".into(),
        String::new(),
        String::new(),
        thousands(model.param_count),
        thousands(model.macs),
    ]);
    let mut widths = [0; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i >= 3 {
                line += &format!("  {cell:>w$}");
            } else if i == 0 {
                line += &format!("{cell:<w$}");
            } else {
                line += &format!("  {cell:<w$}");
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// `61706` as `61,706`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
