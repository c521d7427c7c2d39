// Structs that load `flax_mlp.safetensors` strictly, its keys read in flax style.

use safejax::SafeParams;
use safejax::ndarray::{Array1, Array2};

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "flax", collection = "params")]
pub struct Model {
    #[safejax(rename = "Dense")]
    pub dense: Vec<Dense>,
}

/// `Dense_0`, `Dense_1`.
#[derive(Debug, SafeParams)]
pub struct Dense {
    /// f32 [4], [16]
    pub bias: Array1<f32>,
    /// f32 [8, 16], [16, 4]
    pub kernel: Array2<f32>,
}
