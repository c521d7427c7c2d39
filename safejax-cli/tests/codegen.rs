//! `safejax codegen` on every fixture Python made. The source it prints for each is committed
//! in `tests/codegen/<name>.rs` and compiled here as a module: each test checks that the
//! command still prints exactly that source, and that its root struct loads the fixture
//! strictly and reads the same values as the tree API.
//!
//! Edge cases the fixtures lack are files made here, from a list of keys: their source is
//! committed and compiled the same way, and loads the bytes made from the same list.
//!
//! After a deliberate change of the output, rewrite the snapshots and read the diff:
//! `SAFEJAX_BLESS=1 cargo test -p safejax-cli --test codegen`.

#[path = "codegen/bert_tiny.rs"]
mod bert_tiny;
#[path = "codegen/edge_flax.rs"]
mod edge_flax;
#[path = "codegen/edge_haiku.rs"]
mod edge_haiku;
#[path = "codegen/edge_objax.rs"]
mod edge_objax;
#[path = "codegen/flax_chunked.rs"]
mod flax_chunked;
#[path = "codegen/flax_mlp.rs"]
mod flax_mlp;
#[path = "codegen/haiku_bn.rs"]
mod haiku_bn;
#[path = "codegen/haiku_bn_legacy.rs"]
mod haiku_bn_legacy;
#[path = "codegen/haiku_mlp.rs"]
mod haiku_mlp;
#[path = "codegen/haiku_transformer_lm.rs"]
mod haiku_transformer_lm;
#[path = "codegen/objax_mlp.rs"]
mod objax_mlp;
#[path = "codegen/objax_wide_resnet.rs"]
mod objax_wide_resnet;
#[path = "codegen/objax_wide_resnet_expect.rs"]
mod objax_wide_resnet_expect;
#[path = "codegen/resnet_tiny.rs"]
mod resnet_tiny;

use std::path::Path;

use safejax::ndarray::{self, Array, Dimension};
use safejax::{Dtype, Element, Leaf, SafeParams, Saver, Tensor, format};
use safejax_cli::codegen::{Options, TensorInfo, generate, generate_for};

const FLAX_MLP: &str = "../tests/fixtures/flax_mlp.safetensors";
const HAIKU_MLP: &str = "../tests/fixtures/haiku_mlp.safetensors";
const HAIKU_BN: &str = "../tests/fixtures/haiku_bn.safetensors";
const OBJAX_MLP: &str = "../tests/fixtures/objax_mlp.safetensors";
const TRANSFORMER: &str = "../tests/fixtures/real-models/haiku_transformer_lm.safetensors";
const WIDE_RESNET: &str = "../tests/fixtures/real-models/objax_wide_resnet.safetensors";
const FLAX_CHUNKED: &str = "../tests/fixtures/legacy/flax_chunked.safetensors";
const HAIKU_BN_LEGACY: &str = "../tests/fixtures/legacy/haiku_bn.safetensors";
const BERT_TINY: &str = "../tests/fixtures/hf/bert_tiny.safetensors";
const RESNET_TINY: &str = "../tests/fixtures/hf/resnet_tiny.safetensors";

/// Checks that `codegen` prints the snapshot `name` for `file`, or rewrites it when
/// `SAFEJAX_BLESS=1`.
fn assert_snapshot(name: &str, file: &str, options: &Options) {
    let got = generate(Path::new(file), options).unwrap_or_else(|e| panic!("{e}"));
    assert_source(name, file, &got);
}

/// Checks that `got` is the snapshot `name`, or rewrites it when `SAFEJAX_BLESS=1`.
fn assert_source(name: &str, file: &str, got: &str) {
    let snapshot = format!("tests/codegen/{name}.rs");
    if std::env::var_os("SAFEJAX_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&snapshot, got).unwrap_or_else(|e| panic!("{snapshot}: {e}"));
        return;
    }
    let want = std::fs::read_to_string(&snapshot).unwrap_or_else(|e| panic!("{snapshot}: {e}"));
    assert!(
        got == want,
        "`safejax codegen {file}` no longer prints {snapshot}; if the change is meant, run \
         with SAFEJAX_BLESS=1 and read the diff\n--- printed:\n{got}"
    );
}

