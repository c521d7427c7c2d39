// Structs that load `flax_chunked.safetensors` strictly, its keys read in flax style.

use safejax::SafeParams;
use safejax::half::bf16;
use safejax::ndarray::{Array1, Array2};

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "flax", collection = "params")]
pub struct Model {
    /// i32 [2, 3]
    #[safejax(collection = "batch_stats")]
    pub count: Array2<i32>,
    pub embed: Embed,
    pub norm: Norm,
}

/// `embed`.
#[derive(Debug, SafeParams)]
pub struct Embed {
    /// f32 [32, 8]
    pub embedding: Array2<f32>,
}

/// `norm`.
#[derive(Debug, SafeParams)]
pub struct Norm {
    /// bf16 [8]
    pub bias: Array1<bf16>,
    /// bf16 [8]
    pub scale: Array1<bf16>,
}
