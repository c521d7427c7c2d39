use ndarray::{Array1, Array2};
use safejax::SafeParams;

/// Haiku's names for a linear layer: the file's `Dense_0` has `kernel` and `bias`.
#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
#[safejax(
    style = "flax",
    collection = "params",
    expect = "fixtures/flax_mlp.safetensors"
)]
struct Mlp {
    /// `Dense_0`, `Dense_1`, ...
    #[safejax(rename = "Dense")]
    layers: Vec<Linear>,
}

fn main() {}
