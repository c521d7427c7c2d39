//! The keys `#[derive(SafeParams)]` types write in each style, their round trips, and the four
//! Python-made fixtures reproduced byte for byte.

mod common;

use common::fixture;

use std::fmt::Debug;

use ndarray::{Array1, Array2, array};
use safejax::half::bf16;
use safejax::{Element, Loader, SafeParams, Saver, Style};

/// The keys of `value` in `style`, sorted.
fn keys<T: SafeParams>(value: &T, style: Style) -> Vec<String> {
    value
        .keys_in(style)
        .unwrap_or_else(|e| panic!("keys in {style}: {e}"))
}

/// Writes `value` in every style and reads it back; also through its own `to_bytes`.
fn round_trip<T: SafeParams + PartialEq + Debug>(value: &T) {
    for style in Style::ALL {
        let bytes = Saver::new()
            .style(style)
            .to_bytes(value)
            .unwrap_or_else(|e| panic!("save in {style}: {e}"));
        let back = Loader::new()
            .style(style)
            .from_bytes::<T>(&bytes)
            .unwrap_or_else(|e| panic!("load in {style}: {e}"))
            .value;
        assert_eq!(&back, value, "{style}");
    }
    let bytes = value.to_bytes().unwrap_or_else(|e| panic!("to_bytes: {e}"));
    let back = T::from_bytes(&bytes).unwrap_or_else(|e| panic!("from_bytes: {e}"));
    assert_eq!(&back, value);
}

fn a1(values: &[f32]) -> Array1<f32> {
    Array1::from(values.to_vec())
}

fn a2(rows: usize, cols: usize, start: f32) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| start + (i * cols + j) as f32)
}

// ---------------------------------------------------------------------------------------------
// Flax

fn dense(start: f32) -> Dense {
    Dense {
        kernel: a2(2, 3, start),
        bias: a1(&[start, start + 1.0, start + 2.0]),
    }
}

use common::{Dense, FlaxMlp as Mlp};

#[test]
fn the_contract_example() {
    let mlp = Mlp {
        hidden: dense(0.0),
        out: dense(10.0),
    };
    assert_eq!(
        keys(&mlp, Style::Flax),
        [
            "params.Dense_0.bias",
            "params.Dense_0.kernel",
            "params.Dense_1.bias",
            "params.Dense_1.kernel",
        ]
    );
    assert_eq!(mlp.keys().unwrap_or_default(), keys(&mlp, Style::Flax));
    assert_eq!(
        keys(&mlp, Style::Haiku),
        [
            "params.Dense_0.bias",
            "params.Dense_0.kernel",
            "params.Dense_1.bias",
            "params.Dense_1.kernel",
        ]
    );
    assert_eq!(
        keys(&mlp, Style::Objax),
        [
            "(Mlp).Dense_0(Dense).bias::params",
            "(Mlp).Dense_0(Dense).kernel::params",
            "(Mlp).Dense_1(Dense).bias::params",
            "(Mlp).Dense_1(Dense).kernel::params",
        ]
    );
    round_trip(&mlp);
}

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(collection = "batch_stats")]
struct Stats {
    mean: Array1<f32>,
    var: Array1<f32>,
}

#[derive(SafeParams, Debug, PartialEq)]
struct BatchNorm {
    scale: Array1<f32>,
    bias: Array1<f32>,
    #[safejax(collection = "batch_stats")]
    mean: Array1<f32>,
    #[safejax(collection = "batch_stats")]
    var: Array1<f32>,
}

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(collection = "params")]
struct Net {
    norm: BatchNorm,
    /// Takes its collection from `Stats` itself.
    stats: Stats,
    /// The field's collection beats the one `Stats` declares.
    #[safejax(collection = "cache")]
    pinned: Stats,
}

fn stats(x: f32) -> Stats {
    Stats {
        mean: a1(&[x]),
        var: a1(&[x + 1.0]),
    }
}

