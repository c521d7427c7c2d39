//! `#[safejax(...)]` parsing.
//!
//! Parsing never stops at the first problem: every unknown, duplicate or malformed entry is
//! recorded in the [`Ctxt`] and the rest of the attribute is still read.

use proc_macro2::{Delimiter, Group, Ident, Punct, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::{Attribute, LitStr, Meta, Token, WherePredicate};

use crate::ctxt::Ctxt;

/// The attribute path the derive reads.
const SAFEJAX: &str = "safejax";

/// The keys accepted on the struct.
const CONTAINER_KEYS: &[&str] = &[
    "style",
    "collection",
    "class",
    "crate",
    "bound",
    "borrow",
    "sep",
    "expect",
];

/// The keys accepted on a field.
const FIELD_KEYS: &[&str] = &[
    "rename",
    "skip",
    "default",
    "collection",
    "class",
    "sep",
    "numbering",
    "flatten",
    "recursive",
];

/// An attribute value with the spans errors about it point at.
pub struct Attr<T> {
    /// The key: duplicates and conflicts point here.
    pub key: Span,
    /// The value (the literal): problems with the value point here.
    pub span: Span,
    pub value: T,
}

/// The style a container declares with `style = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Flax,
    Haiku,
    Objax,
}

/// The Haiku separator a field declares with `sep = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sep {
    /// `/~/`: created in the parent's constructor (the runtime's default).
    Constructor,
    /// `/`: created while the parent runs.
    Call,
}

/// How a list field's elements are named, from `numbering = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// `blocks_0`, `blocks_1`, ...
    Index,
    /// `layer_norm`, `layer_norm_1`, ...
    Haiku,
    /// `layer.0`, `layer.1`, ...
    Nested,
}

/// The attributes of the struct itself.
#[derive(Default)]
pub struct ContainerAttrs {
    pub style: Option<Attr<Style>>,
    pub collection: Option<Attr<String>>,
    pub class: Option<Attr<String>>,
    pub krate: Option<Attr<syn::Path>>,
    pub bound: Option<Attr<Vec<WherePredicate>>>,
    pub borrow: Option<Attr<()>>,
    pub sep: Option<Attr<Sep>>,
    /// One file each, of the checkpoint the struct is pinned to.
    pub expect: Vec<Attr<Expect>>,
}

/// A file a root struct is pinned to, from `expect = "..."` or `expect(...)`.
pub struct Expect {
    /// As written: relative to the crate's manifest directory, or absolute.
    pub path: String,
    /// The collections the file holds; `None` for all.
    pub collections: Option<Vec<String>>,
    /// Whether its keys start with their collection.
    pub with_collection: bool,
}

/// The attributes of one field.
#[derive(Default)]
pub struct FieldAttrs {
    pub rename: Option<Attr<String>>,
    pub skip: Option<Attr<()>>,
    pub default: Option<Attr<()>>,
    pub collection: Option<Attr<String>>,
    pub class: Option<Attr<String>>,
    pub sep: Option<Attr<Sep>>,
    pub numbering: Option<Attr<Numbering>>,
    pub flatten: Option<Attr<()>>,
    pub recursive: Option<Attr<()>>,
}

impl ContainerAttrs {
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = ContainerAttrs::default();
        for entry in entries(cx, attrs, "container", CONTAINER_KEYS, FIELD_KEYS) {
            match entry.name.as_str() {
                // #[safejax(style = "flax")]
                "style" => {
                    if let Some(lit) = entry.string(cx) {
                        let style = match lit.value().as_str() {
                            "flax" => Some(Style::Flax),
                            "haiku" => Some(Style::Haiku),
                            "objax" => Some(Style::Objax),
                            other => {
                                cx.error(
                                    lit.span(),
                                    format_args!(
                                        "unknown safejax style `{other}`, expected `flax`, `haiku` or `objax`"
                                    ),
                                );
                                None
                            }
                        };
                        out.style = style.map(|style| entry.attr(&lit, style));
                    }
                }
                // #[safejax(collection = "params")]
                "collection" => out.collection = entry.name_value(cx),
                // #[safejax(class = "MLP")]
                "class" => out.class = entry.name_value(cx),
                // #[safejax(crate = "safejax")]
                "crate" => {
                    if let Some(lit) = entry.string(cx) {
                        match lit.parse::<syn::Path>() {
                            Ok(path) => out.krate = Some(entry.attr(&lit, path)),
                            Err(_) => cx.error(
                                lit.span(),
                                "safejax `crate` expects the path of the safejax crate, such as `\"safejax\"` or `\"::my_crate::safejax\"`",
                            ),
                        }
                    }
                }
                // #[safejax(borrow)]
                "borrow" => out.borrow = entry.flag(cx),
                // #[safejax(sep = "/")]
                "sep" => out.sep = entry.sep(cx),
                // #[safejax(expect = "params.safetensors")]
                // #[safejax(expect(path = "...", collections = ["params"], without_collection))]
                "expect" => {
                    if let Some(expect) = entry.expect(cx) {
                        out.expect.push(expect);
                    }
                }
                // #[safejax(bound = "T: safejax::Element")]
                "bound" => {
                    if let Some(lit) = entry.string(cx) {
                        let parser = Punctuated::<WherePredicate, Token![,]>::parse_terminated;
                        match lit.parse_with(parser) {
                            Ok(predicates) => {
                                out.bound = Some(entry.attr(&lit, predicates.into_iter().collect()))
                            }
                            Err(err) => cx.error(
                                lit.span(),
                                format_args!(
                                    "safejax `bound` expects where-clause predicates such as `\"T: safejax::Element\"`: {err}"
                                ),
                            ),
                        }
                    }
                }
                _ => entry.unknown(cx),
            }
        }
        out
    }
}

