//! `#[derive(SafeParams)]` for safejax. Use it through the `safejax` crate, which re-exports it
//! next to the trait.
//!
//! The pipeline: `ast` models the input and `attr` parses `#[safejax(...)]`, recording every
//! problem in one error collector (`ctxt`); `check` applies the rules across fields; `expect`
//! reads the headers of pinned files into a table (and `tree` lays its names out as the runtime's
//! key tree: the runtime holds the same file); `expand` writes the impl (with the struct's
//! static `KIND` and the const checks of collisions and pinned files) or, when anything was
//! wrong, the errors and a stub impl.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod expect;
mod tree;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `safejax::SafeParams` for a struct: its tensors are saved and loaded under Flax,
/// Haiku or Objax keys made from the field names.
///
/// Attributes (see the `safejax` crate documentation for the full reference):
///
/// - on the struct: `#[safejax(style = "flax" | "haiku" | "objax")]`,
///   `collection = "..."`, `class = "..."`, `crate = "..."`, `bound = "..."`, `borrow`,
///   `sep = "/"`, `expect = "..."` (or `expect(path = "...", collections = [...],
///   without_collection)`);
/// - on a field: `rename = "..."`, `skip`, `default`, `collection = "..."`, `class = "..."`,
///   `sep = "/"`, `numbering = "..."`, `flatten`, `recursive`.
#[proc_macro_derive(SafeParams, attributes(safejax))]
pub fn derive_safe_params(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}

#[cfg(test)]
mod tests;