#[test]
fn collections_on_containers_and_fields() {
    let net = Net {
        norm: BatchNorm {
            scale: a1(&[1.0, 2.0]),
            bias: a1(&[3.0, 4.0]),
            mean: a1(&[5.0, 6.0]),
            var: a1(&[7.0, 8.0]),
        },
        stats: stats(1.0),
        pinned: stats(2.0),
    };
    assert_eq!(
        keys(&net, Style::Flax),
        [
            "batch_stats.norm.mean",
            "batch_stats.norm.var",
            "batch_stats.stats.mean",
            "batch_stats.stats.var",
            "cache.pinned.mean",
            "cache.pinned.var",
            "params.norm.bias",
            "params.norm.scale",
        ]
    );
    assert_eq!(
        keys(&net, Style::Objax),
        [
            "(Net).norm(BatchNorm).bias::params",
            "(Net).norm(BatchNorm).mean::batch_stats",
            "(Net).norm(BatchNorm).scale::params",
            "(Net).norm(BatchNorm).var::batch_stats",
            "(Net).pinned(Stats).mean::cache",
            "(Net).pinned(Stats).var::cache",
            "(Net).stats(Stats).mean::batch_stats",
            "(Net).stats(Stats).var::batch_stats",
        ]
    );
    // Only one collection, without its name: Flax `variables["params"]`.
    let params = Saver::new()
        .only(["params"])
        .without_collection()
        .keys(&net)
        .unwrap_or_default();
    assert_eq!(params, ["norm.bias", "norm.scale"]);
    round_trip(&net);
}

// ---------------------------------------------------------------------------------------------
// Objax classes

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(class = "Linear")]
struct ObjaxLinear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(style = "objax", class = "MLP")]
struct ObjaxNet {
    /// Container class of the child type.
    first: ObjaxLinear,
    /// The field's class beats the child type's.
    #[safejax(class = "Dense")]
    second: ObjaxLinear,
    #[safejax(collection = "StateVar")]
    running_mean: Array1<f32>,
}

fn objax_linear(x: f32) -> ObjaxLinear {
    ObjaxLinear {
        w: a2(1, 2, x),
        b: a1(&[x]),
    }
}

#[test]
fn objax_classes_on_containers_and_fields() {
    let net = ObjaxNet {
        first: objax_linear(0.0),
        second: objax_linear(1.0),
        running_mean: a1(&[0.5]),
    };
    assert_eq!(
        keys(&net, Style::Objax),
        [
            "(MLP).first(Linear).b::TrainVar",
            "(MLP).first(Linear).w::TrainVar",
            "(MLP).running_mean::StateVar",
            "(MLP).second(Dense).b::TrainVar",
            "(MLP).second(Dense).w::TrainVar",
        ]
    );
    assert_eq!(net.keys().unwrap_or_default(), keys(&net, Style::Objax));
    // Classes do not show in the other styles.
    assert_eq!(
        keys(&net, Style::Flax),
        [
            "StateVar.running_mean",
            "first.b",
            "first.w",
            "second.b",
            "second.w"
        ]
    );
    round_trip(&net);
}

// ---------------------------------------------------------------------------------------------
// Haiku separators

#[derive(SafeParams, Debug, PartialEq)]
struct Proj {
    w: Array2<f32>,
}

#[derive(SafeParams, Debug, PartialEq)]
struct Block {
    /// Created while `block` runs: joined with `/`.
    #[safejax(sep = "/")]
    proj: Proj,
    /// Created in the constructor: joined with `/~/`, the default.
    #[safejax(sep = "/~/")]
    norm: Proj,
}

#[derive(SafeParams, Debug, PartialEq)]
struct Encoder {
    #[safejax(sep = "/")]
    block: Block,
}

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(style = "haiku")]
struct HaikuModel {
    encoder: Encoder,
    #[safejax(rename = "~")]
    top: Proj,
}

/// Haiku's `MultiHeadAttention`: every projection is made while the module runs, joined with `/`.
#[derive(SafeParams, Debug, PartialEq)]
#[safejax(sep = "/")]
struct Attention {
    query: Proj,
    key: Proj,
    value: Proj,
    /// A field's own `sep` wins over the struct's.
    #[safejax(sep = "/~/")]
    norm: Proj,
}

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(style = "haiku", sep = "/")]
struct Transformer {
    #[safejax(rename = "multi_head_attention")]
    attention: Attention,
}

