// Structs that load `haiku_mlp.safetensors` strictly, its keys read in haiku style.

use safejax::SafeParams;
use safejax::ndarray::{Array1, Array2};

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "haiku")]
pub struct Model {
    pub mlp: Mlp,
}

/// `mlp`.
#[derive(Debug, SafeParams)]
pub struct Mlp {
    pub linear: Vec<Linear>,
}

/// `mlp/~/linear_0`, `mlp/~/linear_1`.
#[derive(Debug, SafeParams)]
pub struct Linear {
    /// f32 [4], [16]
    pub b: Array1<f32>,
    /// f32 [8, 16], [16, 4]
    pub w: Array2<f32>,
}
