// Structs that load `edge_haiku.safetensors` strictly, its keys read in haiku style.

use safejax::SafeParams;
use safejax::ndarray::{Array1, Array2, Array4};

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "haiku")]
pub struct Model {
    #[safejax(numbering = "haiku")]
    pub block: Vec<Block>,
    #[safejax(numbering = "haiku")]
    pub conv: Vec<Conv>,
    pub encoder: Encoder,
    #[safejax(numbering = "haiku")]
    pub linear: Vec<Linear>,
    pub mlp: Mlp,
}

/// `block`, `block_1`.
#[derive(Debug, SafeParams)]
pub struct Block {
    pub norm: Option<Norm>,
    pub proj: Proj,
}

/// `block/~/norm`, `encoder/block/~/norm`.
#[derive(Debug, SafeParams)]
pub struct Norm {
    /// f32 [2]
    pub scale: Array1<f32>,
}

/// `block/~/proj`, `block_1/~/proj`, `encoder/block/proj`, `encoder/~/final` and 2 more.
#[derive(Debug, SafeParams)]
pub struct Proj {
    /// f32 [2, 2]
    pub w: Array2<f32>,
}

/// `conv`, `conv_1`.
#[derive(Debug, SafeParams)]
pub struct Conv {
    /// f32 [2]
    pub b: Option<Array1<f32>>,
    /// f32 [3, 3, 1, 2], [3, 3, 2, 2]
    pub w: Array4<f32>,
}

/// `encoder`.
#[derive(Debug, SafeParams)]
pub struct Encoder {
    #[safejax(sep = "/")]
    pub block: Block2,
    #[safejax(rename = "final")]
    pub final_: Proj,
}

/// `encoder/block`.
#[derive(Debug, SafeParams)]
pub struct Block2 {
    pub norm: Norm,
    #[safejax(sep = "/")]
    pub proj: Proj,
}

/// `linear`, `linear_1`, `linear_2`.
#[derive(Debug, SafeParams)]
pub struct Linear {
    /// f32 [1], [3]
    pub b: Array1<f32>,
    /// f32 [2, 3], [3, 1], [3, 3]
    pub w: Array2<f32>,
}

/// `mlp`.
#[derive(Debug, SafeParams)]
pub struct Mlp {
    pub linear: Vec<Proj>,
}
