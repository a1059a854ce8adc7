//! A residual block's sum, `y = main + shortcut`: not declared as a layer, made by `Residual`.
//! The plan hands the output gradient to one input as it is; these calls serve the rest. With
//! the ReLU after it (`Call::relu`), the sum writes the ReLU's output and its backward pass masks
//! the output gradient in place first.

use super::Call;
use proc_macro2::TokenStream;
use quote::quote;

pub fn forward(call: &Call) -> TokenStream {
    let (a, b, y) = (&call.x[0], &call.x[1], &call.y);
    if call.relu {
        quote!(::cnn::__private::add_relu(#a, #b, #y);)
    } else {
        quote!(::cnn::__private::add(#a, #b, #y);)
    }
}

/// Masks the output gradient after a ReLU, then copies it to every input gradient asked for.
pub fn backward(call: &Call) -> TokenStream {
    let (dy, y) = (&call.dy, &call.y);
    let mask = call.relu.then(|| {
        let dy_mut = &call.dy_mut;
        quote!(::cnn::__private::relu_mask(#y, #dy_mut);)
    });
    let copies: TokenStream = call
        .dx
        .iter()
        .flatten()
        .map(|dx| quote!((#dx).copy_from_slice(#dy);))
        .collect();
    quote!(#mask #copies)
}
