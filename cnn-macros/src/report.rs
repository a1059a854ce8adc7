//! A sink that collects the errors of one pass, so one build reports every bad stage.

use proc_macro2::Span;
use std::fmt::Display;

#[derive(Default)]
pub struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    pub fn error(&mut self, span: Span, message: impl Display) {
        self.errors.push(syn::Error::new(span, message));
    }

    pub fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// All collected errors as one `syn::Error` (each keeps its own span), if there are any.
    pub fn into_result(self) -> Result<(), syn::Error> {
        let mut all = self.errors.into_iter();
        match all.next() {
            None => Ok(()),
            Some(mut first) => {
                first.extend(all);
                Err(first)
            }
        }
    }
}
