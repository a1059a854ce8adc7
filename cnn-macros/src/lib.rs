//! The `cnn!` procedural macro: a network declaration in, a shape-checked, monomorphized
//! network struct out.
//!
//! Three passes, each in its own (private) module: `parse` turns tokens into a `parse::Decl`
//! that keeps every span; `check` computes every stage's shape and validates, collecting all
//! errors; `expand` generates the code (planned by `plan`) and never reports a user error. Use
//! the macro through the `cnn` crate, which documents the syntax.
#![forbid(unsafe_code)]

mod check;
mod expand;
#[cfg(test)]
mod fuzz;
mod ir;
mod kinds;
mod messages;
mod parse;
mod plan;
mod report;
#[cfg(test)]
mod tests;
mod weights;

use proc_macro2::TokenStream;

/// Declares a convolutional network; see the `cnn` crate for the syntax.
#[proc_macro]
pub fn cnn(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand_cnn(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The whole macro as a plain function over `proc_macro2` tokens, so tests (and fuzzers) can
/// drive it without a compiler.
///
/// When the declaration has errors, the struct is still emitted with its API stubbed, so code
/// that uses the type does not add a page of follow-on errors to the real ones.
fn expand_cnn(input: TokenStream) -> syn::Result<TokenStream> {
    let decl: parse::Decl = match syn::parse2(input.clone()) {
        Ok(decl) => decl,
        Err(errors) => {
            // Without a header there is no struct to stub: the error alone is all there is.
            let header: parse::Header = syn::parse2(input).map_err(|_| errors.clone())?;
            return Ok(with_stub(errors, &header, &ir::Partial::default()));
        }
    };
    let model = match check::check(&decl) {
        Ok(model) => model,
        Err((errors, partial)) => return Ok(with_stub(errors, &decl.header, &partial)),
    };
    match weights::check(&decl, &model) {
        Ok(embedded) => Ok(expand::network(&decl, &model, embedded.as_ref())),
        Err(errors) => {
            let partial = ir::Partial {
                input: Some(model.input),
                output_len: Some(model.output_len),
            };
            Ok(with_stub(errors, &decl.header, &partial))
        }
    }
}

fn with_stub(errors: syn::Error, header: &parse::Header, partial: &ir::Partial) -> TokenStream {
    let mut tokens = errors.to_compile_error();
    tokens.extend(expand::stub(header, partial));
    tokens
}
