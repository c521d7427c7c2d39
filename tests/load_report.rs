//! Strict loads with one complete report, and each leniency asked for by name, on derived
//! structs and the Python-made fixtures.

mod common;

use common::fixture;
use half::bf16;
use ndarray::{Array1, Array2};
use safejax::{DtypePolicy, Error, LoadReport, Loader, SafeParams, Style};

use common::{Dense, FlaxMlp as Mlp};

fn report(err: Error) -> LoadReport {
    match err {
        Error::Load(report) => *report,
        other => panic!("expected a load report, got: {other}"),
    }
}

#[derive(SafeParams, Debug)]
struct WrongDense {
    kernel: Array1<f32>,
    bias: Array1<f64>,
}

#[derive(SafeParams, Debug)]
#[safejax(style = "flax", collection = "params")]
struct Wrong {
    #[safejax(rename = "Dense_0")]
    hidden: WrongDense,
    #[safejax(rename = "Dense1")]
    out: Dense,
    #[safejax(rename = "Dense_2")]
    extra: Dense,
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = Wrong::load(fixture("flax_mlp")).unwrap_err();
    let text = err.to_string();
    let report = report(err);
    assert_eq!(
        report.missing,
        [
            "params.Dense1.kernel",
            "params.Dense1.bias",
            "params.Dense_2.kernel",
            "params.Dense_2.bias"
        ]
    );
    assert_eq!(
        report.unexpected,
        ["params.Dense_1.bias", "params.Dense_1.kernel"]
    );
    assert_eq!(report.shape_mismatches.len(), 1);
    assert_eq!(report.shape_mismatches[0].key, "params.Dense_0.kernel");
    assert_eq!(report.shape_mismatches[0].found, [8, 16]);
    assert_eq!(report.dtype_mismatches.len(), 1);
    assert_eq!(report.dtype_mismatches[0].key, "params.Dense_0.bias");
    assert_eq!(report.len(), 8);
    assert_eq!(
        text,
        "the file does not fit: 4 missing keys, 2 unexpected keys, 1 shape mismatch, 1 dtype mismatch
missing (needed, not in the file):
  params.Dense1.kernel (did you mean `params.Dense_1.kernel`?)
  params.Dense1.bias (did you mean `params.Dense_1.bias`?)
  params.Dense_2.kernel (did you mean `params.Dense_1.kernel`?)
  params.Dense_2.bias (did you mean `params.Dense_1.bias`?)
unexpected (in the file, not read):
  params.Dense_1.bias
  params.Dense_1.kernel
shape mismatches:
  params.Dense_0.kernel: expected rank 1, found [8, 16]
dtype mismatches:
  params.Dense_0.bias: expected F64, found F32"
    );
}

#[test]
fn unexpected_keys_are_ignored_only_when_asked_and_then_listed() {
    #[derive(SafeParams, Debug)]
    #[safejax(style = "flax", collection = "params")]
    struct First {
        #[safejax(rename = "Dense_0")]
        hidden: Dense,
    }
    let err = report(First::load(fixture("flax_mlp")).unwrap_err());
    assert_eq!(
        err.unexpected,
        ["params.Dense_1.bias", "params.Dense_1.kernel"]
    );
    let loaded = Loader::new()
        .allow_unexpected()
        .load::<First>(fixture("flax_mlp"));
    let loaded = loaded.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.ignored,
        ["params.Dense_1.bias", "params.Dense_1.kernel"]
    );
    assert_eq!(loaded.value.hidden.kernel.shape(), [8, 16]);
}

