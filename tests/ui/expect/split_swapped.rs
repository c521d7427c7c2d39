use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
struct Ema {
    average: Array2<f32>,
    hidden: Array2<f32>,
    counter: i32,
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

/// The two files of the checkpoint, each said to hold the other's collection.
#[derive(SafeParams)]
#[safejax(style = "haiku", collection = "params")]
#[safejax(expect(
    path = "fixtures/haiku_bn_state.safetensors",
    collections = ["params"],
    without_collection
))]
#[safejax(expect(
    path = "fixtures/haiku_bn_params.safetensors",
    collections = ["state"],
    without_collection
))]
struct Bn {
    linear: Linear,
    batch_norm: BatchNorm,
    linear_1: Linear,
}

fn main() {}
