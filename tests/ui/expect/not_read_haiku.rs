use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
struct BatchNorm {
    offset: Array2<f32>,
    scale: Array2<f32>,
}

/// The file also holds the batch norm's state, which this struct does not read.
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

fn main() {}
