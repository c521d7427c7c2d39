use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams, Debug)]
pub struct Dense {
    pub kernel: Array2<f32>,
    pub bias: Array1<f32>,
}

#[derive(SafeParams, Debug)]
#[safejax(
    style = "flax",
    collection = "params",
    expect = "tests/fixtures/flax_mlp.safetensors"
)]
pub struct FlaxMlp {
    #[safejax(rename = "Dense_0")]
    pub hidden: Dense,
    #[safejax(rename = "Dense_1")]
    pub out: Dense,
}

#[test]
fn schema() {
    println!("{}", FlaxMlp::schema());
}
