use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

/// Every kind of problem at once: the rank of `offset` (`[1, 16]` in the file), the dtype of
/// `counter` (int32), a `mean` the file does not have, and `var_ema` left unread.
#[derive(SafeParams)]
struct Ema {
    average: Array2<f32>,
    hidden: Array2<f32>,
    counter: f32,
}

#[derive(SafeParams)]
struct BatchNorm {
    offset: Array1<f32>,
    scale: Array2<f32>,
    mean: Array1<f32>,
    #[safejax(collection = "state")]
    mean_ema: Ema,
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
