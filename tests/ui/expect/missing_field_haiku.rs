use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
struct LayerNorm {
    scale: Array1<f32>,
    offset: Array1<f32>,
}

#[derive(SafeParams)]
struct HkMlp {
    #[safejax(rename = "linear")]
    layers: Vec<Linear>,
    /// `hk.nets.MLP` has no norm: the file has no `mlp/~/norm`.
    norm: LayerNorm,
}

#[derive(SafeParams)]
#[safejax(style = "haiku", expect = "fixtures/haiku_mlp.safetensors")]
struct Mlp {
    mlp: HkMlp,
}

fn main() {}
