//! The derive's expansion only uses absolute paths: it compiles, warning-free, where the prelude
//! is shadowed or absent, in structs written by `macro_rules!`, and with a renamed runtime.
#![deny(
    warnings,
    rust_2018_idioms,
    unused_qualifications,
    single_use_lifetimes,
    missing_docs
)]

extern crate safejax as renamed;

/// Every prelude name the expansion could use by mistake is a unit struct here.
#[allow(dead_code, non_camel_case_types)]
mod shadowed {
    struct Result;
    struct Ok;
    struct Err;
    struct Some;
    struct None;
    struct Option;
    struct Default;
    struct Vec;
    struct Box;
    struct String;
    struct Sized;
    struct Copy;
    struct Clone;
    struct Send;
    struct Sync;
    struct Drop;
    struct Fn;
    struct Iterator;
    struct IntoIterator;
    struct From;
    struct Into;
    struct ToString;
    struct PartialEq;
    struct usize;
    struct str;
    struct Self_;
    struct SafeParams;
    struct KeyPath;
    struct Reader;
    struct Visitor;
    struct NodeInfo;
    struct FieldInfo;
    struct Style;
    mod core {}
    mod std {}
    mod safejax {}
    mod _safejax {}

    #[derive(::safejax::SafeParams)]
    pub(crate) struct Dense {
        pub(crate) kernel: ::ndarray::Array2<f32>,
        pub(crate) bias: ::ndarray::Array1<f32>,
    }

    #[derive(::safejax::SafeParams)]
    #[safejax(style = "haiku", collection = "params", class = "Model")]
    pub(crate) struct Model<T: ::safejax::Element> {
        #[safejax(rename = "linear", sep = "/")]
        pub(crate) dense: Dense,
        pub(crate) generic: ::ndarray::Array1<T>,
        #[safejax(default)]
        pub(crate) step: ::core::option::Option<i64>,
        #[safejax(skip)]
        pub(crate) cache: ::std::vec::Vec<f32>,
        pub(crate) list: ::std::vec::Vec<Dense>,
        pub(crate) boxed: ::std::boxed::Box<Dense>,
    }

    #[derive(::safejax::SafeParams)]
    pub(crate) struct Pair(pub(crate) Dense, #[safejax(rename = "b")] pub(crate) Dense);

    #[derive(::safejax::SafeParams)]
    pub(crate) struct Unit;
}

/// The same without any prelude at all.
mod bare {
    #![no_implicit_prelude]

    #[derive(::safejax::SafeParams)]
    pub(crate) struct Layer<'a, T: ::safejax::Element, const N: usize> {
        pub(crate) w: [::ndarray::Array1<T>; N],
        #[safejax(skip)]
        pub(crate) name: ::std::marker::PhantomData<&'a str>,
    }
}

/// Fields whose names, types and attribute values come from outside a `macro_rules!` that
/// writes the derive: their tokens and the derive's have different hygiene contexts.
mod generated {
    macro_rules! layer {
        ($name:ident { $($field:ident: $ty:ty => $key:literal),* }) => {
            #[derive(::safejax::SafeParams)]
            pub(crate) struct $name {
                $(
                    #[safejax(rename = $key)]
                    pub(crate) $field: $ty,
                )*
                pub(crate) fixed: f32,
            }
        };
    }

    layer!(Generated { a: ::ndarray::Array1<f32> => "A", b: ::std::vec::Vec<f64> => "B" });

    macro_rules! with_attributes {
        ($(#[$attribute:meta])* $name:ident) => {
            $(#[$attribute])*
            pub(crate) struct $name {
                pub(crate) x: ::ndarray::Array1<f32>,
                pub(crate) y: (),
            }
        };
    }

    with_attributes!(
        #[derive(::safejax::SafeParams)]
        #[safejax(class = "Outside")]
        Outside
    );
}

/// A runtime reached under another name.
mod renamed_runtime {
    #[derive(renamed::SafeParams)]
    #[safejax(crate = "renamed")]
    pub(crate) struct Renamed {
        pub(crate) x: ::ndarray::Array1<f32>,
    }

    pub(crate) mod reexport {
        pub(crate) use ::safejax as runtime;
    }

    #[derive(renamed::SafeParams)]
    #[safejax(crate = "crate::renamed_runtime::reexport::runtime", style = "objax")]
    pub(crate) struct ByPath {
        pub(crate) inner: Renamed,
    }
}

use ndarray::{Array1, Array2, array};
use safejax::{SafeParams, Style};

fn dense() -> shadowed::Dense {
    shadowed::Dense {
        kernel: Array2::zeros((2, 2)),
        bias: Array1::zeros(2),
    }
}

#[test]
fn shadowed_prelude() {
    let model = shadowed::Model::<f64> {
        dense: dense(),
        generic: array![1.0, 2.0],
        step: Some(3),
        cache: vec![1.0],
        list: vec![dense()],
        boxed: Box::new(dense()),
    };
    assert_eq!(
        model.keys().unwrap_or_default(),
        [
            "params.boxed.bias",
            "params.boxed.kernel",
            "params.generic",
            "params.linear.bias",
            "params.linear.kernel",
            "params.list_0.bias",
            "params.list_0.kernel",
            "params.step",
        ]
    );
    let bytes = model.to_bytes().unwrap_or_default();
    let back = shadowed::Model::<f64>::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.generic, model.generic);
    assert!(back.cache.is_empty());
    let pair = shadowed::Pair(dense(), dense());
    assert_eq!(
        pair.keys_in(Style::Flax).unwrap_or_default(),
        ["b.bias", "b.kernel", "layers_0.bias", "layers_0.kernel"]
    );
    assert!(shadowed::Unit.keys().unwrap_or_default().is_empty());
}

#[test]
fn no_implicit_prelude() {
    let layer = bare::Layer::<'static, i32, 2> {
        w: [array![1], array![2, 3]],
        name: std::marker::PhantomData,
    };
    assert_eq!(layer.keys().unwrap_or_default(), ["w_0", "w_1"]);
}

#[test]
fn fields_from_macro_rules() {
    let value = generated::Generated {
        a: array![1.0],
        b: vec![2.0],
        fixed: 3.0,
    };
    assert_eq!(value.keys().unwrap_or_default(), ["A", "B_0", "fixed"]);
    let back = generated::Generated::from_bytes(&value.to_bytes().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.fixed, 3.0);
    let outside = generated::Outside {
        x: array![1.0],
        y: (),
    };
    assert_eq!(
        outside.keys_in(Style::Objax).unwrap_or_default(),
        ["(Outside).x::TrainVar"]
    );
}

#[test]
fn renamed_runtime() {
    let value = renamed_runtime::ByPath {
        inner: renamed_runtime::Renamed { x: array![1.0] },
    };
    assert_eq!(
        value.keys().unwrap_or_default(),
        ["(ByPath).inner(Renamed).x::TrainVar"]
    );
}
