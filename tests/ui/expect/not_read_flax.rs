use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

/// The file also has `params.Dense_1`, which this struct does not read.
#[derive(SafeParams)]
#[safejax(
    style = "flax",
    collection = "params",
    expect = "fixtures/flax_mlp.safetensors"
)]
struct Encoder {
    #[safejax(rename = "Dense_0")]
    hidden: Dense,
}

fn main() {}
