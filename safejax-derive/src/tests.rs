//! Parse-level tests: every input goes through parsing and the checks, and the messages of all
//! recorded errors are compared.

use syn::{DeriveInput, parse_quote};

use crate::ast::Container;
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand;

/// The messages of every error the input produces, in order.
fn errors(input: &DeriveInput) -> Vec<String> {
    let cx = Ctxt::new();
    if let Some(container) = Container::from_ast(&cx, input) {
        check::check(&cx, &container);
    }
    match cx.check() {
        Ok(()) => Vec::new(),
        Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
    }
}

/// The expansion, with whitespace collapsed so that it can be searched.
fn expansion(input: &DeriveInput) -> String {
    expand::derive(input).to_string()
}

#[track_caller]
fn assert_errors(input: DeriveInput, expected: &[&str]) {
    assert_eq!(errors(&input), expected);
}

#[test]
fn a_plain_struct_has_no_errors() {
    assert_errors(
        parse_quote! {
            #[safejax(style = "haiku", collection = "params", class = "MLP")]
            #[safejax(crate = "::safejax", bound = "T: safejax::Element,")]
            struct Mlp<T> {
                #[safejax(rename = "linear_0", class = "Linear", sep = "/")]
                hidden: Dense<T>,
                #[safejax(default, collection = "state")]
                out: Option<Dense<T>>,
                #[safejax(skip)]
                cache: Vec<f32>,
                #[safejax(rename = "~")]
                top: f32,
                #[safejax(sep = "/~/")]
                r#type: f32,
            }
        },
        &[],
    );
}

#[test]
fn tuple_and_unit_structs_have_no_errors() {
    assert_errors(
        parse_quote!(
            struct Seq(Linear, Relu, Linear);
        ),
        &[],
    );
    assert_errors(
        parse_quote!(
            struct Relu;
        ),
        &[],
    );
    assert_errors(
        parse_quote!(
            struct Empty {}
        ),
        &[],
    );
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    assert_errors(
        parse_quote! {
            struct S {
                #[safejax(renam = "x")]
                a: f32,
                #[safejax(style = "flax")]
                b: f32,
                #[safejax(frobnicate)]
                c: f32,
            }
        },
        &[
            "unknown safejax field attribute `renam`, did you mean `rename`?",
            "unknown safejax field attribute `style`, `style` is a container attribute",
            "unknown safejax field attribute `frobnicate`, expected one of `rename`, `skip`, `default`, `collection`, `class`, `sep`, `numbering`, `flatten`, `recursive`",
        ],
    );
    assert_errors(
        parse_quote! {
            #[safejax(rename = "x", colection = "params")]
            struct S { a: f32 }
        },
        &[
            "unknown safejax container attribute `rename`, `rename` is a field attribute",
            "unknown safejax container attribute `colection`, did you mean `collection`?",
        ],
    );
}

#[test]
fn duplicates_are_found_across_attributes() {
    assert_errors(
        parse_quote! {
            #[safejax(style = "flax")]
            #[safejax(style = "haiku")]
            struct S {
                #[safejax(rename = "x", rename = "y")]
                a: f32,
                #[safejax(skip)]
                #[safejax(skip)]
                b: f32,
            }
        },
        &[
            "duplicate safejax attribute `style`",
            "duplicate safejax attribute `rename`",
            "duplicate safejax attribute `skip`",
        ],
    );
}

#[test]
fn malformed_values_are_each_reported() {
    assert_errors(
        parse_quote! {
            #[safejax(style = "flx", crate = "not a path", bound = "T")]
            struct S {
                #[safejax(rename = 5)]
                a: f32,
                #[safejax(rename)]
                b: f32,
                #[safejax(skip = true)]
                c: f32,
                #[safejax(rename("x"))]
                d: f32,
                #[safejax(sep = "//")]
                e: f32,
                #[safejax]
                f: f32,
                #[safejax = "g"]
                g: f32,
                #[safejax("h")]
                h: f32,
                #[safejax(rename "i")]
                i: f32,
                #[safejax(rename =)]
                j: f32,
            }
        },
        &[
            "unknown safejax style `flx`, expected `flax`, `haiku` or `objax`",
            "safejax `crate` expects the path of the safejax crate, such as `\"safejax\"` or `\"::my_crate::safejax\"`",
            "safejax `bound` expects where-clause predicates such as `\"T: safejax::Element\"`: expected `:`",
            "safejax `rename` expects a string literal: `rename = \"...\"`",
            "safejax `rename` expects a value: `rename = \"...\"`",
            "safejax `skip` takes no value: write `#[safejax(skip)]`",
            "safejax `rename` expects `=` and a string literal: `rename = \"...\"`",
            "unknown safejax `sep` `//`, expected `/` (created in `__call__`) or `/~/` (created in `__init__`)",
            "expected a list of safejax attributes: `#[safejax(...)]`",
            "expected a list of safejax attributes: `#[safejax(...)]`",
            "expected a safejax attribute name, such as `rename` or `skip`",
            "expected `=` or `,` after safejax attribute `rename`",
            "safejax `rename` expects a string literal after `=`",
        ],
    );
}

