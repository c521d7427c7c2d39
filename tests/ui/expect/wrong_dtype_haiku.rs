use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

/// Haiku's counters are 0-d int32 tensors.
#[derive(SafeParams)]
struct Ema {
    average: Array2<f32>,
    hidden: Array2<f32>,
    counter: i64,
}

#[derive(SafeParams)]
struct BatchNorm {
    offset: Array2<f32>,
    scale: Array2<f32>,
    #[safejax(collection = "state")]
    mean_ema: Ema,
    #[safejax(collection = "state")]
    var_ema: Ema,
}

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
