//! Pass 1: tokens to a declaration. Keeps every span; interprets nothing beyond the grammar.
//!
//! ```text
//! decl   := attr* vis "struct" Ident "{" entry ("," entry)* ","? "}"
//! body   := entry ("," entry)* ","?
//! entry  := "input" ":" "[" expr ("," expr)* "]"
//!         | name ":" (layer | group) ("->" layer)?
//! name   := Ident | LitInt
//! group  := Ident "{" body? "}"      (a block's; after another Ident, the braces are skipped)
//! layer  := Ident ( "(" arg ("," arg)* ")" )?
//! arg    := expr | Ident "=" expr
//! ```
//! Argument values are kept as [`Value`]s; whether they make sense is for `check` to say.

use crate::messages as msg;
use crate::report::Errors;
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, parenthesized, token, Attribute, Expr, ExprLit, Ident, Lit, Token, UnOp, Visibility};

/// Where a piece of the declaration sits, for error messages: its tokens, so an error can span
/// all of them.
#[derive(Clone)]
pub struct Loc(pub TokenStream);

impl Loc {
    pub fn of(tokens: &impl ToTokens) -> Self {
        Loc(tokens.to_token_stream())
    }
}

/// A whole `cnn! { ... }` declaration.
pub struct Decl {
    pub header: Header,
    pub entries: Vec<Entry>,
}

/// What comes before the body: `/// docs #[attrs] pub struct Name`. Enough to emit the struct
/// even when the body does not parse.
pub struct Header {
    /// The attributes that carry over to the struct.
    pub attrs: Vec<Attribute>,
    /// Every `#[weights ...]` attribute, as written; `weights` checks its form and the file.
    pub weights: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
}

/// One comma-separated entry of the body, in source order.
pub enum Entry {
    Input(InputDecl),
    Stage(Stage),
}

/// `input: [1, 28, 28]`.
pub struct InputDecl {
    pub key: Ident,
    pub dims: Vec<Value>,
    pub loc: Loc,
}

/// `conv1: Conv2d(6, kernel = 5) -> Relu`, or `layer1: Sequential { ... } -> Relu`.
pub struct Stage {
    pub name: Name,
    pub body: Body,
    pub activation: Option<Layer>,
}

/// A stage's name: an identifier, or (inside a group) an integer like an `nn.Sequential` index.
#[derive(Clone)]
pub struct Name {
    pub text: String,
    pub span: Span,
    /// Written as an integer literal.
    pub int: bool,
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a stage is: one layer, or a group of stages.
pub enum Body {
    Layer(Layer),
    Group(Group),
}

/// `Residual { conv1: ..., bn1: ... }`: a kind and its stages.
pub struct Group {
    pub kind: Ident,
    pub entries: Vec<Entry>,
}

/// `Conv2d(6, kernel = 5)`: a kind and its arguments.
pub struct Layer {
    pub kind: Ident,
    pub args: Vec<Arg>,
    /// The whole layer, kind and arguments.
    pub loc: Loc,
}

/// A positional (`6`) or named (`kernel = 5`) argument.
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Value,
}

/// An argument value or input dimension, as written.
#[derive(Clone)]
pub enum Value {
    /// A non-negative integer literal that fits `usize`.
    Int(usize, Loc),
    /// A float literal, or a negative number.
    Float(f64, Loc),
    /// `true` or `false`.
    Bool(bool, Loc),
    /// `(a, b, ...)`.
    Tuple(Vec<Value>, Loc),
    /// An integer literal too large for `usize`.
    TooLarge(Loc),
    /// Anything else (a path, a call, a string, ...).
    Other(Loc),
}

impl Value {
    pub fn loc(&self) -> &Loc {
        match self {
            Value::Int(_, l)
            | Value::Float(_, l)
            | Value::Bool(_, l)
            | Value::Tuple(_, l)
            | Value::TooLarge(l)
            | Value::Other(l) => l,
        }
    }

    /// The value as the user wrote it, for messages (`-1`, not the token printer's `- 1`).
    pub fn text(&self) -> String {
        let text = self.loc().0.to_string();
        match text.strip_prefix("- ") {
            Some(number) => format!("-{number}"),
            None => text,
        }
    }

    fn from_expr(expr: &Expr) -> Value {
        let loc = Loc::of(expr);
        match expr {
            Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) => match lit.base10_parse::<usize>() {
                Ok(v) => Value::Int(v, loc),
                Err(_) => Value::TooLarge(loc),
            },
            Expr::Lit(ExprLit {
                lit: Lit::Float(lit), ..
            }) => match lit.base10_parse::<f64>() {
                Ok(v) => Value::Float(v, loc),
                Err(_) => Value::Other(loc),
            },
            Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => Value::Bool(b.value, loc),
            Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => match Value::from_expr(&u.expr) {
                Value::Int(v, _) => Value::Float(-(v as f64), loc),
                Value::Float(v, _) => Value::Float(-v, loc),
                _ => Value::Other(loc),
            },
            Expr::Paren(p) => Value::from_expr(&p.expr),
            Expr::Group(g) => Value::from_expr(&g.expr),
            Expr::Tuple(t) => Value::Tuple(t.elems.iter().map(Value::from_expr).collect(), loc),
            _ => Value::Other(loc),
        }
    }
}

impl Parse for Header {
    /// Parses the header and ignores the rest, for the stub emitted when the body is malformed.
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let header = Header::parse_head(input)?;
        input.parse::<TokenStream>()?;
        Ok(header)
    }
}

