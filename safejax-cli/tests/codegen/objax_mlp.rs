// Structs that load `objax_mlp.safetensors` strictly, its keys read in objax style.

use safejax::SafeParams;
use safejax::ndarray::{Array1, Array2};

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "objax", class = "OMLP")]
pub struct Model {
    pub layers: Sequential,
}

/// `(OMLP).layers(Sequential)`.
#[derive(Debug, SafeParams)]
pub struct Sequential(pub Linear, pub (), pub Linear);

/// `(OMLP).layers(Sequential)[0](Linear)`, `(OMLP).layers(Sequential)[2](Linear)`.
#[derive(Debug, SafeParams)]
pub struct Linear {
    /// f32 [4], [16]
    pub b: Array1<f32>,
    /// f32 [8, 16], [16, 4]
    pub w: Array2<f32>,
}
