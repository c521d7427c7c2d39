use ndarray::{Array1, Array2};
use safejax::SafeParams;

/// `kernel` is 2-D in the file.
#[derive(SafeParams)]
struct Dense {
    kernel: Array1<f32>,
    bias: Array1<f32>,
}

#[derive(SafeParams)]
struct Head {
    kernel: Array2<f32>,
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
    out: Head,
}

fn main() {}