impl Header {
    fn parse_head(input: ParseStream) -> syn::Result<Self> {
        let (weights, attrs) = input
            .call(Attribute::parse_outer)?
            .into_iter()
            .partition(|attr| attr.path().is_ident("weights"));
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        Ok(Header {
            attrs,
            weights,
            vis,
            name,
        })
    }
}

impl Parse for Decl {
    /// A malformed entry does not stop the parse: the rest is skipped to the next top-level
    /// comma and parsing goes on, so every syntax error of the body is reported at once.
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let header = Header::parse_head(input)?;
        if input.peek(Token![<]) {
            return Err(input.error(msg::generic_network()));
        }
        let body;
        syn::braced!(body in input);
        let entries = parse_body(&body)?;
        if !input.is_empty() {
            return Err(input.error(msg::trailing_tokens()));
        }
        Ok(Decl { header, entries })
    }
}

/// The comma-separated entries of a body (the network's or a group's). A malformed entry does
/// not stop the parse: the rest is skipped to the next comma, so every syntax error is reported.
fn parse_body(body: ParseStream) -> syn::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut errors = Errors::default();
    while !body.is_empty() {
        match parse_entry(body) {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                errors.push(e);
                skip_to_comma(body)?;
            }
        }
        if !body.is_empty() {
            body.parse::<Token![,]>()?;
        }
    }
    errors.into_result()?;
    Ok(entries)
}

/// One entry and the check that a `,` or the end of the body follows it.
fn parse_entry(input: ParseStream) -> syn::Result<Entry> {
    let entry: Entry = input.parse()?;
    if !input.is_empty() && !input.peek(Token![,]) {
        let found = next_token_text(input);
        let message = match &entry {
            Entry::Stage(stage) => msg::expected_comma(&stage.name.to_string(), true, &found),
            Entry::Input(_) => msg::expected_comma("input", false, &found),
        };
        return Err(input.error(message));
    }
    Ok(entry)
}

/// The next token as written, joint punctuation together (`=>`, not `=`).
fn next_token_text(input: ParseStream) -> String {
    let mut text = String::new();
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            text += &tt.to_string();
            rest = next;
            if !matches!(&tt, proc_macro2::TokenTree::Punct(p) if p.spacing() == proc_macro2::Spacing::Joint) {
                break;
            }
        }
        Ok(((), *cursor))
    });
    text
}

/// Skips the tokens of a malformed entry, up to (not including) the next top-level comma.
fn skip_to_comma(input: ParseStream) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if matches!(&tt, proc_macro2::TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

impl Parse for Entry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = if input.peek(syn::LitInt) {
            let lit: syn::LitInt = input.parse()?;
            Name {
                text: lit.base10_digits().to_string(),
                span: lit.span(),
                int: true,
            }
        } else if input.peek(Ident) {
            let ident: Ident = input.parse()?;
            Name {
                text: ident.to_string(),
                span: ident.span(),
                int: false,
            }
        } else {
            let token: proc_macro2::TokenTree = input.parse()?;
            return Err(syn::Error::new_spanned(&token, msg::bad_stage_name(&token.to_string())));
        };
        if !input.peek(Token![:]) {
            return Err(input.error(msg::expected_colon(&name.text)));
        }
        input.parse::<Token![:]>()?;
        if input.peek(token::Bracket) {
            if name.text != "input" || name.int {
                return Err(syn::Error::new(name.span, msg::shape_on_stage(&name.text)));
            }
            let key = Ident::new("input", name.span);
            let content;
            let bracket = bracketed!(content in input);
            let dims = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
            let mut loc = TokenStream::new();
            bracket.surround(&mut loc, |t| dims.to_tokens(t));
            let dims = dims.iter().map(Value::from_expr).collect();
            return Ok(Entry::Input(InputDecl {
                key,
                dims,
                loc: Loc(loc),
            }));
        }
        let body = if input.peek(Ident) && input.peek2(token::Brace) {
            let kind: Ident = input.parse()?;
            let content;
            syn::braced!(content in input);
            // The stages of something that is not a block (`Conv2d { ... }`, `Parallel { ... }`)
            // are left unread: `check` says what is wrong with the kind, and nothing else.
            let entries = if crate::kinds::BLOCKS.contains(&kind.to_string().as_str()) {
                parse_body(&content)?
            } else {
                content.parse::<TokenStream>()?;
                Vec::new()
            };
            Body::Group(Group { kind, entries })
        } else {
            Body::Layer(input.parse()?)
        };
        let activation = if input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(Entry::Stage(Stage { name, body, activation }))
    }
}

impl Parse for Layer {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let kind: Ident = input.parse()?;
        let mut loc = kind.to_token_stream();
        let mut args = Vec::new();
        if input.peek(token::Paren) {
            let content;
            let paren = parenthesized!(content in input);
            let exprs = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
            paren.surround(&mut loc, |t| exprs.to_tokens(t));
            for expr in &exprs {
                args.push(match expr {
                    Expr::Assign(assign) => match &*assign.left {
                        Expr::Path(p) if p.path.get_ident().is_some() => Arg {
                            name: p.path.get_ident().cloned(),
                            value: Value::from_expr(&assign.right),
                        },
                        left => return Err(syn::Error::new_spanned(left, msg::argument_name())),
                    },
                    _ => Arg {
                        name: None,
                        value: Value::from_expr(expr),
                    },
                });
            }
        }
        Ok(Layer {
            kind,
            args,
            loc: Loc(loc),
        })
    }
}