#[test]
fn a_struct_wide_separator_joins_every_field() {
    let proj = |x: f32| Proj { w: a2(1, 1, x) };
    let model = Transformer {
        attention: Attention {
            query: proj(1.0),
            key: proj(2.0),
            value: proj(3.0),
            norm: proj(4.0),
        },
    };
    assert_eq!(
        keys(&model, Style::Haiku),
        [
            "multi_head_attention/key.w",
            "multi_head_attention/query.w",
            "multi_head_attention/value.w",
            "multi_head_attention/~/norm.w",
        ]
    );
    // Flax and Objax have no module separators: the attribute changes nothing there.
    assert_eq!(keys(&model, Style::Flax)[0], "multi_head_attention.key.w");
    assert_eq!(
        keys(&model, Style::Objax)[0],
        "(Transformer).multi_head_attention(Attention).key(Proj).w::TrainVar"
    );
    round_trip(&model);
}

#[test]
fn haiku_separators_per_field() {
    let model = HaikuModel {
        encoder: Encoder {
            block: Block {
                proj: Proj { w: a2(1, 1, 1.0) },
                norm: Proj { w: a2(1, 1, 2.0) },
            },
        },
        top: Proj { w: a2(1, 1, 3.0) },
    };
    assert_eq!(
        keys(&model, Style::Haiku),
        ["encoder/block/proj.w", "encoder/block/~/norm.w", "~.w"]
    );
    assert_eq!(model.keys().unwrap_or_default(), keys(&model, Style::Haiku));
    assert_eq!(
        keys(&model, Style::Flax),
        ["encoder.block.norm.w", "encoder.block.proj.w", "~.w"]
    );
    round_trip(&model);
}

#[derive(SafeParams, Debug, PartialEq)]
struct Outer {
    #[safejax(sep = "/")]
    inner: Inner,
}

#[derive(SafeParams, Debug, PartialEq)]
struct Inner {
    leaf: Proj,
}

#[derive(SafeParams, Debug, PartialEq)]
struct Mixed {
    a: Outer,
}

#[test]
fn call_and_constructor_separators_in_one_path() {
    let value = Mixed {
        a: Outer {
            inner: Inner {
                leaf: Proj { w: a2(1, 1, 0.0) },
            },
        },
    };
    assert_eq!(keys(&value, Style::Haiku), ["a/inner/~/leaf.w"]);
    let parsed = Style::Haiku
        .parse("a/inner/~/leaf.w")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.names(), ["a", "inner", "leaf", "w"]);
    round_trip(&value);
}

// ---------------------------------------------------------------------------------------------
// Lists

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(class = "Block")]
struct ListBlock {
    x: Array1<f32>,
}

#[derive(SafeParams, Debug, PartialEq)]
struct WithLists {
    blocks: Vec<ListBlock>,
    #[safejax(class = "Sequential")]
    seq: Vec<ListBlock>,
    fixed: [ListBlock; 2],
}

fn list_block(x: f32) -> ListBlock {
    ListBlock { x: a1(&[x]) }
}

#[test]
fn vec_and_array_fields() {
    let value = WithLists {
        blocks: vec![list_block(0.0), list_block(1.0)],
        seq: vec![list_block(2.0)],
        fixed: [list_block(3.0), list_block(4.0)],
    };
    assert_eq!(
        keys(&value, Style::Flax),
        [
            "blocks_0.x",
            "blocks_1.x",
            "fixed_0.x",
            "fixed_1.x",
            "seq_0.x"
        ]
    );
    assert_eq!(
        keys(&value, Style::Haiku),
        [
            "blocks_0.x",
            "blocks_1.x",
            "fixed_0.x",
            "fixed_1.x",
            "seq_0.x"
        ]
    );
    assert_eq!(
        keys(&value, Style::Objax),
        [
            "(WithLists).blocks(ModuleList)[0](Block).x::TrainVar",
            "(WithLists).blocks(ModuleList)[1](Block).x::TrainVar",
            "(WithLists).fixed(ModuleList)[0](Block).x::TrainVar",
            "(WithLists).fixed(ModuleList)[1](Block).x::TrainVar",
            "(WithLists).seq(Sequential)[0](Block).x::TrainVar",
        ]
    );
    round_trip(&value);
}