#[test]
fn parsing_goes_on_after_a_bad_entry() {
    assert_errors(
        parse_quote! {
            struct S {
                #[safejax(renam = "x", rename = 5, skip, default)]
                a: f32,
            }
        },
        &[
            "unknown safejax field attribute `renam`, did you mean `rename`?",
            "safejax `rename` expects a string literal: `rename = \"...\"`",
            "safejax `skip` and `default` cannot be combined: a skipped field is neither written nor read",
        ],
    );
}

#[test]
fn names_free_of_separators() {
    assert_errors(
        parse_quote! {
            #[safejax(collection = "", class = "a(b)")]
            struct S {
                #[safejax(rename = "a.b")]
                a: f32,
                #[safejax(rename = "x/y")]
                b: f32,
                #[safejax(collection = "c::d")]
                c: f32,
                #[safejax(class = "[e]")]
                e: f32,
                #[safejax(rename = "~")]
                f: f32,
                #[safejax(rename = "g~h_0")]
                g: f32,
            }
        },
        &[
            "safejax `collection` must not be empty",
            "safejax `class` `a(b)` contains `(`, which separates key segments",
            "safejax `rename` `a.b` contains `.`, which separates key segments",
            "safejax `rename` `x/y` contains `/`, which separates key segments",
            "safejax `collection` `c::d` contains `::`, which separates key segments",
            "safejax `class` `[e]` contains `[`, which separates key segments",
        ],
    );
}

