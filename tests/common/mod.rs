//! Shared by the integration tests: the Python-made fixtures and their manifest.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The fixtures directory.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The path of one fixture file.
pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(format!("{name}.safetensors"))
}

/// The bytes of one fixture file.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("cannot read fixture {name}: {e}"))
}

/// The manifest entry of one fixture.
pub fn manifest(name: &str) -> Value {
    manifest_entry(&fixtures(), name)
}

/// The checkpoints of real models (Haiku's example transformer, Objax's WideResNet), with a
/// manifest of the same format.
pub fn real_models() -> PathBuf {
    fixtures().join("real-models")
}

/// The path of one real-model checkpoint.
pub fn real_model(name: &str) -> PathBuf {
    real_models().join(format!("{name}.safetensors"))
}

/// The manifest entry of one real-model checkpoint.
pub fn real_model_manifest(name: &str) -> Value {
    manifest_entry(&real_models(), name)
}

fn manifest_entry(dir: &std::path::Path, name: &str) -> Value {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let all: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad manifest: {e}"));
    all["fixtures"][name].clone()
}

/// The names of every fixture in the manifest.
pub const FIXTURES: [&str; 4] = ["flax_mlp", "haiku_bn", "haiku_mlp", "objax_mlp"];

/// Hex sha256 of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The manifest's dtype name for a safetensors dtype.
pub fn numpy_dtype(dtype: safejax::Dtype) -> &'static str {
    match dtype {
        safejax::Dtype::F32 => "float32",
        safejax::Dtype::F64 => "float64",
        safejax::Dtype::F16 => "float16",
        safejax::Dtype::BF16 => "bfloat16",
        safejax::Dtype::I32 => "int32",
        safejax::Dtype::I64 => "int64",
        safejax::Dtype::U8 => "uint8",
        safejax::Dtype::BOOL => "bool",
        _ => "other",
    }
}

/// Checks one tensor against its manifest entry: dtype, shape, sha256 of the raw bytes.
pub fn assert_matches_manifest(entry: &Value, key: &str, tensor: &safejax::Tensor) {
    let want = &entry["tensors"][key];
    assert!(!want.is_null(), "key `{key}` is not in the manifest");
    assert_eq!(
        want["dtype"],
        numpy_dtype(tensor.dtype()),
        "dtype of `{key}`"
    );
    let shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap_or_else(|| panic!("shape of `{key}`"))
        .iter()
        .map(|d| d.as_u64().unwrap_or(u64::MAX) as usize)
        .collect();
    assert_eq!(tensor.shape(), shape.as_slice(), "shape of `{key}`");
    assert_eq!(want["sha256"], sha256(tensor.data()), "sha256 of `{key}`");
}

/// The manifest's recorded model input, as rows.
pub fn matrix(entry: &Value, field: &str) -> Vec<Vec<f32>> {
    entry[field]
        .as_array()
        .unwrap_or_else(|| panic!("no `{field}`"))
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap_or_else(|| panic!("bad row"))
                .iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
                .collect()
        })
        .collect()
}

/// `flax.linen.Dense`.
#[derive(safejax::SafeParams, Debug, PartialEq, Clone)]
pub struct Dense {
    pub kernel: ndarray::Array2<f32>,
    pub bias: ndarray::Array1<f32>,
}

/// The model of the `flax_mlp` fixture: `Dense(16)` -> relu -> `Dense(4)` in `@nn.compact`,
/// the whole variables dict.
#[derive(safejax::SafeParams, Debug, PartialEq, Clone)]
#[safejax(style = "flax", collection = "params", class = "Mlp")]
pub struct FlaxMlp {
    #[safejax(rename = "Dense_0")]
    pub hidden: Dense,
    #[safejax(rename = "Dense_1")]
    pub out: Dense,
}

/// Map entries `a` -> `b_c` and `a_b` -> `c`: both render `a_b_c` in Flax.
pub fn colliding_maps()
-> std::collections::BTreeMap<String, std::collections::BTreeMap<String, ndarray::Array1<f32>>> {
    let inner =
        |name: &str| std::collections::BTreeMap::from([(name.to_owned(), ndarray::array![1.0f32])]);
    std::collections::BTreeMap::from([
        ("a".to_owned(), inner("b_c")),
        ("a_b".to_owned(), inner("c")),
    ])
}

/// A tree holding one tensor named `name` under `Dense_0`.
pub fn tree_with(name: &str) -> safejax::Tree {
    let mut inner = safejax::Tree::new();
    inner.insert(name, safejax::Tensor::from_array(&ndarray::array![1.0f32]));
    let mut root = safejax::Tree::new();
    root.insert("Dense_0", inner);
    root
}
