// Structs that load `objax_wide_resnet.safetensors` strictly, its keys read in objax style.

use safejax::SafeParams;
use safejax::ndarray::{Array1, Array2, Array4};

/// The whole file: `WideResNet::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "objax")]
#[safejax(expect = "../tests/fixtures/real-models/objax_wide_resnet.safetensors")]
pub struct WideResNet(
    pub Conv2D,
    #[safejax(flatten)] pub Vec<WrnBlock>,
    pub BatchNorm2D,
    pub (),
    pub (),
    pub Linear,
);

/// `(WideResNet)[0](Conv2D)`, `(WideResNet)[1](WRNBlock).conv_1(Conv2D)` and 13 more.
#[derive(Debug, SafeParams)]
pub struct Conv2D {
    /// f32 [_, _, _, _]
    pub w: Array4<f32>,
}

/// `(WideResNet)[1](WRNBlock)`, `(WideResNet)[2](WRNBlock)` and 4 more.
#[derive(Debug, SafeParams)]
#[safejax(class = "WRNBlock")]
pub struct WrnBlock {
    pub conv_1: Conv2D,
    pub conv_2: Conv2D,
    pub norm_1: BatchNorm2D,
    pub norm_2: BatchNorm2D,
    pub proj_conv: Option<Conv2D>,
}

/// `(WideResNet)[1](WRNBlock).norm_1(BatchNorm2D)` and 12 more.
#[derive(Debug, SafeParams)]
pub struct BatchNorm2D {
    /// f32 [1, 16, 1, 1], [1, 32, 1, 1], [1, 64, 1, 1]
    pub beta: Array4<f32>,
    /// f32 [1, 16, 1, 1], [1, 32, 1, 1], [1, 64, 1, 1]
    pub gamma: Array4<f32>,
    /// f32 [1, 16, 1, 1], [1, 32, 1, 1], [1, 64, 1, 1]
    #[safejax(collection = "StateVar")]
    pub running_mean: Array4<f32>,
    /// f32 [1, 16, 1, 1], [1, 32, 1, 1], [1, 64, 1, 1]
    #[safejax(collection = "StateVar")]
    pub running_var: Array4<f32>,
}

/// `(WideResNet)[10](Linear)`.
#[derive(Debug, SafeParams)]
pub struct Linear {
    /// f32 [10]
    pub b: Array1<f32>,
    /// f32 [64, 10]
    pub w: Array2<f32>,
}
