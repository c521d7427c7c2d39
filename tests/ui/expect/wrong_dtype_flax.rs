use ndarray::{Array1, Array2};
use safejax::SafeParams;

/// The file's tensors are f32.
#[derive(SafeParams)]
struct Dense {
    kernel: Array2<f64>,
    bias: Array1<f32>,
}

#[derive(SafeParams)]
#[safejax(
    style = "flax",
    collection = "params",
    expect = "fixtures/flax_mlp.safetensors"
)]
struct Mlp {
    #[safejax(rename = "Dense_0")]
    hidden: Dense,
    #[safejax(rename = "Dense_1")]
    out: Dense,
}

fn main() {}