#[test]
fn default_and_option_fields_may_be_wholly_absent_but_not_partly() {
    #[derive(SafeParams, Debug, Default, PartialEq)]
    struct Head {
        kernel: Array2<f32>,
        bias: Array1<f32>,
    }
    #[derive(SafeParams, Debug)]
    #[safejax(style = "flax", collection = "params")]
    struct WithExtras {
        #[safejax(rename = "Dense_0")]
        hidden: Dense,
        #[safejax(rename = "Dense_1")]
        out: Dense,
        #[safejax(default)]
        head: Head,
        aux: Option<Dense>,
    }
    let model = WithExtras::load(fixture("flax_mlp")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.head, Head::default());
    assert!(model.aux.is_none());

    // Partly present: only `aux.kernel` is in the file.
    let mut partial =
        safejax::flax::deserialize_file(fixture("flax_mlp")).unwrap_or_else(|e| panic!("{e}"));
    let kernel = partial
        .tensor("params.Dense_0.kernel")
        .cloned()
        .unwrap_or_else(|| panic!("kernel"));
    let mut aux = safejax::Tree::new();
    aux.insert("kernel", kernel);
    if let Some(safejax::Node::Tree(params)) = partial.get_mut("params") {
        params.insert("aux", aux);
    }
    let bytes = safejax::flax::serialize(&partial, None).unwrap_or_else(|e| panic!("{e}"));
    let err = report(WithExtras::from_bytes(&bytes).unwrap_err());
    assert_eq!(err.missing, ["params.aux.bias"]);
}

#[test]
fn load_into_keeps_current_values_only_when_asked() {
    let original = Mlp::load(fixture("flax_mlp")).unwrap_or_else(|e| panic!("{e}"));
    #[derive(SafeParams, Debug, Clone, PartialEq)]
    #[safejax(style = "flax", collection = "params")]
    struct Bigger {
        #[safejax(rename = "Dense_0")]
        hidden: Dense,
        #[safejax(rename = "Dense_1")]
        out: Dense,
        #[safejax(rename = "Dense_2")]
        extra: Dense,
    }
    let zeros = |d: &Dense| Dense {
        kernel: Array2::zeros(d.kernel.raw_dim()),
        bias: Array1::zeros(d.bias.raw_dim()),
    };
    let fresh = Bigger {
        hidden: zeros(&original.hidden),
        out: zeros(&original.out),
        extra: zeros(&original.out),
    };
    let mut strict = fresh.clone();
    let err = report(strict.load_into(fixture("flax_mlp")).unwrap_err());
    assert_eq!(
        err.missing,
        ["params.Dense_2.kernel", "params.Dense_2.bias"]
    );
    assert_eq!(strict, fresh, "a failed load_into changes nothing");

    let mut lenient = fresh.clone();
    Loader::new()
        .allow_missing()
        .load_into(&mut lenient, fixture("flax_mlp"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lenient.hidden, original.hidden);
    assert_eq!(lenient.out, original.out);
    assert_eq!(lenient.extra, fresh.extra);

    // The shape of an existing array is part of the contract of load_into.
    let mut narrow = original.clone();
    narrow.out.bias = Array1::zeros(3);
    let err = report(narrow.load_into(fixture("flax_mlp")).unwrap_err());
    assert_eq!(err.shape_mismatches[0].key, "params.Dense_1.bias");
    assert_eq!(
        err.to_string().lines().last(),
        Some("  params.Dense_1.bias: expected shape [3], found [4]")
    );
}

#[test]
fn float_dtypes_convert_only_under_the_explicit_policy() {
    #[derive(SafeParams, Debug)]
    struct DenseBf16 {
        kernel: Array2<bf16>,
        bias: Array1<bf16>,
    }
    #[derive(SafeParams, Debug)]
    #[safejax(style = "flax", collection = "params")]
    struct MlpBf16 {
        #[safejax(rename = "Dense_0")]
        hidden: DenseBf16,
        #[safejax(rename = "Dense_1")]
        out: DenseBf16,
    }
    let err = report(MlpBf16::load(fixture("flax_mlp")).unwrap_err());
    assert_eq!(err.dtype_mismatches.len(), 4);
    let loaded = Loader::new()
        .dtype_policy(DtypePolicy::ConvertFloats)
        .load::<MlpBf16>(fixture("flax_mlp"))
        .unwrap_or_else(|e| panic!("{e}"));
    let original = Mlp::load(fixture("flax_mlp")).unwrap_or_else(|e| panic!("{e}"));
    let back = loaded.value.hidden.kernel.mapv(f32::from);
    let worst = (&back - &original.hidden.kernel)
        .iter()
        .fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(
        worst <= 2f32.powi(-8),
        "bf16 keeps 8 significant bits: {worst}"
    );
}

#[test]
fn the_same_struct_reads_keys_of_another_style_only_when_told() {
    let flax = Mlp::load(fixture("flax_mlp")).unwrap_or_else(|e| panic!("{e}"));
    let objax = safejax::Saver::new()
        .style(Style::Objax)
        .to_bytes(&flax)
        .unwrap_or_else(|e| panic!("{e}"));
    let err = report(Mlp::from_bytes(&objax).unwrap_err());
    assert_eq!((err.missing.len(), err.unexpected.len()), (4, 4));
    assert_eq!(err.unexpected[0], "(Mlp).Dense_0(Dense).bias::params");
    let back = Loader::new()
        .style(Style::Objax)
        .from_bytes::<Mlp>(&objax)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.value, flax);
}

