use proc_macro::TokenStream;
#[proc_macro]
pub fn cnn(_input: TokenStream) -> TokenStream { TokenStream::new() }
