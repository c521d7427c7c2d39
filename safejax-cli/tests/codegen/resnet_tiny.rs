// Structs that load `resnet_tiny.safetensors` strictly, its keys read in flax style.

use safejax::SafeParams;
use safejax::ndarray::{Array1, Array4};

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "flax", collection = "params")]
pub struct Model {
    pub embedder: Embedder,
    pub encoder: Encoder,
}

/// `embedder`.
#[derive(Debug, SafeParams)]
pub struct Embedder {
    pub embedder: Embedder2,
}

/// `embedder.embedder`, `encoder.stages.0.layers.0.layer.layer_0` and 4 more.
#[derive(Debug, SafeParams)]
pub struct Embedder2 {
    pub convolution: Convolution,
    pub normalization: Normalization,
}

/// `embedder.embedder.convolution` and 5 more.
#[derive(Debug, SafeParams)]
pub struct Convolution {
    /// f32 [_, _, _, _]
    pub kernel: Array4<f32>,
}

/// `embedder.embedder.normalization` and 5 more.
#[derive(Debug, SafeParams)]
pub struct Normalization {
    /// f32 [4], [8]
    pub bias: Array1<f32>,
    /// f32 [4], [8]
    #[safejax(collection = "batch_stats")]
    pub mean: Array1<f32>,
    /// f32 [4], [8]
    pub scale: Array1<f32>,
    /// f32 [4], [8]
    #[safejax(collection = "batch_stats")]
    pub var: Array1<f32>,
}

/// `encoder`.
#[derive(Debug, SafeParams)]
pub struct Encoder {
    #[safejax(numbering = "nested")]
    pub stages: Vec<Stage>,
}

/// `encoder.stages.0`, `encoder.stages.1`.
#[derive(Debug, SafeParams)]
pub struct Stage {
    #[safejax(numbering = "nested")]
    pub layers: Vec<Layer>,
}

/// `encoder.stages.0.layers.0`, `encoder.stages.1.layers.0`.
#[derive(Debug, SafeParams)]
pub struct Layer {
    pub layer: Layer2,
    pub shortcut: Option<Embedder2>,
}

/// `encoder.stages.0.layers.0.layer`, `encoder.stages.1.layers.0.layer`.
#[derive(Debug, SafeParams)]
pub struct Layer2 {
    pub layer: Vec<Embedder2>,
}
