//! objax.zoo's WideResNet, declared the natural way: its blocks in a `Vec` flattened into the
//! root `Sequential`, whose length only the file tells.

use ndarray::{Array1, Array2, Array4};
use safejax::SafeParams;

#[derive(SafeParams, Debug, PartialEq, Clone)]
#[safejax(class = "Conv2D")]
pub struct Conv2D {
    pub w: Array4<f32>,
}

#[derive(SafeParams, Debug, PartialEq, Clone)]
#[safejax(class = "BatchNorm2D")]
pub struct BatchNorm2D {
    pub beta: Array4<f32>,
    pub gamma: Array4<f32>,
    #[safejax(collection = "StateVar")]
    pub running_mean: Array4<f32>,
    #[safejax(collection = "StateVar")]
    pub running_var: Array4<f32>,
}

/// A residual block; only those that change the width project their input.
#[derive(SafeParams, Debug, PartialEq, Clone)]
#[safejax(class = "WRNBlock")]
pub struct WrnBlock {
    pub conv_1: Conv2D,
    pub conv_2: Conv2D,
    pub norm_1: BatchNorm2D,
    pub norm_2: BatchNorm2D,
    pub proj_conv: Option<Conv2D>,
}

#[derive(SafeParams, Debug, PartialEq, Clone)]
pub struct Relu;

#[derive(SafeParams, Debug, PartialEq, Clone)]
pub struct MeanReduce;

#[derive(SafeParams, Debug, PartialEq, Clone)]
#[safejax(class = "Linear")]
pub struct Linear {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

/// `objax.zoo.wide_resnet.WideResNet`: a `Sequential` of a convolution, the blocks, a norm,
/// relu, a mean and the classifier.
#[derive(SafeParams, Debug, PartialEq, Clone)]
#[safejax(style = "objax", class = "WideResNet")]
#[safejax(expect = "tests/fixtures/real-models/objax_wide_resnet.safetensors")]
pub struct WideResNet(
    pub Conv2D,
    #[safejax(flatten)] pub Vec<WrnBlock>,
    pub BatchNorm2D,
    pub Relu,
    pub MeanReduce,
    pub Linear,
);