/// Loads `file` strictly as `T`, and checks that `T` names exactly the file's tensors.
fn load_strictly<T: SafeParams>(file: &str) -> T {
    let model = T::load(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let parsed = format::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut names: Vec<&str> = parsed.iter().map(|(name, _)| name).collect();
    names.sort_unstable();
    let mut keys = model.keys().unwrap_or_else(|e| panic!("{e}"));
    keys.sort_unstable();
    assert_eq!(keys.len(), parsed.len(), "{file}: number of tensors");
    assert_eq!(keys, names, "{file}: keys");
    model
}

/// The tensor `key` of `file` through the tree API, as an array.
fn tensor<T: Element, D: Dimension>(file: &str, key: &str) -> Array<T, D> {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let parsed = format::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    let (_, found) = parsed
        .iter()
        .find(|(name, _)| *name == key)
        .unwrap_or_else(|| panic!("{file} has no `{key}`"));
    let tensor = Tensor::from_ref(&found).unwrap_or_else(|e| panic!("{e}"));
    tensor.to_array().unwrap_or_else(|e| panic!("{e}"))
}

/// An `f32` tensor of `file` through the tree API.
fn f32s<D: Dimension>(file: &str, key: &str) -> Array<f32, D> {
    tensor(file, key)
}

fn options() -> Options {
    Options::default()
}

fn flax_options() -> Options {
    Options {
        style: safejax_cli::StyleArg::Flax,
        ..Options::default()
    }
}

#[test]
fn flax_mlp() {
    assert_snapshot("flax_mlp", FLAX_MLP, &options());
    let model: flax_mlp::Model = load_strictly(FLAX_MLP);
    assert_eq!(model.dense.len(), 2);
    assert_eq!(
        model.dense[1].kernel,
        f32s(FLAX_MLP, "params.Dense_1.kernel")
    );
}

#[test]
fn haiku_mlp() {
    assert_snapshot("haiku_mlp", HAIKU_MLP, &options());
    let model: haiku_mlp::Model = load_strictly(HAIKU_MLP);
    assert_eq!(model.mlp.linear.len(), 2);
    assert_eq!(model.mlp.linear[0].w, f32s(HAIKU_MLP, "mlp/~/linear_0.w"));
}

#[test]
fn haiku_bn() {
    assert_snapshot("haiku_bn", HAIKU_BN, &options());
    let model: haiku_bn::Model = load_strictly(HAIKU_BN);
    assert_eq!(model.linear.len(), 2);
    let counter: ndarray::Array0<i32> = tensor(HAIKU_BN, "state.batch_norm/~/var_ema.counter");
    assert_eq!(model.batch_norm.var_ema.counter, counter.into_scalar());
    assert_eq!(
        model.batch_norm.mean_ema.average,
        f32s(HAIKU_BN, "state.batch_norm/~/mean_ema.average")
    );
}

#[test]
fn objax_mlp() {
    assert_snapshot("objax_mlp", OBJAX_MLP, &options());
    let model: objax_mlp::Model = load_strictly(OBJAX_MLP);
    assert_eq!(
        model.layers.2.w,
        f32s(
            OBJAX_MLP,
            "(OMLP).layers(Sequential)[2](Linear).w::TrainVar"
        )
    );
}

#[test]
fn haiku_transformer_lm() {
    assert_snapshot("haiku_transformer_lm", TRANSFORMER, &options());
    let model: haiku_transformer_lm::Model = load_strictly(TRANSFORMER);
    let transformer = &model.transformer;
    assert_eq!(transformer.layer_norm.len(), 5);
    assert_eq!(transformer.linear.len(), 4);
    assert_eq!(transformer.multi_head_attention.len(), 2);
    assert_eq!(
        transformer.multi_head_attention[1].query.w,
        f32s(TRANSFORMER, "transformer/multi_head_attention_1/query.w")
    );
}

#[test]
fn objax_wide_resnet() {
    assert_snapshot("objax_wide_resnet", WIDE_RESNET, &options());
    let model: objax_wide_resnet::Model = load_strictly(WIDE_RESNET);
    let projected: Vec<bool> = model.1.iter().map(|b| b.proj_conv.is_some()).collect();
    assert_eq!(projected, [false, false, true, false, true, false]);
    let proj = model.1[4].proj_conv.as_ref().map(|c| c.w.clone());
    let want = f32s(
        WIDE_RESNET,
        "(WideResNet)[5](WRNBlock).proj_conv(Conv2D).w::TrainVar",
    );
    assert_eq!(proj, Some(want));
    assert_eq!(
        model.2.running_var,
        f32s(
            WIDE_RESNET,
            "(WideResNet)[7](BatchNorm2D).running_var::StateVar"
        )
    );
}

/// With `--expect`, the root pins the file: this module compiles only because the derive found
/// that it loads the file strictly.
#[test]
fn objax_wide_resnet_expect() {
    let options = Options {
        expect: true,
        root: "WideResNet".to_owned(),
        ..Options::default()
    };
    assert_snapshot("objax_wide_resnet_expect", WIDE_RESNET, &options);
    let source = std::fs::read_to_string("tests/codegen/objax_wide_resnet_expect.rs")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(source.contains(&format!("#[safejax(expect = {WIDE_RESNET:?})]")));
    let model: objax_wide_resnet_expect::WideResNet = load_strictly(WIDE_RESNET);
    assert_eq!(model.5.w.dim(), (64, 10));
}

/// A file made here: each key with its dtype and shape, `f32` tensors counting up from 0, the
/// others zero.
struct Made {
    tensors: Vec<TensorInfo>,
}

impl Made {
    fn new(keys: &[(&str, Dtype, &[usize])]) -> Self {
        let tensors = keys
            .iter()
            .map(|&(key, dtype, shape)| TensorInfo {
                key: key.to_owned(),
                dtype,
                shape: shape.to_vec(),
            })
            .collect();
        Made { tensors }
    }

    /// Checks the source printed for these keys against the snapshot `name`, and returns it.
    fn source(&self, name: &str) -> String {
        let file = format!("{name}.safetensors");
        let got =
            generate_for(&self.tensors, &options(), &file, None).unwrap_or_else(|e| panic!("{e}"));
        assert_source(name, &file, &got);
        got
    }

    fn bytes(&self) -> Vec<u8> {
        let tensors: Vec<(String, Tensor)> = self
            .tensors
            .iter()
            .map(|t| {
                let len: usize = t.shape.iter().product();
                let data: Vec<u8> = match t.dtype {
                    Dtype::F32 => (0..len).flat_map(|i| (i as f32).to_le_bytes()).collect(),
                    dtype => vec![0; len * safejax::dtype::byte_size(dtype)],
                };
                let tensor = Tensor::new(t.dtype, t.shape.clone(), data)
                    .unwrap_or_else(|e| panic!("{}: {e}", t.key));
                (t.key.clone(), tensor)
            })
            .collect();
        let leaves: Vec<(String, &dyn Leaf)> = tensors
            .iter()
            .map(|(key, tensor)| (key.clone(), tensor as &dyn Leaf))
            .collect();
        Saver::new()
            .tensors_to_bytes(&leaves)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Loads the bytes strictly as `T`, and checks that `T` names exactly these keys.
    fn load<T: SafeParams>(&self) -> T {
        let model = T::from_bytes(&self.bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut keys = model.keys().unwrap_or_else(|e| panic!("{e}"));
        keys.sort_unstable();
        let mut want: Vec<&str> = self.tensors.iter().map(|t| t.key.as_str()).collect();
        want.sort_unstable();
        assert_eq!(keys, want);
        model
    }
}

/// Flax: a `Dense_0..Dense_2` run whose elements differ (one has no bias), a keyword and a
/// CamelCase name, a run of modules with parameters and statistics, a list of `name=str(i)`
/// children, every kind of element type and rank, and a name too long for one line.
#[test]
fn edge_flax() {
    let made = Made::new(&[
        ("params.Dense_0.kernel", Dtype::F32, &[4, 8]),
        ("params.Dense_0.bias", Dtype::F32, &[8]),
        ("params.Dense_1.kernel", Dtype::F32, &[8, 8]),
        ("params.Dense_2.kernel", Dtype::F32, &[8, 2]),
        ("params.Dense_2.bias", Dtype::F32, &[2]),
        ("params.type.w", Dtype::BF16, &[3]),
        ("params.LayerNorm.scale", Dtype::F16, &[8]),
        ("params.BatchNorm_0.scale", Dtype::F32, &[8]),
        ("batch_stats.BatchNorm_0.mean", Dtype::F32, &[8]),
        ("batch_stats.BatchNorm_0.var", Dtype::F32, &[8]),
        ("params.BatchNorm_1.scale", Dtype::F32, &[4]),
        ("batch_stats.BatchNorm_1.mean", Dtype::F32, &[4]),
        ("batch_stats.BatchNorm_1.var", Dtype::F32, &[4]),
        ("batch_stats.step", Dtype::I64, &[]),
        (
            "batch_stats.ARatherLongModuleName_WhoseAttributesAndFieldTakeTwoLines.mean",
            Dtype::F32,
            &[2],
        ),
        ("params.encoder.layer.0.w", Dtype::F64, &[2, 2]),
        ("params.encoder.layer.1.w", Dtype::F64, &[2, 2]),
        ("params.mask", Dtype::BOOL, &[2, 3, 1, 1, 1, 1, 1]),
        ("params.codes", Dtype::U8, &[4]),
        ("params.packed", Dtype::F8_E4M3, &[4]),
    ]);
    let source = made.source("edge_flax");
    for line in [
        "#[safejax(rename = \"Dense\")]\n    pub dense: Vec<Dense>,",
        "pub bias: Option<Array1<f32>>,",
        "#[safejax(rename = \"type\")]\n    pub type_: Type,",
        "#[safejax(rename = \"LayerNorm\")]\n    pub layer_norm: LayerNorm,",
        "#[safejax(collection = \"batch_stats\")]\n    pub mean: Array1<f32>,",
        "#[safejax(rename = \"BatchNorm\")]\n    pub batch_norm: Vec<BatchNorm>,",
        "#[safejax(numbering = \"nested\")]\n    pub layer: Vec<Layer>,",
        "pub mask: ArrayD<bool>,",
        "pub packed: Tensor,",
    ] {
        assert!(source.contains(line), "no `{line}` in\n{source}");
    }
    let model: edge_flax::Model = made.load();
    let biases: Vec<bool> = model.dense.iter().map(|d| d.bias.is_some()).collect();
    assert_eq!(biases, [true, false, true]);
    assert_eq!(model.dense[2].kernel[[7, 1]], 15.0);
    assert_eq!(model.encoder.layer.len(), 2);
    assert_eq!(model.batch_norm[1].var.len(), 4);
    assert_eq!(model.step, 0);
    let long = &model.a_rather_long_module_name_whose_attributes_and_field_take_two_lines;
    assert_eq!(long.mean.len(), 2);
}

/// Haiku: `linear`, `linear_1`, `linear_2` (Haiku's numbering), `block`, `block_1` of which
/// only one has a `norm`, `conv`, `conv_1` of which only one has a bias (an `Option` tensor),
/// `/` and `/~/` mixed in one path, and an
/// `hk.nets.MLP`'s `linear_0`, `linear_1`.
#[test]
fn edge_haiku() {
    let made = Made::new(&[
        ("linear.w", Dtype::F32, &[2, 3]),
        ("linear.b", Dtype::F32, &[3]),
        ("linear_1.w", Dtype::F32, &[3, 3]),
        ("linear_1.b", Dtype::F32, &[3]),
        ("linear_2.w", Dtype::F32, &[3, 1]),
        ("linear_2.b", Dtype::F32, &[1]),
        ("block/~/proj.w", Dtype::F32, &[2, 2]),
        ("block/~/norm.scale", Dtype::F32, &[2]),
        ("block_1/~/proj.w", Dtype::F32, &[2, 2]),
        ("conv.w", Dtype::F32, &[3, 3, 1, 2]),
        ("conv.b", Dtype::F32, &[2]),
        ("conv_1.w", Dtype::F32, &[3, 3, 2, 2]),
        ("encoder/block/proj.w", Dtype::F32, &[2, 2]),
        ("encoder/block/~/norm.scale", Dtype::F32, &[2]),
        ("encoder/~/final.w", Dtype::F32, &[2, 2]),
        ("mlp/~/linear_0.w", Dtype::F32, &[2, 2]),
        ("mlp/~/linear_1.w", Dtype::F32, &[2, 2]),
    ]);
    let source = made.source("edge_haiku");
    for line in [
        "#[safejax(numbering = \"haiku\")]\n    pub linear: Vec<Linear>,",
        "#[safejax(numbering = \"haiku\")]\n    pub block: Vec<Block>,",
        "pub norm: Option<Norm>,",
        "#[safejax(numbering = \"haiku\")]\n    pub conv: Vec<Conv>,",
        "pub b: Option<Array1<f32>>,",
        "#[safejax(sep = \"/\")]\n    pub proj: Proj,",
        "#[safejax(rename = \"final\")]\n    pub final_: Proj,",
    ] {
        assert!(source.contains(line), "no `{line}` in\n{source}");
    }
    let model: edge_haiku::Model = made.load();
    assert_eq!(model.linear.len(), 3);
    let norms: Vec<bool> = model.block.iter().map(|b| b.norm.is_some()).collect();
    assert_eq!(norms, [true, false]);
    let biases: Vec<bool> = model.conv.iter().map(|c| c.b.is_some()).collect();
    assert_eq!(biases, [true, false]);
    assert_eq!(model.mlp.linear.len(), 2);
    assert_eq!(model.linear[1].w[[2, 2]], 8.0);
}

/// Objax: a `Sequential` and a `ModuleList` whose elements are one run (a `Vec`), a
/// `Sequential` with a run, a gap and another module (a tuple struct), two shapes of one class,
/// a `ModuleDict` (a map), and a `StateVar`.
#[test]
fn edge_objax() {
    let made = Made::new(&[
        (
            "(Net).seq(Sequential)[0](Linear).w::TrainVar",
            Dtype::F32,
            &[2, 2],
        ),
        (
            "(Net).seq(Sequential)[1](Linear).w::TrainVar",
            Dtype::F32,
            &[2, 2],
        ),
        (
            "(Net).seq(Sequential)[1](Linear).b::TrainVar",
            Dtype::F32,
            &[2],
        ),
        (
            "(Net).seq(Sequential)[2](Linear).w::TrainVar",
            Dtype::F32,
            &[2, 2],
        ),
        (
            "(Net).blocks(ModuleList)[0](Block).conv(Conv2D).w::TrainVar",
            Dtype::F32,
            &[1, 1, 2, 2],
        ),
        (
            "(Net).blocks(ModuleList)[1](Block).conv(Conv2D).w::TrainVar",
            Dtype::F32,
            &[1, 1, 2, 2],
        ),
        (
            "(Net).body(Sequential)[0](Conv2D).w::TrainVar",
            Dtype::F32,
            &[3, 3, 1, 2],
        ),
        (
            "(Net).body(Sequential)[1](Block).conv(Conv2D).w::TrainVar",
            Dtype::F32,
            &[1, 1, 2, 2],
        ),
        (
            "(Net).body(Sequential)[2](Block).conv(Conv2D).w::TrainVar",
            Dtype::F32,
            &[1, 1, 2, 2],
        ),
        (
            "(Net).body(Sequential)[4](Linear).w::TrainVar",
            Dtype::F32,
            &[2, 2],
        ),
        (
            "(Net).body(Sequential)[4](Linear).b::TrainVar",
            Dtype::F32,
            &[2],
        ),
        (
            "(Net).heads(ModuleDict)[box](Head).w::TrainVar",
            Dtype::F32,
            &[2, 4],
        ),
        (
            "(Net).heads(ModuleDict)[cls](Head).w::TrainVar",
            Dtype::F32,
            &[2, 3],
        ),
        (
            "(Net).norm(BatchNorm2D).gamma::TrainVar",
            Dtype::F32,
            &[1, 2, 1, 1],
        ),
        (
            "(Net).norm(BatchNorm2D).running_mean::StateVar",
            Dtype::F32,
            &[1, 2, 1, 1],
        ),
    ]);
    let source = made.source("edge_objax");
    for line in [
        "#[safejax(class = \"Sequential\")]\n    pub seq: Vec<Linear2>,",
        "    pub blocks: Vec<Block>,",
        "    pub heads: BTreeMap<String, Head>,",
        "pub struct Sequential(\n    pub Conv2D,\n    #[safejax(flatten)] pub Vec<Block>,\n    pub (),\n    pub Linear,\n);",
        "#[safejax(class = \"Linear\")]\npub struct Linear2 {",
        "#[safejax(collection = \"StateVar\")]\n    pub running_mean: Array4<f32>,",
    ] {
        assert!(source.contains(line), "no `{line}` in\n{source}");
    }
    let model: edge_objax::Model = made.load();
    assert_eq!(model.seq.len(), 3);
    assert!(model.seq[1].b.is_some() && model.seq[2].b.is_none());
    assert_eq!(model.blocks.len(), 2);
    assert_eq!(model.body.1.len(), 2);
    assert_eq!(model.body.3.b[1], 1.0);
    assert_eq!(model.heads["cls"].w.dim(), (2, 3));
}

#[test]
fn the_command_prints_the_source() {
    use clap::Parser;
    let cli = safejax_cli::Cli::parse_from(["safejax", "codegen", HAIKU_BN, "--style", "haiku"]);
    let mut out = Vec::new();
    let outcome = safejax_cli::run(&cli, &mut out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome, safejax_cli::Outcome::Clean);
    let want =
        std::fs::read_to_string("tests/codegen/haiku_bn.rs").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8_lossy(&out), want);
}

#[test]
fn what_no_struct_can_load_is_refused_with_the_reason() {
    let refusal = |keys: &[(&str, Dtype, &[usize])], options: &Options| {
        let made = Made::new(keys);
        match generate_for(&made.tensors, options, "x.safetensors", None) {
            Ok(source) => panic!("generated for {keys:?}:\n{source}"),
            Err(why) => why,
        }
    };
    let kernel: &[(&str, Dtype, &[usize])] = &[("params.Dense_0.kernel", Dtype::F32, &[2, 2])];
    let root = |root: &str| Options {
        root: root.to_owned(),
        ..Options::default()
    };
    for bad in ["fn", "model", "Vec", "My-Model", ""] {
        let why = refusal(kernel, &root(bad));
        assert!(why.contains("cannot name the root struct"), "{why}");
    }
    let why = refusal(&[], &options());
    assert_eq!(why, "the file holds no tensors");
    let why = refusal(
        &[("a.b", Dtype::F32, &[1]), ("a.b.c", Dtype::F32, &[1])],
        &options(),
    );
    assert_eq!(why, "`a.b.c` uses the tensor `a.b` as a module");
    let why = refusal(&[("(Net).w", Dtype::F32, &[1])], &options());
    assert!(why.contains("has no `::` variable kind"), "{why}");
    let why = refusal(
        &[
            ("(Net).a(Linear).w::TrainVar", Dtype::F32, &[1]),
            ("(Other).b(Linear).w::TrainVar", Dtype::F32, &[1]),
        ],
        &options(),
    );
    assert!(why.contains("another root class"), "{why}");
    let why = refusal(
        &[
            (
                "(Net).seq(Sequential)[0](Linear).w::TrainVar",
                Dtype::F32,
                &[1],
            ),
            (
                "(Net).seq(Sequential)[900](Linear).w::TrainVar",
                Dtype::F32,
                &[1],
            ),
        ],
        &options(),
    );
    assert!(
        why.contains("elements up to `[900]` but only 2 hold tensors"),
        "{why}"
    );
    let deep = format!("{}w", "m.".repeat(200));
    let why = refusal(&[(deep.as_str(), Dtype::F32, &[1])], &options());
    assert!(
        why.contains("is 201 steps deep; a struct reads at most 128"),
        "{why}"
    );
    let why = refusal(
        &[("params.mlp/~/linear_0.w", Dtype::F32, &[1])],
        &flax_options(),
    );
    assert!(why.contains("`mlp/~/linear_0` contains `/`"), "{why}");
    let flax = Options {
        style: safejax_cli::StyleArg::Flax,
        ..Options::default()
    };
    let why = refusal(&[("params..kernel", Dtype::F32, &[1])], &flax);
    assert!(why.starts_with("in flax style, "), "{why}");

    let missing = generate(Path::new("no/such.safetensors"), &options());
    let why = missing.map(|_| ()).unwrap_err().to_string();
    assert!(why.starts_with("no/such.safetensors: "), "{why}");
    let expect = Options {
        expect: true,
        ..Options::default()
    };
    let index = generate(Path::new("model.safetensors.index.json"), &expect);
    let why = index.map(|_| ()).unwrap_err().to_string();
    assert!(
        why.contains("not to the index of a sharded checkpoint"),
        "{why}"
    );
}

/// Python safejax's file of the parameters `flax_chunked.msgpack` holds: bf16 and i32 leaves, a
/// tensor in `batch_stats` beside `params`.
#[test]
fn flax_chunked() {
    assert_snapshot("flax_chunked", FLAX_CHUNKED, &options());
    let model: flax_chunked::Model = load_strictly(FLAX_CHUNKED);
    assert_eq!(
        model.embed.embedding,
        f32s(FLAX_CHUNKED, "params.embed.embedding")
    );
    let count: ndarray::Array2<i32> = tensor(FLAX_CHUNKED, "batch_stats.count");
    assert_eq!(model.count, count);
    let scale: ndarray::Array1<safejax::half::bf16> = tensor(FLAX_CHUNKED, "params.norm.scale");
    assert_eq!(model.norm.scale, scale);
}

/// The Haiku BatchNorm model of the pickles in `tests/fixtures/legacy`, saved by Python safejax.
#[test]
fn haiku_bn_legacy() {
    assert_snapshot("haiku_bn_legacy", HAIKU_BN_LEGACY, &options());
    let model: haiku_bn_legacy::Model = load_strictly(HAIKU_BN_LEGACY);
    assert_eq!(model.linear.len(), 2);
    assert_eq!(
        model.batch_norm.var_ema.average,
        f32s(HAIKU_BN_LEGACY, "state.batch_norm/~/var_ema.average")
    );
}

/// A BERT saved by Hugging Face `transformers`: keys without a collection, `layer.0` lists.
#[test]
fn bert_tiny() {
    assert_snapshot("bert_tiny", BERT_TINY, &options());
    let model: bert_tiny::Model = load_strictly(BERT_TINY);
    assert_eq!(model.encoder.layer.len(), 2);
    assert_eq!(
        model.encoder.layer[1].attention.self_.query.kernel,
        f32s(BERT_TINY, "encoder.layer.1.attention.self.query.kernel")
    );
}

/// A ResNet saved by Hugging Face `transformers`: `params` and `batch_stats`, nested lists.
#[test]
fn resnet_tiny() {
    assert_snapshot("resnet_tiny", RESNET_TINY, &options());
    let model: resnet_tiny::Model = load_strictly(RESNET_TINY);
    assert_eq!(model.encoder.stages.len(), 2);
    assert_eq!(
        model.embedder.embedder.normalization.var,
        f32s(
            RESNET_TINY,
            "batch_stats.embedder.embedder.normalization.var"
        )
    );
}

/// A checkpoint split into shards prints the structs its single file prints.
#[test]
fn a_sharded_checkpoint_prints_the_structs_of_its_single_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(TRANSFORMER).unwrap_or_else(|e| panic!("{e}"));
    let parsed = format::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let tensors: Vec<(String, Tensor)> = parsed
        .iter()
        .map(|(name, found)| {
            let tensor = Tensor::from_ref(&found).unwrap_or_else(|e| panic!("{e}"));
            (name.to_owned(), tensor)
        })
        .collect();
    let leaves: Vec<(String, &dyn Leaf)> = tensors
        .iter()
        .map(|(name, tensor)| (name.clone(), tensor as &dyn Leaf))
        .collect();
    let index = dir
        .path()
        .join("haiku_transformer_lm.safetensors.index.json");
    Saver::new()
        .max_shard_size(64 << 10)
        .save_tensors(&leaves, &index)
        .unwrap_or_else(|e| panic!("{e}"));
    let shards = std::fs::read_dir(dir.path()).map_or(0, |entries| entries.count()) - 1;
    assert!(shards > 2, "{shards} shards");
    let sharded = generate(&index, &options()).unwrap_or_else(|e| panic!("{e}"));
    let single = generate(Path::new(TRANSFORMER), &options()).unwrap_or_else(|e| panic!("{e}"));
    let body = |source: &str| source.split_once('\n').map(|(_, rest)| rest.to_owned());
    assert_eq!(body(&sharded), body(&single));
    assert!(
        sharded.starts_with("// Structs that load `haiku_transformer_lm.safetensors.index.json`")
    );
}

/// Every fixture Python made has its snapshot here: a new fixture needs one (and a test). The
/// files of `legacy/` that are copies of the first fixtures share their snapshots.
#[test]
fn every_fixture_has_a_snapshot() {
    let snapshots = [
        (FLAX_MLP, "flax_mlp"),
        (HAIKU_MLP, "haiku_mlp"),
        (HAIKU_BN, "haiku_bn"),
        (OBJAX_MLP, "objax_mlp"),
        (TRANSFORMER, "haiku_transformer_lm"),
        (WIDE_RESNET, "objax_wide_resnet"),
        (FLAX_CHUNKED, "flax_chunked"),
        (HAIKU_BN_LEGACY, "haiku_bn_legacy"),
        ("../tests/fixtures/legacy/flax_mlp.safetensors", "flax_mlp"),
        (
            "../tests/fixtures/legacy/haiku_mlp.safetensors",
            "haiku_mlp",
        ),
        (
            "../tests/fixtures/legacy/objax_mlp.safetensors",
            "objax_mlp",
        ),
        (BERT_TINY, "bert_tiny"),
        (RESNET_TINY, "resnet_tiny"),
    ];
    let mut fixtures = Vec::new();
    for dir in [
        "../tests/fixtures",
        "../tests/fixtures/real-models",
        "../tests/fixtures/legacy",
        "../tests/fixtures/hf",
    ] {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{dir}: {e}")).path();
            if path.extension().is_some_and(|e| e == "safetensors") {
                fixtures.push(path.to_string_lossy().into_owned());
            }
        }
    }
    fixtures.sort();
    let mut listed: Vec<String> = snapshots.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(
        fixtures, listed,
        "every fixture, and only those, has a snapshot"
    );
    for (fixture, name) in snapshots {
        let snapshot = format!("tests/codegen/{name}.rs");
        let printed = generate(Path::new(fixture), &options()).unwrap_or_else(|e| panic!("{e}"));
        let committed =
            std::fs::read_to_string(&snapshot).unwrap_or_else(|e| panic!("{snapshot}: {e}"));
        // The first line names the file; the structs are the snapshot's.
        let body = |source: &str| source.split_once('\n').map(|(_, rest)| rest.to_owned());
        assert_eq!(
            body(&printed),
            body(&committed),
            "{fixture} against {snapshot}"
        );
    }
}

/// The README shows what the command prints for `flax_mlp`.
#[test]
fn the_readme_shows_the_current_output() {
    let readme = std::fs::read_to_string("../README.md").unwrap_or_else(|e| panic!("{e}"));
    let printed =
        std::fs::read_to_string("tests/codegen/flax_mlp.rs").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        readme.contains(&format!("```rust\n{printed}# fn main()")),
        "README.md's \"generating the structs\" does not show:\n{printed}"
    );
}