// ---------------------------------------------------------------------------------------------
// Tuple and unit structs

#[derive(SafeParams, Debug, PartialEq)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

/// An element without parameters, such as `relu` in a `Sequential`.
#[derive(SafeParams, Debug, PartialEq)]
struct Relu;

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(class = "Sequential")]
struct Layers(Linear, Relu, Linear);

#[derive(SafeParams, Debug, PartialEq)]
struct Renamed(#[safejax(rename = "first")] Linear, Linear);

fn linear(rows: usize, cols: usize, x: f32) -> Linear {
    Linear {
        w: a2(rows, cols, x),
        b: Array1::from_elem(cols, x),
    }
}

#[test]
fn tuple_structs_take_positions() {
    let layers = Layers(linear(1, 2, 0.0), Relu, linear(2, 1, 1.0));
    assert_eq!(
        keys(&layers, Style::Flax),
        ["layers_0.b", "layers_0.w", "layers_2.b", "layers_2.w"]
    );
    assert_eq!(
        keys(&layers, Style::Haiku),
        ["layers_0.b", "layers_0.w", "layers_2.b", "layers_2.w"]
    );
    // Relu has no parameters but keeps its index: `[0]`, then `[2]`.
    assert_eq!(
        keys(&layers, Style::Objax),
        [
            "(Sequential)[0](Linear).b::TrainVar",
            "(Sequential)[0](Linear).w::TrainVar",
            "(Sequential)[2](Linear).b::TrainVar",
            "(Sequential)[2](Linear).w::TrainVar",
        ]
    );
    round_trip(&layers);

    let renamed = Renamed(linear(1, 1, 0.0), linear(1, 1, 1.0));
    assert_eq!(
        keys(&renamed, Style::Flax),
        ["first.b", "first.w", "layers_1.b", "layers_1.w"]
    );
    assert_eq!(
        keys(&renamed, Style::Objax),
        [
            "(Renamed).first(Linear).b::TrainVar",
            "(Renamed).first(Linear).w::TrainVar",
            "(Renamed)[1](Linear).b::TrainVar",
            "(Renamed)[1](Linear).w::TrainVar",
        ]
    );
    round_trip(&renamed);
}

#[derive(SafeParams, Debug, PartialEq)]
struct Empty {}

#[test]
fn unit_structs_have_no_keys() {
    for style in Style::ALL {
        assert!(keys(&Relu, style).is_empty());
        assert!(keys(&Empty {}, style).is_empty());
    }
    let bytes = Relu.to_bytes().unwrap_or_default();
    assert_eq!(Relu::from_bytes(&bytes).ok(), Some(Relu));
    round_trip(&Empty {});
}

// ---------------------------------------------------------------------------------------------
// Generics

#[derive(SafeParams, Debug, PartialEq)]
struct GenericDense<T: Element> {
    kernel: Array2<T>,
    bias: Array1<T>,
}

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(collection = "params")]
struct GenericMlp<T: Element, const N: usize> {
    layers: [GenericDense<T>; N],
    #[safejax(skip)]
    marker: std::marker::PhantomData<T>,
}

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(bound = "T: safejax::Element")]
struct Bounded<T> {
    w: Array1<T>,
}

