// Structs that load `bert_tiny.safetensors` strictly, its keys read in flax style.

use safejax::SafeParams;
use safejax::ndarray::{Array1, Array2};

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "flax")]
pub struct Model {
    pub embeddings: Embeddings,
    pub encoder: Encoder,
    pub pooler: Intermediate,
}

/// `embeddings`.
#[derive(Debug, SafeParams)]
pub struct Embeddings {
    #[safejax(rename = "LayerNorm")]
    pub layer_norm: LayerNorm,
    pub position_embeddings: Embeddings2,
    pub token_type_embeddings: Embeddings2,
    pub word_embeddings: Embeddings2,
}

/// `embeddings.LayerNorm`, `encoder.layer.0.attention.output.LayerNorm` and 3 more.
#[derive(Debug, SafeParams)]
pub struct LayerNorm {
    /// f32 [8]
    pub bias: Array1<f32>,
    /// f32 [8]
    pub scale: Array1<f32>,
}

/// `embeddings.position_embeddings`, `embeddings.token_type_embeddings` and 1 more.
#[derive(Debug, SafeParams)]
pub struct Embeddings2 {
    /// f32 [2, 8], [16, 8], [32, 8]
    pub embedding: Array2<f32>,
}

/// `encoder`.
#[derive(Debug, SafeParams)]
pub struct Encoder {
    #[safejax(numbering = "nested")]
    pub layer: Vec<Layer>,
}

/// `encoder.layer.0`, `encoder.layer.1`.
#[derive(Debug, SafeParams)]
pub struct Layer {
    pub attention: Attention,
    pub intermediate: Intermediate,
    pub output: Output,
}

/// `encoder.layer.0.attention`, `encoder.layer.1.attention`.
#[derive(Debug, SafeParams)]
pub struct Attention {
    pub output: Output,
    #[safejax(rename = "self")]
    pub self_: SelfModule,
}

/// `encoder.layer.0.attention.output`, `encoder.layer.1.attention.output` and 2 more.
#[derive(Debug, SafeParams)]
pub struct Output {
    pub dense: Dense,
    #[safejax(rename = "LayerNorm")]
    pub layer_norm: LayerNorm,
}

/// `encoder.layer.0.attention.output.dense`, `encoder.layer.1.attention.output.dense` and 11 more.
#[derive(Debug, SafeParams)]
pub struct Dense {
    /// f32 [8], [16]
    pub bias: Array1<f32>,
    /// f32 [8, 8], [8, 16], [16, 8]
    pub kernel: Array2<f32>,
}

/// `encoder.layer.0.attention.self`, `encoder.layer.1.attention.self`.
#[derive(Debug, SafeParams)]
pub struct SelfModule {
    pub key: Dense,
    pub query: Dense,
    pub value: Dense,
}

/// `encoder.layer.0.intermediate`, `encoder.layer.1.intermediate`, `pooler`.
#[derive(Debug, SafeParams)]
pub struct Intermediate {
    pub dense: Dense,
}
