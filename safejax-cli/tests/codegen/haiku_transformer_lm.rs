// Structs that load `haiku_transformer_lm.safetensors` strictly, its keys read in haiku style.

use safejax::SafeParams;
use safejax::ndarray::{Array1, Array2};

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "haiku")]
pub struct Model {
    pub language_model: LanguageModel,
    pub transformer: Transformer,
}

/// `language_model`.
#[derive(Debug, SafeParams)]
#[safejax(sep = "/")]
pub struct LanguageModel {
    pub embed: Embed,
    pub linear: Linear,
    /// f32 [10, 32]
    pub positional_embeddings: Array2<f32>,
}

/// `language_model/embed`.
#[derive(Debug, SafeParams)]
pub struct Embed {
    /// f32 [50, 32]
    pub embeddings: Array2<f32>,
}

/// `language_model/linear`, `transformer/linear`, `transformer/linear_1` and 10 more.
#[derive(Debug, SafeParams)]
pub struct Linear {
    /// f32 [32], [50], [128]
    pub b: Array1<f32>,
    /// f32 [_, _]
    pub w: Array2<f32>,
}

/// `transformer`.
#[derive(Debug, SafeParams)]
#[safejax(sep = "/")]
pub struct Transformer {
    #[safejax(numbering = "haiku")]
    pub layer_norm: Vec<LayerNorm>,
    #[safejax(numbering = "haiku")]
    pub linear: Vec<Linear>,
    #[safejax(numbering = "haiku")]
    pub multi_head_attention: Vec<MultiHeadAttention>,
}

/// `transformer/layer_norm`, `transformer/layer_norm_1`, `transformer/layer_norm_2` and 2 more.
#[derive(Debug, SafeParams)]
pub struct LayerNorm {
    /// f32 [32]
    pub offset: Array1<f32>,
    /// f32 [32]
    pub scale: Array1<f32>,
}

/// `transformer/multi_head_attention`, `transformer/multi_head_attention_1`.
#[derive(Debug, SafeParams)]
#[safejax(sep = "/")]
pub struct MultiHeadAttention {
    pub key: Linear,
    pub linear: Linear,
    pub query: Linear,
    pub value: Linear,
}
