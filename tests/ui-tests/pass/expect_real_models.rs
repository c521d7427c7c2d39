//! Real models pinned: Haiku's transformer language model (its repeated modules in `Vec`s with
//! Haiku numbering), and Objax's WideResNet through a header-only file (its blocks in a flattened
//! `Vec`, some with a projection and some without).
use ndarray::{Array1, Array2, Array4};
use safejax::{Loader, SafeParams};

mod transformer {
    use super::*;

    #[derive(SafeParams)]
    pub struct Linear {
        pub w: Array2<f32>,
        pub b: Array1<f32>,
    }

    #[derive(SafeParams)]
    pub struct LayerNorm {
        pub scale: Array1<f32>,
        pub offset: Array1<f32>,
    }

    #[derive(SafeParams)]
    pub struct Embed {
        pub embeddings: Array2<f32>,
    }

    #[derive(SafeParams)]
    #[safejax(sep = "/")]
    pub struct MultiHeadAttention {
        pub query: Linear,
        pub key: Linear,
        pub value: Linear,
        pub linear: Linear,
    }

    #[derive(SafeParams)]
    #[safejax(sep = "/")]
    pub struct LanguageModel {
        pub positional_embeddings: Array2<f32>,
        pub embed: Embed,
        pub linear: Linear,
    }

    #[derive(SafeParams)]
    #[safejax(sep = "/")]
    pub struct Transformer {
        #[safejax(numbering = "haiku")]
        pub multi_head_attention: Vec<MultiHeadAttention>,
        #[safejax(numbering = "haiku")]
        pub layer_norm: Vec<LayerNorm>,
        #[safejax(numbering = "haiku")]
        pub linear: Vec<Linear>,
    }

    #[derive(SafeParams)]
    #[safejax(style = "haiku", expect = "fixtures/haiku_transformer_lm.safetensors")]
    pub struct Params {
        pub language_model: LanguageModel,
        pub transformer: Transformer,
    }
}

mod wide_resnet {
    use super::*;

    #[derive(SafeParams)]
    #[safejax(class = "Conv2D")]
    pub struct Conv2D {
        pub w: Array4<f32>,
    }

    #[derive(SafeParams)]
    #[safejax(class = "BatchNorm2D")]
    pub struct BatchNorm2D {
        pub beta: Array4<f32>,
        pub gamma: Array4<f32>,
        #[safejax(collection = "StateVar")]
        pub running_mean: Array4<f32>,
        #[safejax(collection = "StateVar")]
        pub running_var: Array4<f32>,
    }

    #[derive(SafeParams)]
    #[safejax(class = "WRNBlock")]
    pub struct WrnBlock {
        pub conv_1: Conv2D,
        pub conv_2: Conv2D,
        pub norm_1: BatchNorm2D,
        pub norm_2: BatchNorm2D,
        pub proj_conv: Option<Conv2D>,
    }

    #[derive(SafeParams)]
    pub struct Relu;

    #[derive(SafeParams)]
    pub struct MeanReduce;

    #[derive(SafeParams)]
    #[safejax(class = "Linear")]
    pub struct Linear {
        pub w: Array2<f32>,
        pub b: Array1<f32>,
    }

    #[derive(SafeParams)]
    #[safejax(
        style = "objax",
        class = "WideResNet",
        expect = "fixtures/objax_wide_resnet.header.safetensors"
    )]
    pub struct WideResNet(
        pub Conv2D,
        #[safejax(flatten)] pub Vec<WrnBlock>,
        pub BatchNorm2D,
        pub Relu,
        pub MeanReduce,
        pub Linear,
    );
}

fn main() {
    let fixture = |name: &str| format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let lm = transformer::Params::load(fixture("haiku_transformer_lm.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lm.transformer.layer_norm.len(), 5);
    // A header-only file is checked, not loaded.
    Loader::new()
        .check::<wide_resnet::WideResNet>(fixture("objax_wide_resnet.header.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
}
