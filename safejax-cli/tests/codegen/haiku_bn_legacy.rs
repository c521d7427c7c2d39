// Structs that load `haiku_bn.safetensors` strictly, its keys read in haiku style.

use safejax::SafeParams;
use safejax::ndarray::{Array1, Array2};

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "haiku", collection = "params")]
pub struct Model {
    pub batch_norm: BatchNorm,
    #[safejax(numbering = "haiku")]
    pub linear: Vec<Linear>,
}

/// `batch_norm`.
#[derive(Debug, SafeParams)]
pub struct BatchNorm {
    #[safejax(collection = "state")]
    pub mean_ema: Ema,
    /// f32 [1, 16]
    pub offset: Array2<f32>,
    /// f32 [1, 16]
    pub scale: Array2<f32>,
    #[safejax(collection = "state")]
    pub var_ema: Ema,
}

/// `batch_norm/~/mean_ema`, `batch_norm/~/var_ema`.
#[derive(Debug, SafeParams)]
pub struct Ema {
    /// f32 [1, 16]
    pub average: Array2<f32>,
    /// i32 []
    pub counter: i32,
    /// f32 [1, 16]
    pub hidden: Array2<f32>,
}

/// `linear`, `linear_1`.
#[derive(Debug, SafeParams)]
pub struct Linear {
    /// f32 [4], [16]
    pub b: Array1<f32>,
    /// f32 [8, 16], [16, 4]
    pub w: Array2<f32>,
}
