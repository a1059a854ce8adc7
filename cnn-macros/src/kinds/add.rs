//! A residual block's sum, `y = main + shortcut`: not declared as a layer, made by `Residual`.
//! The plan hands the output gradient to one input as it is; these calls serve the rest.

use super::Call;
use proc_macro2::TokenStream;
use quote::quote;

pub fn forward(call: &Call) -> TokenStream {
    let (a, b, y) = (&call.x[0], &call.x[1], &call.y);
    quote!(::cnn::__private::add(#a, #b, #y);)
}

/// Copies the output gradient to every input gradient asked for.
pub fn backward(call: &Call) -> TokenStream {
    let dy = &call.dy;
    call.dx
        .iter()
        .flatten()
        .map(|dx| quote!((#dx).copy_from_slice(#dy);))
        .collect()
}
