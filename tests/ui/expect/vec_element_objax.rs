use ndarray::{Array1, Array2, Array4};
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(class = "Conv2D")]
struct Conv2D {
    w: Array4<f32>,
}

#[derive(SafeParams)]
#[safejax(class = "BatchNorm2D")]
struct BatchNorm2D {
    beta: Array4<f32>,
    gamma: Array4<f32>,
    #[safejax(collection = "StateVar")]
    running_mean: Array4<f32>,
    #[safejax(collection = "StateVar")]
    running_var: Array4<f32>,
}

/// Only the blocks that change the width project their input: `proj_conv` should be an
/// `Option<Conv2D>`.
#[derive(SafeParams)]
#[safejax(class = "WRNBlock")]
struct WrnBlock {
    conv_1: Conv2D,
    conv_2: Conv2D,
    norm_1: BatchNorm2D,
    norm_2: BatchNorm2D,
    proj_conv: Conv2D,
}

#[derive(SafeParams)]
struct Relu;

#[derive(SafeParams)]
struct MeanReduce;

#[derive(SafeParams)]
#[safejax(class = "Linear")]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
#[safejax(
    style = "objax",
    class = "WideResNet",
    expect = "fixtures/objax_wide_resnet.header.safetensors"
)]
struct WideResNet(
    Conv2D,
    #[safejax(flatten)] Vec<WrnBlock>,
    BatchNorm2D,
    Relu,
    MeanReduce,
    Linear,
);

fn main() {}