#[test]
fn generic_structs_in_f32_and_bf16() {
    let f = GenericDense::<f32> {
        kernel: a2(2, 2, 0.0),
        bias: a1(&[1.0, 2.0]),
    };
    assert_eq!(keys(&f, Style::Flax), ["bias", "kernel"]);
    round_trip(&f);
    let b = GenericDense::<bf16> {
        kernel: f.kernel.mapv(bf16::from_f32),
        bias: f.bias.mapv(bf16::from_f32),
    };
    assert_eq!(
        keys(&b, Style::Objax),
        [
            "(GenericDense).bias::TrainVar",
            "(GenericDense).kernel::TrainVar"
        ]
    );
    round_trip(&b);
    // An f32 file does not load as bf16.
    let bytes = f.to_bytes().unwrap_or_default();
    assert!(GenericDense::<bf16>::from_bytes(&bytes).is_err());

    let mlp = GenericMlp::<bf16, 2> {
        layers: [
            GenericDense {
                kernel: array![[bf16::ONE]],
                bias: array![bf16::ZERO],
            },
            GenericDense {
                kernel: array![[bf16::MAX]],
                bias: array![bf16::MIN],
            },
        ],
        marker: std::marker::PhantomData,
    };
    assert_eq!(
        keys(&mlp, Style::Flax),
        [
            "params.layers_0.bias",
            "params.layers_0.kernel",
            "params.layers_1.bias",
            "params.layers_1.kernel",
        ]
    );
    round_trip(&mlp);

    let bounded = Bounded { w: array![1i64, 2] };
    assert_eq!(keys(&bounded, Style::Flax), ["w"]);
    round_trip(&bounded);
}

/// A recursive generic type: its inferred bounds must not depend on its own impl. (Only its keys
/// are checked: reading a recursive type needs the runtime to stop at an absent prefix.)
#[derive(SafeParams, Debug, PartialEq)]
struct TreeNode<T: Element> {
    value: Array1<T>,
    children: Vec<TreeNode<T>>,
    next: Option<Box<Self>>,
}

#[test]
fn recursive_generic_structs() {
    let leaf = |x: i32| TreeNode {
        value: array![x],
        children: Vec::new(),
        next: None,
    };
    let root = TreeNode {
        value: array![0],
        children: vec![leaf(1), leaf(2)],
        next: Some(Box::new(leaf(3))),
    };
    assert_eq!(
        keys(&root, Style::Flax),
        [
            "children_0.value",
            "children_1.value",
            "next.value",
            "value"
        ]
    );
    assert_eq!(
        keys(&root, Style::Objax)[0],
        "(TreeNode).children(ModuleList)[0](TreeNode).value::TrainVar"
    );
}

// ---------------------------------------------------------------------------------------------
// Option, Box, skip, default

#[derive(SafeParams, Debug, PartialEq)]
struct Optional {
    w: Array1<f32>,
    maybe: Option<Linear>,
    boxed: Box<Linear>,
    #[safejax(skip)]
    cache: Vec<f32>,
    #[safejax(default)]
    step: i64,
}

#[derive(SafeParams, Debug, PartialEq)]
struct OnlyW {
    w: Array1<f32>,
    boxed: Box<Linear>,
}