#[test]
fn recursive_types_read_back_and_stop_at_absent_children() {
    #[derive(SafeParams, Debug, PartialEq)]
    #[safejax(style = "haiku")]
    struct Node {
        w: Array1<f32>,
        children: Vec<Node>,
        next: Option<Box<Node>>,
    }
    let leaf = |x: f32| Node {
        w: Array1::from_elem(1, x),
        children: vec![],
        next: None,
    };
    let tree = Node {
        w: Array1::from_elem(2, 0.5),
        children: vec![
            leaf(1.0),
            Node {
                w: Array1::zeros(1),
                children: vec![leaf(2.0)],
                next: Some(Box::new(leaf(3.0))),
            },
        ],
        next: None,
    };
    let keys = tree.keys().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        keys,
        [
            "children_0.w",
            "children_1.w",
            "children_1/~/children_0.w",
            "children_1/~/next.w",
            "w"
        ]
    );
    let bytes = tree.to_bytes().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        Node::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}")),
        tree
    );
}

/// `fn main() -> Result<(), safejax::Error>` prints `Error: {err:?}`: the readable report, as
/// `{}` gives it; `{:#?}` keeps the structure.
#[test]
fn an_error_returned_from_main_reads_as_the_report() {
    let bytes = common::fixture_bytes("haiku_mlp");
    let err = Mlp::from_bytes(&bytes)
        .err()
        .unwrap_or_else(|| panic!("a Haiku MLP loaded as the Flax one"));
    let debug = format!("{err:?}");
    assert_eq!(debug, err.to_string());
    assert!(debug.starts_with("the file does not fit: "), "{debug}");
    let structured = format!("{err:#?}");
    assert!(
        structured.starts_with("Load(\n    LoadReport {"),
        "{structured}"
    );
}

/// A Flax model with batch statistics, saved as two files: `params` alone, without the prefix.
#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(collection = "params")]
struct WithStats {
    #[safejax(rename = "Dense_0")]
    dense: Dense,
    #[safejax(collection = "batch_stats")]
    mean: Array1<f32>,
}