impl FieldAttrs {
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = FieldAttrs::default();
        for entry in entries(cx, attrs, "field", FIELD_KEYS, CONTAINER_KEYS) {
            match entry.name.as_str() {
                // #[safejax(rename = "Dense_0")]
                "rename" => out.rename = entry.name_value(cx),
                // #[safejax(skip)]
                "skip" => out.skip = entry.flag(cx),
                // #[safejax(default)]
                "default" => out.default = entry.flag(cx),
                // #[safejax(collection = "batch_stats")]
                "collection" => out.collection = entry.name_value(cx),
                // #[safejax(class = "Sequential")]
                "class" => out.class = entry.name_value(cx),
                // #[safejax(sep = "/")]
                "sep" => out.sep = entry.sep(cx),
                // #[safejax(flatten)]
                "flatten" => out.flatten = entry.flag(cx),
                // #[safejax(recursive)]
                "recursive" => out.recursive = entry.flag(cx),
                // #[safejax(numbering = "haiku")]
                "numbering" => {
                    if let Some(lit) = entry.string(cx) {
                        let numbering = match lit.value().as_str() {
                            "index" => Some(Numbering::Index),
                            "haiku" => Some(Numbering::Haiku),
                            "nested" => Some(Numbering::Nested),
                            other => {
                                cx.error(
                                    lit.span(),
                                    format_args!(
                                        "unknown safejax `numbering` `{other}`, expected `index` (`blocks_0`, `blocks_1`), `haiku` (`linear`, `linear_1`) or `nested` (`layer.0`, `layer.1`)"
                                    ),
                                );
                                None
                            }
                        };
                        out.numbering = numbering.map(|n| entry.attr(&lit, n));
                    }
                }
                _ => entry.unknown(cx),
            }
        }
        out
    }
}

/// What follows a key inside `#[safejax(...)]`.
enum Value {
    /// `skip`
    Flag,
    /// `rename = "x"`: the `=` and everything up to the next top-level comma.
    Eq(Punct, TokenStream),
    /// `rename("x")`
    List(Group),
}

/// One `key`, `key = value` or `key(...)` entry, with where it was written.
struct Entry {
    key: Ident,
    /// The key without any `r#`.
    name: String,
    value: Value,
    /// Whether the entry is on the struct (`container`) or a `field`, for messages.
    place: &'static str,
    expected: &'static [&'static str],
    other_place: &'static [&'static str],
}

impl Entry {
    fn attr<T>(&self, lit: &LitStr, value: T) -> Attr<T> {
        Attr {
            key: self.key.span(),
            span: lit.span(),
            value,
        }
    }

    /// The string literal of `key = "..."`, or a recorded error.
    fn string(&self, cx: &Ctxt) -> Option<LitStr> {
        let name = &self.name;
        match &self.value {
            Value::Eq(eq, tokens) if tokens.is_empty() => {
                cx.error(
                    eq.span(),
                    format_args!("safejax `{name}` expects a string literal after `=`"),
                );
                None
            }
            Value::Eq(_, tokens) => match syn::parse2::<LitStr>(tokens.clone()) {
                Ok(lit) => Some(lit),
                Err(_) => {
                    cx.error_spanned_by(
                        tokens,
                        format_args!(
                            "safejax `{name}` expects a string literal: `{name} = \"...\"`"
                        ),
                    );
                    None
                }
            },
            Value::Flag => {
                cx.error(
                    self.key.span(),
                    format_args!("safejax `{name}` expects a value: `{name} = \"...\"`"),
                );
                None
            }
            Value::List(group) => {
                cx.error(
                    group.span(),
                    format_args!(
                        "safejax `{name}` expects `=` and a string literal: `{name} = \"...\"`"
                    ),
                );
                None
            }
        }
    }