#[test]
fn option_box_skip_and_default_fields() {
    let full = Optional {
        w: a1(&[1.0]),
        maybe: Some(linear(1, 1, 2.0)),
        boxed: Box::new(linear(1, 1, 3.0)),
        cache: Vec::new(),
        step: 7,
    };
    assert_eq!(
        keys(&full, Style::Flax),
        ["boxed.b", "boxed.w", "maybe.b", "maybe.w", "step", "w"]
    );
    round_trip(&full);

    let mut partial = Optional {
        maybe: None,
        cache: vec![9.0],
        ..full
    };
    assert_eq!(
        keys(&partial, Style::Flax),
        ["boxed.b", "boxed.w", "step", "w"]
    );
    // `cache` is not stored: it comes back as its `Default`.
    let back = Optional::from_bytes(&partial.to_bytes().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    partial.cache = Vec::new();
    assert_eq!(back, partial);

    // `step` may be absent from the file: it is then its `Default`.
    let only = OnlyW {
        w: a1(&[4.0]),
        boxed: Box::new(linear(1, 1, 5.0)),
    };
    let back = Optional::from_bytes(&only.to_bytes().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.step, 0);
    assert_eq!(back.maybe, None);
    assert_eq!(back.w, only.w);

    // A required field that is absent is reported, together with every other problem.
    let err = match OnlyW::from_bytes(&Relu.to_bytes().unwrap_or_default()) {
        Ok(_) => panic!("an empty file loaded"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("3 missing keys"), "{err}");
    for key in ["w", "boxed.w", "boxed.b"] {
        assert!(err.lines().any(|line| line.trim() == key), "{key}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// The Python-made fixtures, byte for byte

fn assert_reproduces<T: SafeParams>(name: &str) -> T {
    let path = fixture(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value = T::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let written = value.to_bytes().unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(written == bytes, "{name}: to_bytes() differs from the file");
    let from_bytes = T::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(from_bytes.to_bytes().ok() == Some(bytes), "{name}");
    value
}

#[test]
fn flax_mlp_fixture() {
    let mlp: Mlp = assert_reproduces("flax_mlp");
    assert_eq!(mlp.hidden.kernel.dim(), (8, 16));
    assert_eq!(mlp.hidden.bias.dim(), 16);
    assert_eq!(mlp.out.kernel.dim(), (16, 4));
    assert_eq!(mlp.out.bias.dim(), 4);
    // The manifest's sums.
    assert!((mlp.hidden.kernel.sum() - 0.388_676_76).abs() < 1e-4);
    assert!((mlp.out.kernel.sum() - 1.152_817_4).abs() < 1e-4);
}

#[derive(SafeParams)]
struct HaikuLinear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
struct HkMlp {
    /// `hk.nets.MLP` names its layers `linear_0`, `linear_1`, ...
    #[safejax(rename = "linear")]
    layers: Vec<HaikuLinear>,
}

#[derive(SafeParams)]
#[safejax(style = "haiku")]
struct HaikuMlp {
    mlp: HkMlp,
}

#[test]
fn haiku_mlp_fixture() {
    let model: HaikuMlp = assert_reproduces("haiku_mlp");
    assert_eq!(model.mlp.layers.len(), 2);
    assert_eq!(model.mlp.layers[0].w.dim(), (8, 16));
    assert_eq!(model.mlp.layers[1].b.dim(), 4);
    assert_eq!(
        keys(&model, Style::Haiku),
        [
            "mlp/~/linear_0.b",
            "mlp/~/linear_0.w",
            "mlp/~/linear_1.b",
            "mlp/~/linear_1.w"
        ]
    );
}

#[derive(SafeParams)]
struct Ema {
    average: Array2<f32>,
    hidden: Array2<f32>,
    /// A 0-d int32 tensor.
    counter: i32,
}

#[derive(SafeParams)]
struct HaikuBatchNorm {
    offset: Array2<f32>,
    scale: Array2<f32>,
    #[safejax(collection = "state")]
    mean_ema: Ema,
    #[safejax(collection = "state")]
    var_ema: Ema,
}

#[derive(SafeParams)]
#[safejax(style = "haiku", collection = "params")]
struct HaikuBn {
    linear: HaikuLinear,
    batch_norm: HaikuBatchNorm,
    linear_1: HaikuLinear,
}

#[test]
fn haiku_bn_fixture() {
    let model: HaikuBn = assert_reproduces("haiku_bn");
    assert_eq!(model.batch_norm.offset.dim(), (1, 16));
    assert_eq!(model.linear_1.w.dim(), (16, 4));
    assert_eq!(
        keys(&model, Style::Haiku),
        [
            "params.batch_norm.offset",
            "params.batch_norm.scale",
            "params.linear.b",
            "params.linear.w",
            "params.linear_1.b",
            "params.linear_1.w",
            "state.batch_norm/~/mean_ema.average",
            "state.batch_norm/~/mean_ema.counter",
            "state.batch_norm/~/mean_ema.hidden",
            "state.batch_norm/~/var_ema.average",
            "state.batch_norm/~/var_ema.counter",
            "state.batch_norm/~/var_ema.hidden",
        ]
    );
}

#[derive(SafeParams)]
#[safejax(class = "Sequential")]
struct OmlpLayers(ObjaxLinearLayer, Relu, ObjaxLinearLayer);

#[derive(SafeParams)]
#[safejax(class = "Linear")]
struct ObjaxLinearLayer {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
#[safejax(style = "objax", class = "OMLP")]
struct Omlp {
    layers: OmlpLayers,
}

#[test]
fn objax_mlp_fixture() {
    let model: Omlp = assert_reproduces("objax_mlp");
    assert_eq!(model.layers.0.w.dim(), (8, 16));
    assert_eq!(model.layers.2.w.dim(), (16, 4));
    assert_eq!(
        keys(&model, Style::Objax),
        [
            "(OMLP).layers(Sequential)[0](Linear).b::TrainVar",
            "(OMLP).layers(Sequential)[0](Linear).w::TrainVar",
            "(OMLP).layers(Sequential)[2](Linear).b::TrainVar",
            "(OMLP).layers(Sequential)[2](Linear).w::TrainVar",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Numbering of list elements

#[derive(SafeParams, Debug, PartialEq, Clone)]
struct Norm {
    scale: Array1<f32>,
    offset: Array1<f32>,
}

/// Haiku's repeated modules (`layer_norm`, `layer_norm_1`), children named by their index
/// (`layer.0`), and numbered parameters.
#[derive(SafeParams, Debug, PartialEq)]
#[safejax(style = "haiku", sep = "/")]
struct Numbered {
    #[safejax(numbering = "haiku")]
    layer_norm: Vec<Norm>,
    #[safejax(numbering = "nested")]
    layer: [Norm; 2],
    #[safejax(numbering = "haiku")]
    w: Vec<Array1<f32>>,
    blocks: Vec<Norm>,
}

fn numbered(norms: usize) -> Numbered {
    let norm = |x: f32| Norm {
        scale: array![x],
        offset: array![-x],
    };
    Numbered {
        layer_norm: (0..norms).map(|i| norm(i as f32)).collect(),
        layer: [norm(10.0), norm(11.0)],
        w: vec![array![1.0f32], array![2.0f32], array![3.0f32]],
        blocks: vec![norm(20.0)],
    }
}

#[test]
fn lists_numbered_as_haiku_names_repeated_modules() {
    let model = numbered(3);
    assert_eq!(
        keys(&model, Style::Haiku),
        [
            "blocks_0.offset",
            "blocks_0.scale",
            "layer/0.offset",
            "layer/0.scale",
            "layer/1.offset",
            "layer/1.scale",
            "layer_norm.offset",
            "layer_norm.scale",
            "layer_norm_1.offset",
            "layer_norm_1.scale",
            "layer_norm_2.offset",
            "layer_norm_2.scale",
            "w",
            "w_1",
            "w_2",
        ]
    );
    let flax = keys(&model, Style::Flax);
    assert!(flax.contains(&"layer.1.scale".to_owned()), "{flax:?}");
    assert!(flax.contains(&"layer_norm_2.offset".to_owned()), "{flax:?}");
    // Objax writes every list as `[i]`, whatever the numbering.
    let objax = keys(&model, Style::Objax);
    assert!(
        objax.contains(&"(Numbered).layer_norm(ModuleList)[0](Norm).scale::TrainVar".to_owned()),
        "{objax:?}"
    );
    round_trip(&model);
    for norms in [0, 1, 2, 11] {
        round_trip(&numbered(norms));
    }
}

#[derive(SafeParams, Debug, PartialEq)]
struct MaybeBiased {
    w: Array2<f32>,
    b: Option<Array1<f32>>,
}

#[derive(SafeParams, Debug, PartialEq)]
struct TwoLayers {
    first: MaybeBiased,
    second: MaybeBiased,
}

/// An optional tensor is read from its own key in every style: in Haiku that key joins the
/// tensor to its module with `.`, where modules are joined with `/~/`.
#[test]
fn an_optional_tensor_loads_present_and_absent_in_every_style() {
    let value = TwoLayers {
        first: MaybeBiased {
            w: a2(2, 3, 0.0),
            b: Some(a1(&[1.0, 2.0, 3.0])),
        },
        second: MaybeBiased {
            w: a2(3, 1, 6.0),
            b: None,
        },
    };
    assert_eq!(
        keys(&value, Style::Haiku),
        ["first.b", "first.w", "second.w"]
    );
    round_trip(&value);
    for style in Style::ALL {
        let bytes = Saver::new()
            .style(style)
            .to_bytes(&value)
            .unwrap_or_else(|e| panic!("save in {style}: {e}"));
        Loader::new()
            .style(style)
            .check_bytes::<TwoLayers>(&bytes)
            .unwrap_or_else(|e| panic!("check in {style}: {e}"));
    }
}
