use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

/// Haiku's batch norm keeps a leading broadcast axis: `offset` and `scale` are `[1, 16]`.
#[derive(SafeParams)]
struct BatchNorm {
    offset: Array1<f32>,
    scale: Array1<f32>,
}

#[derive(SafeParams)]
#[safejax(
    style = "haiku",
    collection = "params",
    expect(path = "fixtures/haiku_bn_params.safetensors", collections = ["params"], without_collection)
)]
struct Bn {
    linear: Linear,
    batch_norm: BatchNorm,
    linear_1: Linear,
}

fn main() {}