#[test]
fn loading_some_collections_into_a_value_keeps_the_others() {
    let model = WithStats {
        dense: Dense {
            kernel: Array2::from_elem((2, 2), 1.0),
            bias: Array1::from_elem(2, 2.0),
        },
        mean: Array1::from_elem(2, 3.0),
    };
    let params = safejax::Saver::new()
        .only(["params"])
        .without_collection()
        .to_bytes(&model)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut current = WithStats {
        dense: Dense {
            kernel: Array2::zeros((2, 2)),
            bias: Array1::zeros(2),
        },
        mean: Array1::from_elem(2, 9.0),
    };
    let part = || {
        safejax::Part::bytes(&params)
            .collections(["params"])
            .without_collection()
    };
    // Strictly, the collection no part holds is missing, and the report says what to do.
    let err = Loader::new()
        .read_into(&mut current, &[part()])
        .err()
        .unwrap_or_else(|| panic!("loaded without batch_stats"));
    let report = report(err);
    assert_eq!(report.missing, ["batch_stats.mean"]);
    assert_eq!(
        report.hints,
        [
            "no file was given for collection `batch_stats`: give a part that holds it, or, loading into an existing value, ask for `allow_missing` to keep its current tensors"
        ]
    );
    // With `allow_missing`, the parameters are loaded and the statistics kept.
    Loader::new()
        .allow_missing()
        .read_into(&mut current, &[part()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(current.dense, model.dense);
    assert_eq!(current.mean, Array1::from_elem(2, 9.0));
}

#[derive(SafeParams, Debug)]
struct ListBias {
    kernel: Array2<f32>,
    bias: Vec<f32>,
}

#[derive(SafeParams, Debug)]
#[safejax(style = "flax", collection = "params")]
struct ListBiasMlp {
    #[safejax(rename = "Dense_0")]
    hidden: ListBias,
    #[safejax(rename = "Dense_1")]
    out: Dense,
}

#[test]
fn a_list_where_the_file_has_a_tensor_names_the_field_and_the_cause() {
    let path = fixture("flax_mlp");
    let expected = safejax::KeyProblem {
        key: "params.Dense_0.bias".into(),
        reason:
            "is a tensor in the file, but the field here is a list: did you mean `Array1<f32>`?"
                .into(),
    };
    let strict = report(
        ListBiasMlp::load(&path)
            .err()
            .unwrap_or_else(|| panic!("loaded")),
    );
    assert_eq!(strict.invalid, std::slice::from_ref(&expected));
    assert!(strict.unexpected.is_empty(), "{strict}");
    let lenient = Loader::new()
        .allow_unexpected()
        .load::<ListBiasMlp>(&path)
        .err()
        .unwrap_or_else(|| panic!("an empty list was loaded for a tensor"));
    assert_eq!(report(lenient).invalid, [expected]);
}

#[derive(SafeParams, Debug)]
struct MapBias {
    kernel: Array2<f32>,
    bias: std::collections::BTreeMap<String, f32>,
}

#[derive(SafeParams, Debug)]
#[safejax(style = "flax", collection = "params")]
struct MapBiasMlp {
    #[safejax(rename = "Dense_0")]
    hidden: MapBias,
    #[safejax(rename = "Dense_1")]
    out: Dense,
}

#[test]
fn a_map_where_the_file_has_a_tensor_names_the_field_and_the_cause() {
    let err = MapBiasMlp::load(fixture("flax_mlp"))
        .err()
        .unwrap_or_else(|| panic!("loaded"));
    assert_eq!(
        report(err).invalid,
        [safejax::KeyProblem {
            key: "params.Dense_0.bias".into(),
            reason:
                "is a tensor in the file, but the field here is a map: did you mean `Array1<f32>`?"
                    .into(),
        }]
    );
}

#[derive(SafeParams, Debug)]
struct Norm {
    scale: Array1<f32>,
    offset: Array1<f32>,
}

#[derive(SafeParams, Debug)]
#[safejax(style = "haiku")]
struct IndexNumbered {
    layer_norm: Vec<Norm>,
}

#[test]
fn a_list_numbered_another_way_gets_a_numbering_hint() {
    #[derive(SafeParams)]
    #[safejax(style = "haiku")]
    struct HaikuNumbered {
        #[safejax(numbering = "haiku")]
        layer_norm: Vec<Norm>,
    }
    let norm = || Norm {
        scale: Array1::ones(2),
        offset: Array1::zeros(2),
    };
    let bytes = HaikuNumbered {
        layer_norm: vec![norm(), norm()],
    }
    .to_bytes()
    .unwrap_or_else(|e| panic!("{e}"));
    let err = IndexNumbered::from_bytes(&bytes)
        .err()
        .unwrap_or_else(|| panic!("loaded"));
    let report = report(err);
    assert_eq!(report.unexpected.len(), 4);
    assert_eq!(
        report.hints,
        [
            "the list at `layer_norm` read no element, but the file has keys that `#[safejax(numbering = \"haiku\")]` on it would read"
        ]
    );
}

#[test]
fn a_whole_file_mismatch_gets_one_hint_at_the_level_of_prefix_or_style() {
    // A forgotten `collection = "params"`.
    #[derive(SafeParams, Debug)]
    struct NoCollection {
        #[safejax(rename = "Dense_0")]
        hidden: Dense,
        #[safejax(rename = "Dense_1")]
        out: Dense,
    }
    let path = fixture("flax_mlp");
    let hints = report(
        NoCollection::load(&path)
            .err()
            .unwrap_or_else(|| panic!("loaded")),
    )
    .hints;
    assert_eq!(
        hints,
        [
            "every key of the file starts with `params.`, which the value's keys lack: declare the collection (`#[safejax(collection = \"params\")]`)"
        ]
    );
    // A file of the `params` collection alone, read as the whole variables.
    let alone = safejax::Saver::new()
        .without_collection()
        .to_bytes(&Mlp::load(&path).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    let hints = report(
        Mlp::from_bytes(&alone)
            .err()
            .unwrap_or_else(|| panic!("loaded")),
    )
    .hints;
    assert_eq!(
        hints,
        [
            "the value's keys start with `params.` and the file's do not: the file holds that collection alone; read it with `Part::file(..).collections([\"params\"]).without_collection()`"
        ]
    );
    // An Objax file read as Flax.
    let objax = safejax::Saver::new()
        .style(Style::Objax)
        .to_bytes(&Mlp::load(&path).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    let err = Mlp::from_bytes(&objax)
        .err()
        .unwrap_or_else(|| panic!("loaded"));
    let text = err.to_string();
    let hints = report(err).hints;
    assert_eq!(
        hints,
        [
            "the file's keys are objax keys, read here as flax: load in its style (`#[safejax(style = \"objax\")]` or `Loader::style`)"
        ]
    );
    assert!(
        text.contains("\nhint: the file's keys are objax keys"),
        "{text}"
    );
}

/// A list whose elements are declared with other field names than the file's reads no element;
/// the report says what the first element would need, not only which keys went unread.
#[test]
fn a_list_whose_elements_read_nothing_says_what_an_element_needs() {
    #[derive(SafeParams)]
    struct Written {
        w: Array1<f32>,
    }
    #[derive(SafeParams)]
    #[safejax(style = "flax", collection = "params")]
    struct File {
        layers: Vec<Written>,
    }
    #[derive(SafeParams, Debug)]
    struct Declared {
        kernel: Array1<f32>,
        bias: Array1<f32>,
    }
    #[derive(SafeParams, Debug)]
    #[safejax(style = "flax", collection = "params")]
    struct Model {
        layers: Vec<Declared>,
    }
    let written = |_| Written { w: Array1::ones(2) };
    let bytes = File {
        layers: (0..2).map(written).collect(),
    }
    .to_bytes()
    .unwrap_or_else(|e| panic!("{e}"));
    let report = report(Model::from_bytes(&bytes).map(|_| ()).unwrap_err());
    assert_eq!(
        report.unexpected,
        ["params.layers_0.w", "params.layers_1.w"]
    );
    assert_eq!(
        report.hints,
        [
            "the list at `params.layers` stops before its element 0: the file has keys under `params.layers_0`, but the element reads none of them; it needs `params.layers_0.kernel`, `params.layers_0.bias`"
        ]
    );
}
