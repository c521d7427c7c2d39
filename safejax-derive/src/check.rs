//! Rules across attributes and fields, checked once the whole input is parsed.

use proc_macro2::Span;

use crate::ast::{Container, Field};
use crate::attr::Attr;
use crate::ctxt::Ctxt;

/// The strings that separate key segments in at least one style. The runtime refuses the same
/// list (`safejax_core::key::RESERVED_SEPARATORS`); a proc-macro cannot depend on it.
const RESERVED_SEPARATORS: [&str; 7] = [".", "/", "::", "(", ")", "[", "]"];

pub fn check(cx: &Ctxt, cont: &Container) {
    check_names(cx, cont);
    check_skip_conflicts(cx, cont);
    check_duplicate_segments(cx, cont);
    check_borrow(cx, cont);
    check_flatten(cx, cont);
}

// `flatten` puts a list's elements at consecutive positions of a tuple struct; the file must
// tell unambiguously where the list ends.
fn check_flatten(cx: &Ctxt, cont: &Container) {
    let flattened: Vec<&Field> = cont
        .fields
        .iter()
        .filter(|f| f.attrs.flatten.is_some() && f.is_stored())
        .collect();
    let Some(first) = flattened.first() else {
        return;
    };
    let span = |field: &Field| {
        field
            .attrs
            .flatten
            .as_ref()
            .map_or(Span::call_site(), |a| a.key)
    };
    if !matches!(first.member, syn::Member::Unnamed(_)) {
        for field in &flattened {
            cx.error(
                span(field),
                "safejax `flatten` puts a list's elements at the struct's positions (`layers_<i>`, Objax `[i]`): it needs a tuple struct",
            );
        }
        return;
    }
    if let Some(borrow) = &cont.attrs.borrow {
        cx.error(
            borrow.key,
            "safejax `flatten` is not supported in a `borrow` struct",
        );
    }
    for field in &flattened {
        let others = [
            ("rename", field.attrs.rename.as_ref().map(|a| a.key)),
            ("numbering", field.attrs.numbering.as_ref().map(|a| a.key)),
            ("default", field.attrs.default.as_ref().map(|a| a.key)),
        ];
        for (name, key) in others {
            if let Some(key) = key {
                cx.error(
                    key,
                    format_args!(
                        "safejax `flatten` and `{name}` cannot be combined: a flattened list's elements have the struct's positions, not a name of their own"
                    ),
                );
            }
        }
    }
    // A list of fixed length (`[T; N]`) shifts what follows by a known amount.
    let variable: Vec<&&Field> = flattened
        .iter()
        .filter(|f| !matches!(f.ty, syn::Type::Array(_)))
        .collect();
    if variable.len() > 1 {
        for field in &variable[1..] {
            cx.error(
                span(field),
                "safejax `flatten` on two lists of variable length: the file cannot tell where the first ends (make one an array `[T; N]`)",
            );
        }
    }
    let Some(list) = variable.first() else {
        return;
    };
    for field in cont.fields.iter().filter(|f| f.index > list.index) {
        if let Some(default) = &field.attrs.default {
            cx.error(
                default.key,
                "safejax `default` after a flattened list of variable length: an absent field and a shorter list would read alike",
            );
        }
    }
    for field in &cont.fields {
        if let Some(rename) = &field.attrs.rename
            && rename
                .value
                .strip_prefix("layers_")
                .is_some_and(|n| n.parse::<usize>().is_ok())
        {
            cx.error(
                rename.span,
                "safejax `rename = \"layers_<n>\"` in a struct with a flattened list: positions after the list depend on its length",
            );
        }
    }
}

// `borrow` names the lifetime of the bytes a struct's views borrow: the struct needs one.
fn check_borrow(cx: &Ctxt, cont: &Container) {
    if let Some(borrow) = &cont.attrs.borrow
        && cont.original.generics.lifetimes().next().is_none()
    {
        cx.error(
            borrow.span,
            "safejax `borrow` needs a struct with a lifetime, that of the bytes its views borrow: `struct Model<'a>`",
        );
    }
}

// Every rename, class and collection is a non-empty name free of every style's separators.
fn check_names(cx: &Ctxt, cont: &Container) {
    check_name(cx, "collection", cont.attrs.collection.as_ref());
    check_name(cx, "class", cont.attrs.class.as_ref());
    for field in &cont.fields {
        check_name(cx, "rename", field.attrs.rename.as_ref());
        check_name(cx, "collection", field.attrs.collection.as_ref());
        check_name(cx, "class", field.attrs.class.as_ref());
    }
}

fn check_name(cx: &Ctxt, attribute: &str, name: Option<&Attr<String>>) {
    let Some(name) = name else {
        return;
    };
    if name.value.is_empty() {
        cx.error(
            name.span,
            format_args!("safejax `{attribute}` must not be empty"),
        );
    } else if let Some(sep) = RESERVED_SEPARATORS
        .iter()
        .find(|sep| name.value.contains(**sep))
    {
        cx.error(
            name.span,
            format_args!(
                "safejax `{attribute}` `{}` contains `{sep}`, which separates key segments",
                name.value
            ),
        );
    }
}

// A skipped field is neither written nor read, so nothing else may be said about its key.
fn check_skip_conflicts(cx: &Ctxt, cont: &Container) {
    for field in &cont.fields {
        let attrs = &field.attrs;
        if attrs.skip.is_none() {
            continue;
        }
        let others = [
            ("default", attrs.default.as_ref().map(|a| a.key)),
            ("rename", attrs.rename.as_ref().map(|a| a.key)),
            ("collection", attrs.collection.as_ref().map(|a| a.key)),
            ("class", attrs.class.as_ref().map(|a| a.key)),
            ("sep", attrs.sep.as_ref().map(|a| a.key)),
            ("numbering", attrs.numbering.as_ref().map(|a| a.key)),
            ("flatten", attrs.flatten.as_ref().map(|a| a.key)),
        ];
        for (name, span) in others {
            if let Some(span) = span {
                cx.error(
                    span,
                    format_args!(
                        "safejax `skip` and `{name}` cannot be combined: a skipped field is neither written nor read"
                    ),
                );
            }
        }
    }
}

// Two stored fields of one struct in the same collection must not render to the same key segment.
fn check_duplicate_segments(cx: &Ctxt, cont: &Container) {
    let container_collection = cont.attrs.collection.as_ref().map(|c| c.value.as_str());
    let stored: Vec<_> = cont.fields.iter().filter(|f| f.is_stored()).collect();
    for (i, field) in stored.iter().enumerate() {
        let collection = |f: &crate::ast::Field| {
            f.attrs
                .collection
                .as_ref()
                .map(|c| c.value.clone())
                .or_else(|| container_collection.map(str::to_owned))
        };
        let segment = field.key_segment();
        let first = stored[..i].iter().find(|earlier| {
            earlier.key_segment() == segment && collection(earlier) == collection(field)
        });
        if let Some(first) = first {
            let span = match &field.attrs.rename {
                Some(rename) => rename.span,
                None => field.name_span(),
            };
            cx.error(
                span,
                format_args!(
                    "fields `{}` and `{}` both map to key segment `{segment}`",
                    first.display(),
                    field.display()
                ),
            );
        }
    }
}
