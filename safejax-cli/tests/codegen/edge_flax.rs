// Structs that load `edge_flax.safetensors` strictly, its keys read in flax style.

use safejax::SafeParams;
use safejax::Tensor;
use safejax::half::{bf16, f16};
use safejax::ndarray::{Array1, Array2, ArrayD};

/// The whole file: `Model::load(path)` reads every tensor.
#[derive(Debug, SafeParams)]
#[safejax(style = "flax", collection = "params")]
pub struct Model {
    #[safejax(
        rename = "ARatherLongModuleName_WhoseAttributesAndFieldTakeTwoLines",
        collection = "batch_stats"
    )]
    pub a_rather_long_module_name_whose_attributes_and_field_take_two_lines:
        ARatherLongModuleNameWhoseAttributesAndFieldTakeTwoLines,
    #[safejax(rename = "BatchNorm")]
    pub batch_norm: Vec<BatchNorm>,
    /// u8 [4]
    pub codes: Array1<u8>,
    #[safejax(rename = "Dense")]
    pub dense: Vec<Dense>,
    pub encoder: Encoder,
    #[safejax(rename = "LayerNorm")]
    pub layer_norm: LayerNorm,
    /// bool [2, 3, 1, 1, 1, 1, 1]
    pub mask: ArrayD<bool>,
    /// f8_e4m3 [4]
    pub packed: Tensor,
    /// i64 []
    #[safejax(collection = "batch_stats")]
    pub step: i64,
    #[safejax(rename = "type")]
    pub type_: Type,
}

/// `ARatherLongModuleName_WhoseAttributesAndFieldTakeTwoLines`.
#[derive(Debug, SafeParams)]
pub struct ARatherLongModuleNameWhoseAttributesAndFieldTakeTwoLines {
    /// f32 [2]
    pub mean: Array1<f32>,
}

/// `BatchNorm_0`, `BatchNorm_1`.
#[derive(Debug, SafeParams)]
pub struct BatchNorm {
    /// f32 [4], [8]
    #[safejax(collection = "batch_stats")]
    pub mean: Array1<f32>,
    /// f32 [4], [8]
    pub scale: Array1<f32>,
    /// f32 [4], [8]
    #[safejax(collection = "batch_stats")]
    pub var: Array1<f32>,
}

/// `Dense_0`, `Dense_1`, `Dense_2`.
#[derive(Debug, SafeParams)]
pub struct Dense {
    /// f32 [2], [8]
    pub bias: Option<Array1<f32>>,
    /// f32 [4, 8], [8, 2], [8, 8]
    pub kernel: Array2<f32>,
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
    /// f64 [2, 2]
    pub w: Array2<f64>,
}

/// `LayerNorm`.
#[derive(Debug, SafeParams)]
pub struct LayerNorm {
    /// f16 [8]
    pub scale: Array1<f16>,
}

/// `type`.
#[derive(Debug, SafeParams)]
pub struct Type {
    /// bf16 [3]
    pub w: Array1<bf16>,
}
