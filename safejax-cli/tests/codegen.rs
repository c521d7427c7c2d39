//! `safejax codegen` on every fixture Python made. The source it prints for each is committed
//! in `tests/codegen/<name>.rs` and compiled here as a module: each test checks that the
//! command still prints exactly that source, and that its root struct loads the fixture
//! strictly and reads the same values as the tree API.
//!
//! After a deliberate change of the output, rewrite the snapshots and read the diff:
//! `SAFEJAX_BLESS=1 cargo test -p safejax-cli --test codegen`.

#[path = "codegen/flax_mlp.rs"]
mod flax_mlp;
#[path = "codegen/haiku_bn.rs"]
mod haiku_bn;
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

use std::path::Path;

use safejax::ndarray::{self, Array, Dimension};
use safejax::{Element, SafeParams, Tensor, format};
use safejax_cli::codegen::{Options, generate};

const FLAX_MLP: &str = "../tests/fixtures/flax_mlp.safetensors";
const HAIKU_MLP: &str = "../tests/fixtures/haiku_mlp.safetensors";
const HAIKU_BN: &str = "../tests/fixtures/haiku_bn.safetensors";
const OBJAX_MLP: &str = "../tests/fixtures/objax_mlp.safetensors";
const TRANSFORMER: &str = "../tests/fixtures/real-models/haiku_transformer_lm.safetensors";
const WIDE_RESNET: &str = "../tests/fixtures/real-models/objax_wide_resnet.safetensors";

/// Checks that `codegen` prints the snapshot `name` for `file`, or rewrites it when
/// `SAFEJAX_BLESS=1`.
fn assert_snapshot(name: &str, file: &str, options: &Options) {
    let got = generate(Path::new(file), options).unwrap_or_else(|e| panic!("{e}"));
    let snapshot = format!("tests/codegen/{name}.rs");
    if std::env::var_os("SAFEJAX_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&snapshot, &got).unwrap_or_else(|e| panic!("{snapshot}: {e}"));
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