    fn name_value(&self, cx: &Ctxt) -> Option<Attr<String>> {
        self.string(cx).map(|lit| self.attr(&lit, lit.value()))
    }

    /// A Haiku separator: `"/"` or `"/~/"`.
    fn sep(&self, cx: &Ctxt) -> Option<Attr<Sep>> {
        let lit = self.string(cx)?;
        match lit.value().as_str() {
            "/~/" => Some(self.attr(&lit, Sep::Constructor)),
            "/" => Some(self.attr(&lit, Sep::Call)),
            other => {
                cx.error(
                    lit.span(),
                    format_args!(
                        "unknown safejax `sep` `{other}`, expected `/` (created in `__call__`) or `/~/` (created in `__init__`)"
                    ),
                );
                None
            }
        }
    }

    /// `expect = "path"`, or `expect(path = "...", collections = [...], without_collection)`.
    fn expect(&self, cx: &Ctxt) -> Option<Attr<Expect>> {
        let Value::List(group) = &self.value else {
            let lit = self.string(cx)?;
            let expect = Expect {
                path: lit.value(),
                collections: None,
                with_collection: true,
            };
            return Some(self.attr(&lit, expect));
        };
        let mut path: Option<LitStr> = None;
        let mut expect = Expect {
            path: String::new(),
            collections: None,
            with_collection: true,
        };
        const OPTIONS: &str =
            "expected `path = \"...\"`, `collections = [\"...\"]` or `without_collection`";
        // A `path` that is there but malformed is one error, not two.
        let mut seen_path = false;
        for chunk in split_commas(group.stream()) {
            let mut tokens = flatten_invisible(chunk).into_iter();
            let (key, eq) = (tokens.next(), tokens.next());
            let value: TokenStream = tokens.collect();
            let key_name = match &key {
                Some(TokenTree::Ident(ident)) => ident.unraw().to_string(),
                _ => String::new(),
            };
            let is_eq = matches!(&eq, Some(TokenTree::Punct(p)) if p.as_char() == '=');
            let span = key.as_ref().map_or(group.span(), TokenTree::span);
            match (key_name.as_str(), is_eq) {
                ("path", true) => {
                    seen_path = true;
                    match syn::parse2::<LitStr>(value.clone()) {
                        Ok(lit) => path = Some(lit),
                        Err(_) => cx.error_spanned_by(
                            &value,
                            "safejax `expect` `path` expects a string literal",
                        ),
                    }
                }
                ("collections", true) => {
                    let list = syn::parse2::<Group>(value.clone())
                        .ok()
                        .filter(|g| g.delimiter() == Delimiter::Bracket)
                        .and_then(|g| {
                            let parser = Punctuated::<LitStr, Token![,]>::parse_terminated;
                            syn::parse::Parser::parse2(parser, g.stream()).ok()
                        });
                    match list {
                        Some(list) => {
                            expect.collections = Some(list.iter().map(LitStr::value).collect())
                        }
                        None => cx.error_spanned_by(
                            &value,
                            "safejax `expect` `collections` expects an array of string literals: `collections = [\"params\"]`",
                        ),
                    }
                }
                ("without_collection", false) if eq.is_none() => expect.with_collection = false,
                (name, _) => {
                    let hint = match name {
                        "collection" => ", did you mean `collections = [\"...\"]`?".to_owned(),
                        "with_collection" | "without_collections" => {
                            ", did you mean `without_collection`?".to_owned()
                        }
                        _ => format!(", {OPTIONS}"),
                    };
                    let shown = if name.is_empty() { "" } else { name };
                    cx.error(
                        span,
                        format_args!("unknown safejax `expect` option `{shown}`{hint}"),
                    )
                }
            }
        }
        let Some(lit) = path else {
            if !seen_path {
                cx.error(group.span(), "safejax `expect(...)` needs `path = \"...\"`");
            }
            return None;
        };
        expect.path = lit.value();
        Some(self.attr(&lit, expect))
    }

    /// A flag such as `skip`, which takes no value.
    fn flag(&self, cx: &Ctxt) -> Option<Attr<()>> {
        let name = &self.name;
        let value = match &self.value {
            Value::Flag => {
                return Some(Attr {
                    key: self.key.span(),
                    span: self.key.span(),
                    value: (),
                });
            }
            Value::Eq(eq, tokens) => {
                let mut all = eq.to_token_stream();
                all.extend(tokens.clone());
                all
            }
            Value::List(group) => group.to_token_stream(),
        };
        cx.error_spanned_by(
            value,
            format_args!("safejax `{name}` takes no value: write `#[safejax({name})]`"),
        );
        None
    }

