use ndarray::{Array1, Array2};
use safejax::SafeParams;

/// The file's `w` is 2-D and its `b` 1-D.
#[derive(SafeParams)]
struct Linear {
    w: Array1<f32>,
    b: Array2<f32>,
}

#[derive(SafeParams)]
struct HkMlp {
    /// `linear_0`, `linear_1`, ...
    #[safejax(rename = "linear")]
    layers: Vec<Linear>,
}

#[derive(SafeParams)]
#[safejax(style = "haiku", expect = "fixtures/haiku_mlp.safetensors")]
struct Mlp {
    mlp: HkMlp,
}

fn main() {}
