// Structs that load `edge_objax.safetensors` strictly, its keys read in objax style.

use safejax::SafeParams;
use safejax::ndarray::{Array1, Array2, Array4};
use std::collections::BTreeMap;

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "objax", class = "Net")]
pub struct Model {
    pub blocks: Vec<Block>,
    pub body: Sequential,
    pub heads: BTreeMap<String, Head>,
    pub norm: BatchNorm2D,
    #[safejax(class = "Sequential")]
    pub seq: Vec<Linear2>,
}

/// `(Net).blocks(ModuleList)[0](Block)`, `(Net).blocks(ModuleList)[1](Block)` and 2 more.
#[derive(Debug, SafeParams)]
pub struct Block {
    pub conv: Conv2D,
}

/// `(Net).blocks(ModuleList)[0](Block).conv(Conv2D)` and 4 more.
#[derive(Debug, SafeParams)]
pub struct Conv2D {
    /// f32 [1, 1, 2, 2], [3, 3, 1, 2]
    pub w: Array4<f32>,
}

/// `(Net).body(Sequential)`.
#[derive(Debug, SafeParams)]
pub struct Sequential(
    pub Conv2D,
    #[safejax(flatten)] pub Vec<Block>,
    pub (),
    pub Linear,
);

/// `(Net).body(Sequential)[4](Linear)`.
#[derive(Debug, SafeParams)]
pub struct Linear {
    /// f32 [2]
    pub b: Array1<f32>,
    /// f32 [2, 2]
    pub w: Array2<f32>,
}

/// `(Net).heads(ModuleDict)[box](Head)`, `(Net).heads(ModuleDict)[cls](Head)`.
#[derive(Debug, SafeParams)]
pub struct Head {
    /// f32 [2, 3], [2, 4]
    pub w: Array2<f32>,
}

/// `(Net).norm(BatchNorm2D)`.
#[derive(Debug, SafeParams)]
pub struct BatchNorm2D {
    /// f32 [1, 2, 1, 1]
    pub gamma: Array4<f32>,
    /// f32 [1, 2, 1, 1]
    #[safejax(collection = "StateVar")]
    pub running_mean: Array4<f32>,
}

/// `(Net).seq(Sequential)[0](Linear)`, `(Net).seq(Sequential)[1](Linear)` and 1 more.
#[derive(Debug, SafeParams)]
#[safejax(class = "Linear")]
pub struct Linear2 {
    /// f32 [2]
    pub b: Option<Array1<f32>>,
    /// f32 [2, 2]
    pub w: Array2<f32>,
}