#[test]
fn two_fields_with_one_key_segment() {
    assert_errors(
        parse_quote! {
            struct S {
                a: f32,
                #[safejax(rename = "a")]
                b: f32,
                #[safejax(rename = "a", collection = "state")]
                c: f32,
                #[safejax(rename = "a", skip)]
                d: f32,
                r#e: f32,
                #[safejax(rename = "e")]
                f: f32,
            }
        },
        &[
            "safejax `skip` and `rename` cannot be combined: a skipped field is neither written nor read",
            "fields `a` and `b` both map to key segment `a`",
            "fields `e` and `f` both map to key segment `e`",
        ],
    );
    assert_errors(
        parse_quote! {
            struct Seq(Linear, #[safejax(rename = "layers_0")] Linear);
        },
        &["fields `0` and `1` both map to key segment `layers_0`"],
    );
    // The container's collection is the collection of fields that declare none.
    assert_errors(
        parse_quote! {
            #[safejax(collection = "params")]
            struct S {
                a: f32,
                #[safejax(rename = "a", collection = "params")]
                b: f32,
            }
        },
        &["fields `a` and `b` both map to key segment `a`"],
    );
}

#[test]
fn skip_conflicts_with_every_key_attribute() {
    assert_errors(
        parse_quote! {
            struct S {
                #[safejax(skip, default, rename = "x", collection = "c", class = "K", sep = "/")]
                a: f32,
            }
        },
        &[
            "safejax `skip` and `default` cannot be combined: a skipped field is neither written nor read",
            "safejax `skip` and `rename` cannot be combined: a skipped field is neither written nor read",
            "safejax `skip` and `collection` cannot be combined: a skipped field is neither written nor read",
            "safejax `skip` and `class` cannot be combined: a skipped field is neither written nor read",
            "safejax `skip` and `sep` cannot be combined: a skipped field is neither written nor read",
        ],
    );
}

#[test]
fn enums_and_unions_are_refused() {
    assert_errors(
        parse_quote!(
            enum E {
                A,
            }
        ),
        &["#[derive(SafeParams)] does not support enums, only structs"],
    );
    assert_errors(
        parse_quote!(
            union U {
                a: f32,
            }
        ),
        &["#[derive(SafeParams)] does not support unions, only structs"],
    );
}

#[test]
fn other_attributes_are_ignored() {
    assert_errors(
        parse_quote! {
            #[derive(Debug)]
            #[serde(rename = "x")]
            struct S {
                #[doc = "text"]
                #[serde(skip)]
                a: f32,
            }
        },
        &[],
    );
}

#[test]
fn expansion_uses_the_runtime_helpers() {
    let out = expansion(&parse_quote! {
        #[safejax(style = "objax")]
        struct S {
            a: Array1<f32>,
            #[safejax(default)]
            b: Option<f32>,
            #[safejax(skip)]
            c: Vec<f32>,
            #[safejax(sep = "/")]
            d: f32,
        }
    });
    for part in [
        "extern crate safejax as _safejax",
        "const STYLE : _safejax :: __private :: Style = _safejax :: __private :: Style :: Objax",
        "(_safejax :: __private :: field :: < Array1 < f32 > > () . read)",
        "(_safejax :: __private :: default_field :: < Option < f32 > > () . visit_mut)",
        "< Vec < f32 > as _safejax :: __private :: Default > :: default ()",
        "sep : _safejax :: __private :: HaikuSep :: Call",
        "class : \"S\"",
        "# [automatically_derived]",
    ] {
        assert!(out.contains(part), "`{part}` not in {out}");
    }
    assert!(!out.contains("compile_error"), "{out}");
    // No bounds on the impl of a struct without type parameters.
    assert!(
        out.contains("impl _safejax :: __private :: SafeParams for S {"),
        "{out}"
    );
    // The skipped field has no FieldInfo.
    assert!(
        out.contains("[_safejax :: __private :: FieldInfo ; 3usize]"),
        "{out}"
    );
}

#[test]
fn inferred_bounds_name_field_types_not_parameters() {
    let out = expansion(&parse_quote! {
        struct Dense<T, U: Copy> where U: Clone {
            kernel: Array2<T>,
            bias: Array1<T>,
            again: Array2<T>,
            plain: f32,
            #[safejax(skip)]
            extra: Vec<U>,
        }
    });
    let bounds = "where U : Clone , Array2 < T > : _safejax :: __private :: SafeParams , Array1 < T > : _safejax :: __private :: SafeParams {";
    assert!(out.contains(bounds), "{out}");
    // A field holding the type itself is not bounded: the impl would depend on itself.
    let out = expansion(&parse_quote! {
        struct Node<T> {
            w: Array1<T>,
            children: Vec<Node<T>>,
            parent: Option<Box<Self>>,
        }
    });
    assert!(
        out.contains("where Array1 < T > : _safejax :: __private :: SafeParams {"),
        "{out}"
    );
    let out = expansion(&parse_quote! {
        #[safejax(bound = "T: safejax::Element")]
        struct Dense<T> {
            kernel: Array2<T>,
        }
    });
    assert!(out.contains("where T : safejax :: Element {"), "{out}");
}

#[test]
fn crate_path_replaces_the_extern_crate() {
    let out = expansion(&parse_quote! {
        #[safejax(crate = "renamed")]
        struct S { a: f32 }
    });
    assert!(out.contains("use renamed as _safejax ;"), "{out}");
    assert!(!out.contains("extern crate"), "{out}");
}

#[test]
fn errors_come_with_a_stub_impl() {
    let out = expansion(&parse_quote! {
        #[safejax(crate = "renamed")]
        struct S<T> {
            #[safejax(renam = "x")]
            a: Array1<T>,
        }
    });
    assert!(out.contains("compile_error"), "{out}");
    assert!(out.contains("use renamed as _safejax ;"), "{out}");
    assert!(
        out.contains("impl < T > _safejax :: __private :: SafeParams for S < T >"),
        "{out}"
    );
    assert!(out.contains(":: core :: unreachable ! ()"), "{out}");
    let out = expansion(&parse_quote!(
        enum E {
            A,
        }
    ));
    assert!(out.contains("compile_error"), "{out}");
    assert!(out.contains("SafeParams for E"), "{out}");
}

#[test]
fn expect_on_a_borrow_struct_says_so_though_it_is_generic_too() {
    let out = expansion(&parse_quote! {
        #[safejax(borrow, expect = "model.safetensors")]
        struct View<'a> {
            w: ArrayView1<'a, f32>,
        }
    });
    assert!(out.contains("pins an owned struct"), "{out}");
    assert!(!out.contains("a generic struct"), "{out}");
}
