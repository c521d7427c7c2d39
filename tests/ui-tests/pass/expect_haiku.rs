//! Haiku structs pinned to the files they load: `hk.nets.MLP`'s layers in a `Vec`
//! (`mlp/~/linear_0.w`), and params and state in one file (`state.batch_norm/~/mean_ema.counter`).
use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
struct HkMlp {
    #[safejax(rename = "linear")]
    layers: Vec<Linear>,
}

#[derive(SafeParams)]
#[safejax(style = "haiku", expect = "fixtures/haiku_mlp.safetensors")]
struct Mlp {
    mlp: HkMlp,
}

#[derive(SafeParams)]
struct Ema {
    average: Array2<f32>,
    hidden: Array2<f32>,
    counter: i32,
}

#[derive(SafeParams)]
struct BatchNorm {
    offset: Array2<f32>,
    scale: Array2<f32>,
    #[safejax(collection = "state")]
    mean_ema: Ema,
    #[safejax(collection = "state")]
    var_ema: Ema,
}

#[derive(SafeParams)]
#[safejax(
    style = "haiku",
    collection = "params",
    expect = "fixtures/haiku_bn.safetensors"
)]
struct Bn {
    linear: Linear,
    batch_norm: BatchNorm,
    linear_1: Linear,
}

fn main() {
    let fixture = |name: &str| format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let mlp = Mlp::load(fixture("haiku_mlp.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mlp.mlp.layers.len(), 2);
    let bn = Bn::load(fixture("haiku_bn.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bn.batch_norm.mean_ema.counter, 1);
}
