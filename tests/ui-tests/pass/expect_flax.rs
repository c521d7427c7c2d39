//! A Flax struct pinned to the file it loads: the whole variables dict, keys `params.Dense_0.kernel`.
use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Dense {
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
    out: Dense,
}

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flax_mlp.safetensors");
    let mlp = Mlp::load(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mlp.hidden.kernel.dim(), (8, 16));
    assert_eq!(mlp.out.bias.dim(), 4);
}
