//! Pass 3: generate the network. Reports no user errors: `check` has validated everything.
//!
//! The forward and backward passes are straight-line code, one kernel call per op with its
//! sizes as literals; the kernels live in `cnn-runtime`.

use crate::ir::{Model, Partial, Shape};
use crate::kinds::{self, Call};
use crate::parse::{Decl, Header};
use crate::plan::{self, Kernel, Plan, Reg};
use crate::weights::Embedded;
use cnn_runtime::layout::Layout;
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

/// The most `f32`s of working memory `forward` keeps on the stack (256 KB).
const STACK_FLOATS: usize = 1 << 16;

/// The network struct, its inherent API and its `Network` impl.
///
/// What needs a heap (the struct that owns its parameters, buffers and workspace, `new`, the
/// `Network` impl) is wrapped in `::cnn::__private::with_std!`; without std the struct borrows
/// embedded weights instead (`without_std!`). The constants and the allocation-free associated
/// functions over caller buffers are generated in both.
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
    let buffer_count = model.buffer_count;
    let macs = model.macs;
    let Plan {
        activations_len,
        gradient_len,
        gradient_buffers,
        scratch_len,
        saved_len,
        ..
    } = plan;
    let infer_one = activations_len + scratch_len;
    // One sample's working memory on the stack when it is small (LeNet-5: 50 KB); threads other
    // than the main one often have 2 MB stacks.
    let forward_one = if infer_one <= STACK_FLOATS {
        quote! {
            let mut ws = [0.0f32; #infer_one];
            // What an earlier call prepared, if any: this call allocates nothing, and where
            // there is nothing, each layer prepares in its scratch (the same bits).
            let prepared = self.workspace.made();
            <Self as ::cnn::__private::Compiled>::infer(&self.params, &self.buffers, prepared, 1, input, &mut output, &mut ws);
        }
    } else {
        quote!(::cnn::__private::Network::forward_batch(self, input, &mut output);)
    };
    let table = |list: &[crate::ir::Param]| -> Vec<TokenStream> {
        list.iter()
            .map(|p| {
                let (pname, shape, offset) = (&p.name, &p.shape, p.offset);
                quote!(::cnn::__private::ParamInfo { name: #pname, shape: &[#(#shape),*], offset: #offset })
            })
            .collect()
    };
    let params = table(&model.params);
    let buffers = table(&model.buffers);
    let init_constants: TokenStream = model
        .ones
        .iter()
        .map(|r| (r, 1.0f32))
        .chain(model.zeros.iter().map(|r| (r, 0.0f32)))
        .map(|(r, v)| {
            let (s, e) = (r.start, r.end);
            quote!(params[#s..#e].fill(#v);)
        })
        .collect();
    let init_buffers: TokenStream = model
        .buffers
        .iter()
        .map(|b| {
            let (s, e) = (b.offset, b.offset + b.shape.iter().product::<usize>());
            let v = if b.name.ends_with(".running_var") {
                1.0f32
            } else {
                0.0f32
            };
            quote!(buffers[#s..#e].fill(#v);)
        })
        .collect();
    // Samples per block of inference (see `Compiled::infer`): 8 LeNet-5 samples' activations, 450 KB,
    // fit a 512 KB L2 cache; batch-64 inference ran about 5% faster than a layer at a time
    // (cnn bench, 2-core EPYC).
    let infer_block = 8usize;
    let (forward_eval, prepare, prepared_len) = forward_body(&plan);
    let Training {
        prelude,
        phases,
        between,
    } = training(&plan);
    let phase_count = phases.len();
    let phase_arms = phases.iter().enumerate().map(|(i, code)| quote!(#i => { #code }));
    let between_arms = between.iter().enumerate().map(|(i, code)| quote!(#i => { #code }));
    let partial_len = plan.partial_len;
    let name_str = name.to_string();
    let logits = if plan.output == 0 {
        quote!(input)
    } else {
        quote!(&acts[batch * (#activations_len - #output_len)..])
    };
    let pretrained = embedded.map(|e| pretrained(e, param_count, buffer_count));
    let pretrained_std = embedded.map(|_| {
        quote! {
            /// The network with the weights (and buffers) embedded at compile time, read in place
            /// ([`Self::pretrained_params`], [`Self::pretrained_buffers`]): allocates nothing and
            /// copies nothing, until something changes them (`params_mut`, a training step).
            pub fn pretrained() -> Self {
                Self {
                    params: ::cnn::__private::Cow::Borrowed(Self::pretrained_params()),
                    buffers: ::cnn::__private::Cow::Borrowed(Self::pretrained_buffers()),
                    state: ::core::default::Default::default(),
                    workspace: ::core::default::Default::default(),
                }
            }
        }
    });
    let pretrained_no_std = embedded.map(|_| {
        quote! {
            /// The network with the weights embedded at compile time, read in place.
            pub fn pretrained() -> Self {
                Self { params: Self::pretrained_params(), buffers: Self::pretrained_buffers() }
            }
        }
    });

    quote! {
        ::cnn::__private::with_std! {
            #(#attrs)*
            #[doc = #doc]
            #vis struct #name {
                // Borrowed from the binary for `pretrained()`, copied on the first change.
                params: ::cnn::__private::Cow<'static, [f32]>,
                buffers: ::cnn::__private::Cow<'static, [f32]>,
                state: ::cnn::__private::TrainState,
                workspace: ::cnn::__private::Workspace,
            }

            impl #name {
                /// A network initialized as PyTorch does by default (every weight and bias uniform
                /// in ±1/sqrt(fan_in); BatchNorm weight 1, bias 0, running mean 0, running
                /// variance 1), reproducibly from `seed`, which also seeds Dropout's masks.
                pub fn new(seed: u64) -> Self {
                    let mut params = ::cnn::__private::Vec::new();
                    params.resize(Self::PARAM_COUNT, 0.0f32);
                    Self::init_into(&mut params, seed);
                    let mut buffers = ::cnn::__private::Vec::new();
                    buffers.resize(Self::BUFFER_COUNT, 0.0f32);
                    Self::init_buffers(&mut buffers);
                    let state = ::cnn::__private::TrainState { seed, steps: 0 };
                    Self { params: params.into(), buffers: buffers.into(), state, workspace: ::core::default::Default::default() }
                }

                #pretrained_std

                /// The logits of one sample (inference: BatchNorm uses its running statistics,
                /// Dropout passes its input through). Allocates nothing: a small network's
                /// working memory is on the stack, a large one's in the network's workspace
                /// (allocated by its first call).
                pub fn forward(&self, input: &[f32; #input_len]) -> [f32; #output_len] {
                    let mut output = [0.0f32; #output_len];
                    #forward_one
                    output
                }

                /// The class with the largest logit (the first, on a tie).
                pub fn predict(&self, input: &[f32; #input_len]) -> usize {
                    ::cnn::__private::argmax(&self.forward(input))
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
                const BUFFER_COUNT: usize = #buffer_count;
                const BUFFERS: &'static [::cnn::__private::ParamInfo] = #name::BUFFERS;

                fn from_params(params: &[f32]) -> Self {
                    assert_eq!(params.len(), #param_count, "{}::from_params: expected {} parameters, got {}", #name_str, #param_count, params.len());
                    let mut buffers = ::cnn::__private::Vec::new();
                    buffers.resize(Self::BUFFER_COUNT, 0.0f32);
                    Self::init_buffers(&mut buffers);
                    Self { params: params.to_vec().into(), buffers: buffers.into(), state: ::core::default::Default::default(), workspace: ::core::default::Default::default() }
                }

                fn params(&self) -> &[f32] {
                    &self.params
                }

                fn params_mut(&mut self) -> &mut [f32] {
                    self.workspace.forget_prepared();
                    self.params.to_mut()
                }

                fn buffers(&self) -> &[f32] {
                    &self.buffers
                }

                fn buffers_mut(&mut self) -> &mut [f32] {
                    self.workspace.forget_prepared();
                    self.buffers.to_mut()
                }

                fn train_state(&self) -> ::cnn::__private::TrainState {
                    self.state
                }

                fn set_train_state(&mut self, state: ::cnn::__private::TrainState) {
                    self.state = state;
                }

                fn forward_batch(&self, input: &[f32], output: &mut [f32]) {
                    ::cnn::__private::forward_batch::<Self>(&self.workspace, &self.params, &self.buffers, input, output)
                }

                fn loss_and_grad(&mut self, input: &[f32], labels: &[u32], grad: &mut [f32]) -> f32 {
                    // The running statistics change.
                    self.workspace.forget_prepared();
                    let buffers = self.buffers.to_mut();
                    ::cnn::__private::loss_and_grad::<Self>(&self.workspace, &self.params, buffers, &mut self.state, input, labels, grad)
                }
            }
        }

        ::cnn::__private::without_std! {
            #(#attrs)*
            #[doc = #doc]
            #vis struct #name {
                params: &'static [f32],
                buffers: &'static [f32],
            }

            impl #name {
                #pretrained_no_std

                /// The logits of one sample. Allocates nothing: its working memory,
                /// `inference_len(1)` `f32`s, is on the stack (use [`Self::forward_into`] to
                /// keep it elsewhere).
                pub fn forward(&self, input: &[f32; #input_len]) -> [f32; #output_len] {
                    let mut output = [0.0f32; #output_len];
                    let mut ws = [0.0f32; #infer_one];
                    <Self as ::cnn::__private::Compiled>::infer(self.params, self.buffers, ::core::option::Option::None, 1, input, &mut output, &mut ws);
                    output
                }

                /// The class with the largest logit (the first, on a tie).
                pub fn predict(&self, input: &[f32; #input_len]) -> usize {
                    ::cnn::__private::argmax(&self.forward(input))
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
            /// Number of buffers: BatchNorm's running statistics.
            pub const BUFFER_COUNT: usize = #buffer_count;
            /// Where each buffer lies in the flat buffer of running statistics, in declaration
            /// order, `running_mean` before `running_var`.
            pub const BUFFERS: &'static [::cnn::__private::ParamInfo] = &[#(#buffers),*];
            /// Multiply-adds of one sample's forward pass (convolutions and dense layers).
            pub const MACS: usize = #macs;
            /// Memory plan, per sample: `f32`s of every stage's output.
            pub const ACTIVATIONS_LEN: usize = #activations_len;
            /// Memory plan, per sample: `f32`s of each of the buffers the backward pass passes
            /// gradients in.
            pub const GRADIENT_BUFFER_LEN: usize = #gradient_len;
            /// Memory plan: how many gradient buffers the backward pass uses at once.
            pub const GRADIENT_BUFFERS: usize = #gradient_buffers;
            /// Memory plan: `f32`s of convolution scratch (padded or unfolded samples), whatever
            /// the batch size.
            pub const SCRATCH_LEN: usize = #scratch_len;
            /// Memory plan: `f32`s a training step keeps between its forward and backward
            /// passes (BatchNorm's batch statistics), whatever the batch size.
            pub const SAVED_LEN: usize = #saved_len;
            /// Memory plan: `f32`s of the partial sums the parts of a batch split across
            /// threads exchange (BatchNorm's), whatever the batch size.
            pub const PARTIAL_LEN: usize = #partial_len;
            /// A training step runs in this many phases; the parts of a batch split across
            /// threads meet between two (for BatchNorm's statistics of the whole batch).
            pub const PHASES: usize = #phase_count;

            /// `f32`s of working memory that inference on `batch` samples uses
            /// ([`Self::forward_into`]).
            pub const fn inference_len(batch: usize) -> usize {
                batch * Self::ACTIVATIONS_LEN + Self::SCRATCH_LEN
            }

            /// `f32`s of working memory that a training step on `batch` samples uses
            /// ([`Self::loss_and_grad_into`]).
            pub const fn workspace_len(batch: usize) -> usize {
                Self::PARTIAL_LEN + Self::SAVED_LEN + batch * (Self::ACTIVATIONS_LEN + Self::GRADIENT_BUFFERS * Self::GRADIENT_BUFFER_LEN) + Self::SCRATCH_LEN
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
                #init_constants
            }

            /// Fills `buffers` (`BUFFER_COUNT` long) with their initial values: running means 0,
            /// running variances 1. Allocates nothing.
            ///
            /// # Panics
            ///
            /// If `buffers.len() != BUFFER_COUNT`.
            pub fn init_buffers(buffers: &mut [f32]) {
                assert_eq!(buffers.len(), #buffer_count, "{}::init_buffers: buffers must hold BUFFER_COUNT = {} values, got {}", #name_str, #buffer_count, buffers.len());
                #init_buffers
            }

            /// Logits of a batch into `output` (inference) with parameters `params` and buffers
            /// `buffers`, in the caller's working memory `ws`: allocates nothing, uses no thread,
            /// and gives the bits of `forward`. `input.len() == batch * INPUT_LEN`,
            /// `output.len() == batch * OUTPUT_LEN`, `ws.len() >= inference_len(batch)`.
            ///
            /// # Panics
            ///
            /// If a length does not fit, as above; the message gives expected and actual lengths.
            pub fn forward_into(params: &[f32], buffers: &[f32], input: &[f32], output: &mut [f32], ws: &mut [f32]) {
                ::cnn::__private::forward_into::<Self>(params, buffers, input, output, ws)
            }

            /// A training step without an allocator: the mean softmax cross-entropy of a batch,
            /// and its gradient written over `grad` (`PARAM_COUNT` long, the layout of
            /// `PARAMS`), in the caller's working memory `ws`; updates BatchNorm's running
            /// statistics in `buffers` and draws Dropout's masks from `state` (then counts the
            /// step in it). Uses no thread. With
            /// `cnn::optim::sgd_step(params, grad, momentum_buf, lr, momentum)` it makes a
            /// training step. `input.len() == labels.len() * INPUT_LEN`,
            /// `ws.len() >= workspace_len(labels.len())`.
            ///
            /// # Panics
            ///
            /// If a length does not fit, as above, the batch is empty, or a label is not below
            /// `OUTPUT_LEN`.
            pub fn loss_and_grad_into(params: &[f32], buffers: &mut [f32], state: &mut ::cnn::__private::TrainState, input: &[f32], labels: &[u32], grad: &mut [f32], ws: &mut [f32]) -> f32 {
                ::cnn::__private::loss_and_grad_into::<Self>(params, buffers, state, input, labels, grad, ws)
            }

            #[inline]
            fn __forward_eval(params: &[f32], buffers: &[f32], prepared: ::core::option::Option<&[f32]>, batch: usize, input: &[f32], acts: &mut [f32], scratch: &mut [f32]) {
                let _ = (params, buffers, prepared, batch, input, &acts, &scratch);
                #forward_eval
            }
        }

        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, clippy::unnecessary_cast, clippy::let_unit_value)]
        impl ::cnn::__private::Compiled for #name {
            const NAME: &'static str = #name_str;
            const INPUT_LEN: usize = #input_len;
            const OUTPUT_LEN: usize = #output_len;
            const PARAM_COUNT: usize = #param_count;
            const BUFFER_COUNT: usize = #buffer_count;
            const PHASES: usize = #phase_count;
            const PREPARED_LEN: usize = #prepared_len;

            fn prepare(params: &[f32], buffers: &[f32], prepared: &mut [f32]) {
                let _ = (params, buffers, &prepared);
                #prepare
            }

            fn inference_len(batch: usize) -> usize {
                Self::inference_len(batch)
            }

            fn workspace_len(batch: usize) -> usize {
                Self::workspace_len(batch)
            }

            /// A block of a few samples at a time through every layer, so that their
            /// activations stay in cache from one layer to the next.
            #[inline]
            fn infer(params: &[f32], buffers: &[f32], prepared: ::core::option::Option<&[f32]>, batch: usize, input: &[f32], logits: &mut [f32], ws: &mut [f32]) {
                let (total, all_input) = (batch, input);
                let mut done = 0;
                while done < total {
                    let batch = ::core::cmp::min(#infer_block, total - done);
                    let input = &all_input[done * #input_len..(done + batch) * #input_len];
                    let (acts, scratch) = ws.split_at_mut(batch * Self::ACTIVATIONS_LEN);
                    Self::__forward_eval(params, buffers, prepared, batch, input, acts, scratch);
                    logits[done * #output_len..(done + batch) * #output_len].copy_from_slice(#logits);
                    done += batch;
                }
            }

            /// Phase `phase` of a training step on `batch` samples, the batch's samples
            /// `first..first + batch`, as their share of a batch of `total`, in `ws`
            /// (`workspace_len(batch)` long: partial sums, saved statistics, activations,
            /// gradient buffers, scratch). Returns the share of the loss (in the phase that
            /// computes it, 0 in the others).
            #[inline]
            fn phase(phase: usize, params: &[f32], key: ::cnn::__private::TrainState, first: usize, batch: usize, input: &[f32], labels: &[u32], total: usize, grad: &mut [f32], ws: &mut [f32]) -> f32 {
                let _ = (params, key, first, labels, total, &grad);
                let (partial, rest) = ws.split_at_mut(Self::PARTIAL_LEN);
                let (saved, rest) = rest.split_at_mut(Self::SAVED_LEN);
                let (acts, rest) = rest.split_at_mut(batch * Self::ACTIVATIONS_LEN);
                let (grads, scratch) = rest.split_at_mut(batch * Self::GRADIENT_BUFFERS * Self::GRADIENT_BUFFER_LEN);
                let _ = (&partial, &saved, &acts, &grads, &scratch);
                #prelude
                let mut loss = 0.0;
                match phase {
                    #(#phase_arms)*
                    _ => {}
                }
                loss
            }

            /// What runs between phase `phase` and the next, over every part's slot (each
            /// starting as `phase`'s `ws`): BatchNorm's statistics of the whole batch.
            #[inline]
            fn between<S: ::core::convert::AsRef<[f32]> + ::core::convert::AsMut<[f32]>>(phase: usize, batch: usize, slots: &mut [S], buffers: &mut [f32]) {
                let _ = (batch, &slots, &buffers);
                match phase {
                    #(#between_arms)*
                    _ => {}
                }
            }
        }
    }
}

/// `pretrained_params()` and `pretrained_buffers()`: the file embedded with `include_bytes!`
/// (so cargo rebuilds when it changes), its tensors gathered at compile time (const evaluation,
/// one copy per tensor) into declaration order in `f32`-aligned statics, read in place.
fn pretrained(embedded: &Embedded, param_count: usize, buffer_count: usize) -> TokenStream {
    let path = &embedded.path;
    let file = std::path::Path::new(path)
        .file_name()
        .map_or(String::new(), |f| f.to_string_lossy().into_owned());
    let gathered = |moves: &[(usize, usize)], count: usize| {
        let bytes = 4 * count;
        let moves = moves.iter().map(|(from, len)| quote!((#from, #len)));
        quote! {
            static BYTES: ::cnn::__private::Aligned<[u8; #bytes]> =
                ::cnn::__private::Aligned(::cnn::__private::gather::<#bytes>(::core::include_bytes!(#path), &[#(#moves),*]));
            ::cnn::__private::f32s(&BYTES.0)
        }
    };
    let params = gathered(&embedded.moves, param_count);
    let buffers = gathered(&embedded.buffer_moves, buffer_count);
    let doc = format!(
        "The weights of `{file}`, checked against the declaration and embedded at compile time, in \
         the layout of `PARAMS`. Read in place: allocates nothing."
    );
    let buffers_doc = format!(
        "The buffers (BatchNorm's running statistics) of `{file}`, embedded at compile time, in \
         the layout of `BUFFERS`. Read in place: allocates nothing."
    );
    quote! {
        #[doc = #doc]
        pub fn pretrained_params() -> &'static [f32] {
            #params
        }

        #[doc = #buffers_doc]
        pub fn pretrained_buffers() -> &'static [f32] {
            #buffers
        }
    }
}

/// `input` for the network's input, else the region's slice `a{reg}`.
fn region(reg: Reg) -> TokenStream {
    if reg == 0 {
        quote!(input)
    } else {
        let a = format_ident!("a{}", reg);
        quote!(#a)
    }
}

fn buffer(slot: usize) -> Ident {
    format_ident!("g{}", slot)
}

fn layout_tokens(layout: Layout) -> TokenStream {
    match layout {
        Layout::SampleMajor => quote!(::cnn::__private::Layout::SampleMajor),
        Layout::ChannelMajor => quote!(::cnn::__private::Layout::ChannelMajor),
    }
}

/// A transpose step's call: `from` into `to` forward, or (`backward`) the gradient back the
/// other way. Nothing for an op.
fn transpose_call(kernel: &Kernel, from: &TokenStream, to: &TokenStream, backward: bool) -> TokenStream {
    let (channels, plane, to_sample_major) = match kernel {
        Kernel::ToSampleMajor { channels, plane } => (channels, plane, !backward),
        Kernel::ToChannelMajor { channels, plane } => (channels, plane, backward),
        Kernel::Op(_) => return TokenStream::new(),
    };
    let function = if to_sample_major {
        quote!(to_sample_major)
    } else {
        quote!(to_channel_major)
    };
    quote!(::cnn::__private::#function(#channels, batch, #plane, #from, #to);)
}

/// Inference: splits `acts` into one slice per region (`a1`, `a2`, ...), then calls each step
/// in order.
/// The inference pass as code, and the code that prepares the parameters it reads
/// (`Compiled::prepare`) with their length.
fn forward_body(plan: &Plan) -> (TokenStream, TokenStream, usize) {
    let mut body = TokenStream::new();
    let (mut prepare, mut prepared_len) = (TokenStream::new(), 0);
    for (reg, len) in plan.regs.iter().enumerate().skip(1) {
        let a = format_ident!("a{}", reg);
        body.extend(quote!(let (#a, acts) = acts.split_at_mut(batch * #len);));
    }
    let input = |r: Reg| {
        let a = region(r);
        if r == 0 {
            a
        } else {
            quote!(&*#a)
        }
    };
    let mut steps = plan.steps.iter().enumerate();
    while let Some((i, step)) = steps.next() {
        let x: Vec<TokenStream> = step.inputs.iter().map(|&r| input(r)).collect();
        let layout = layout_tokens(step.layout);
        if let (Some(folded), Kernel::Op(conv)) = (plan.folded(i), &step.kernel) {
            // The steps folded in write nothing of their own: skip them.
            let last = folded.last();
            let Kernel::Op(bn) = &plan.steps[folded.bn].kernel else {
                unreachable!()
            };
            let y = region(plan.steps[last].output);
            let then = kinds::Then {
                residual: folded.add.map(|(_, r)| input(r)),
                relu: folded.relu,
            };
            let folded = kinds::folded(conv, bn, prepared_len);
            body.extend(folded.forward(&x[0], &y, &layout, then));
            prepare.extend(folded.prepare());
            prepared_len += folded.prepared_len();
            steps.nth(last - i - 1);
            continue;
        }
        let y = region(step.output);
        body.extend(match &step.kernel {
            Kernel::Op(op) => {
                let call = Call {
                    x,
                    y,
                    layout,
                    relu: step.relu,
                    saved: step.saved.clone(),
                    dy: TokenStream::new(),
                    dy_mut: TokenStream::new(),
                    dx: Vec::new(),
                };
                if let Some(prepared) = kinds::prepared(op, prepared_len) {
                    prepare.extend(prepared.prepare());
                    prepared_len += prepared.prepared_len();
                    prepared.forward(&call)
                } else {
                    kinds::forward(op, &call, false)
                }
            }
            transpose => transpose_call(transpose, &x[0], &y, false),
        });
    }
    (body, prepare, prepared_len)
}

/// A training step as code: the region and gradient-buffer slices, then the phases (forward
/// pass, loss, backward pass over the gradient buffers `g0`, `g1`, ... in reverse), cut where
/// the parts of a batch must meet (BatchNorm), and the code that runs at each meeting.
struct Training {
    /// The slices every phase sees.
    prelude: TokenStream,
    phases: Vec<TokenStream>,
    /// `between[i]` runs after phase `i`.
    between: Vec<TokenStream>,
}

impl Training {
    fn add(&mut self, pieces: Vec<kinds::Piece>) {
        for piece in pieces {
            match piece {
                kinds::Piece::Code(code) => self.phases.last_mut().into_iter().for_each(|p| p.extend(code.clone())),
                kinds::Piece::Barrier(code) => {
                    self.between.push(code);
                    self.phases.push(TokenStream::new());
                }
            }
        }
    }
}

fn training(plan: &Plan) -> Training {
    let mut prelude = TokenStream::new();
    for (reg, len) in plan.regs.iter().enumerate().skip(1) {
        let a = format_ident!("a{}", reg);
        prelude.extend(quote!(let (#a, acts) = acts.split_at_mut(batch * #len);));
    }
    let gl = plan.gradient_len;
    for slot in 0..plan.gradient_buffers {
        let g = buffer(slot);
        prelude.extend(quote!(let (#g, grads) = grads.split_at_mut(batch * #gl);));
    }
    let mut t = Training {
        prelude,
        phases: vec![TokenStream::new()],
        between: Vec::new(),
    };
    let read = |r: Reg| {
        let a = region(r);
        if r == 0 {
            a
        } else {
            quote!(&*#a)
        }
    };
    for step in &plan.steps {
        let x: Vec<TokenStream> = step.inputs.iter().map(|&r| read(r)).collect();
        let y = region(step.output);
        let layout = layout_tokens(step.layout);
        let pieces = match &step.kernel {
            Kernel::Op(op) => {
                let call = Call {
                    x,
                    y,
                    layout,
                    relu: step.relu,
                    saved: step.saved.clone(),
                    dy: TokenStream::new(),
                    dy_mut: TokenStream::new(),
                    dx: Vec::new(),
                };
                kinds::forward_train(op, &call)
            }
            transpose => vec![kinds::Piece::Code(transpose_call(transpose, &x[0], &y, false))],
        };
        t.add(pieces);
    }
    let (logits, out_len) = (read(plan.output), plan.regs[plan.output]);
    let dl = buffer(plan.loss_buffer);
    t.add(vec![kinds::Piece::Code(quote! {
        loss = ::cnn::__private::softmax_cross_entropy_part(#logits, labels, #out_len, &mut #dl[..batch * #out_len], total);
    })]);
    for back in &plan.backward {
        let step = &plan.steps[back.step];
        let out_len = plan.regs[step.output];
        let x: Vec<TokenStream> = step.inputs.iter().map(|&r| read(r)).collect();
        let y = read(step.output);
        let dyb = buffer(back.dy);
        let (dy, dy_mut) = (quote!(&#dyb[..batch * #out_len]), quote!(&mut #dyb[..batch * #out_len]));
        let dx: Vec<Option<TokenStream>> = step
            .inputs
            .iter()
            .zip(&back.dx)
            .map(|(&r, slot)| {
                slot.map(|s| {
                    let (g, len) = (buffer(s), plan.regs[r]);
                    quote!(&mut #g[..batch * #len])
                })
            })
            .collect();
        let layout = layout_tokens(step.layout);
        let mut pieces = match &step.kernel {
            Kernel::Op(op) => {
                let call = Call {
                    x,
                    y,
                    layout,
                    relu: step.relu,
                    saved: step.saved.clone(),
                    dy,
                    dy_mut,
                    dx,
                };
                kinds::backward_train(op, &call)
            }
            // Transposes only pass the gradient on, transposed back.
            transpose => match &dx[0] {
                Some(dx) => vec![kinds::Piece::Code(transpose_call(transpose, &dy, dx, true))],
                None => Vec::new(),
            },
        };
        for &(into, from) in &back.add {
            let (gi, gf) = (buffer(into), buffer(from));
            let len = step.inputs.iter().map(|&r| plan.regs[r]).max().unwrap_or(0);
            pieces.push(kinds::Piece::Code(
                quote!(::cnn::__private::add_assign(&mut #gi[..batch * #len], &#gf[..batch * #len]);),
            ));
        }
        t.add(pieces);
    }
    t
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
            pub fn pretrained_buffers() -> &'static [f32] { #unreachable }
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
            pub const BUFFER_COUNT: usize = 0;
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
            fn loss_and_grad(&mut self, input: &[f32], labels: &[u32], grad: &mut [f32]) -> f32 { #unreachable }
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