    fn unknown(&self, cx: &Ctxt) {
        let name = &self.name;
        let place = self.place;
        let mut message = format!("unknown safejax {place} attribute `{name}`");
        if self.other_place.contains(&name.as_str()) {
            let other = if place == "field" {
                "container"
            } else {
                "field"
            };
            message.push_str(&format!(", `{name}` is a {other} attribute"));
        } else if let Some(close) = closest(name, self.expected) {
            message.push_str(&format!(", did you mean `{close}`?"));
        } else {
            let list: Vec<String> = self.expected.iter().map(|k| format!("`{k}`")).collect();
            message.push_str(&format!(", expected one of {}", list.join(", ")));
        }
        cx.error(self.key.span(), message);
    }
}

/// Every entry of every `#[safejax(...)]` in `attrs`, minus the malformed and duplicate ones,
/// which are recorded in `cx`.
fn entries(
    cx: &Ctxt,
    attrs: &[Attribute],
    place: &'static str,
    expected: &'static [&'static str],
    other_place: &'static [&'static str],
) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident(SAFEJAX) {
            continue;
        }
        let list = match &attr.meta {
            Meta::List(list) if matches!(list.delimiter, syn::MacroDelimiter::Paren(_)) => list,
            _ => {
                cx.error_spanned_by(
                    attr,
                    "expected a list of safejax attributes: `#[safejax(...)]`",
                );
                continue;
            }
        };
        for chunk in split_commas(list.tokens.clone()) {
            let Some(entry) = entry(cx, chunk, place, expected, other_place) else {
                continue;
            };
            let known = expected.contains(&entry.name.as_str());
            // One `expect` per file of a checkpoint split over several.
            let repeatable = entry.name == "expect";
            if known && !repeatable && out.iter().any(|seen| seen.name == entry.name) {
                cx.error(
                    entry.key.span(),
                    format_args!("duplicate safejax attribute `{}`", entry.name),
                );
                continue;
            }
            out.push(entry);
        }
    }
    out
}

/// Splits the tokens of a list at its top-level commas. Empty entries are dropped (a trailing
/// comma is fine).
fn split_commas(tokens: TokenStream) -> Vec<Vec<TokenTree>> {
    let mut chunks = vec![Vec::new()];
    for token in tokens {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ',' => chunks.push(Vec::new()),
            _ => {
                if let Some(last) = chunks.last_mut() {
                    last.push(token);
                }
            }
        }
    }
    chunks.retain(|chunk| !chunk.is_empty());
    chunks
}

/// Reads one entry: `key`, `key = ...` or `key(...)`.
fn entry(
    cx: &Ctxt,
    chunk: Vec<TokenTree>,
    place: &'static str,
    expected: &'static [&'static str],
    other_place: &'static [&'static str],
) -> Option<Entry> {
    let mut tokens = flatten_invisible(chunk).into_iter();
    let key = match tokens.next() {
        Some(TokenTree::Ident(key)) => key,
        Some(other) => {
            cx.error(
                other.span(),
                "expected a safejax attribute name, such as `rename` or `skip`",
            );
            return None;
        }
        None => return None,
    };
    let name = key.unraw().to_string();
    let rest: Vec<TokenTree> = tokens.collect();
    let value = match rest.first() {
        None => Value::Flag,
        Some(TokenTree::Punct(eq)) if eq.as_char() == '=' => {
            Value::Eq(eq.clone(), rest[1..].iter().cloned().collect())
        }
        Some(TokenTree::Group(group))
            if rest.len() == 1 && group.delimiter() == Delimiter::Parenthesis =>
        {
            Value::List(group.clone())
        }
        Some(other) => {
            cx.error(
                other.span(),
                format_args!("expected `=` or `,` after safejax attribute `{name}`"),
            );
            return None;
        }
    };
    Some(Entry {
        key,
        name,
        value,
        place,
        expected,
        other_place,
    })
}

/// Unwraps the invisible groups `macro_rules!` puts around captured fragments, so that
/// `#[safejax($key = $value)]` reads like the plain form.
fn flatten_invisible(chunk: Vec<TokenTree>) -> Vec<TokenTree> {
    match chunk.as_slice() {
        [TokenTree::Group(group)] if group.delimiter() == Delimiter::None => {
            flatten_invisible(group.stream().into_iter().collect())
        }
        _ => chunk,
    }
}

/// The expected key closest to `name`, if it is close enough to be a typo.
fn closest(name: &str, expected: &[&'static str]) -> Option<&'static str> {
    expected
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2 && *distance < candidate.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            let insert = current[j] + 1;
            let delete = previous[j + 1] + 1;
            current.push(substitute.min(insert).min(delete));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("renam", "rename"), 1);
        assert_eq!(edit_distance("colection", "collection"), 1);
        assert_eq!(edit_distance("sep", "skip"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("renmae", FIELD_KEYS), Some("rename"));
        assert_eq!(closest("zzzzzz", FIELD_KEYS), None);
    }
}
