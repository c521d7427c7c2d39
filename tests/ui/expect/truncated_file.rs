use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

/// The file lost its last 100 bytes of data: neither whole nor header-only.
#[derive(SafeParams)]
#[safejax(
    style = "flax",
    collection = "params",
    expect = "fixtures/flax_mlp_cut.safetensors"
)]
struct Mlp {
    #[safejax(rename = "Dense_0")]
    hidden: Dense,
    #[safejax(rename = "Dense_1")]
    out: Dense,
}

fn main() {}
