//! Haiku's example transformer language model (dm-haiku `examples/transformer`), run with
//! ndarray: its parameters as plain structs, loaded from the file Python safejax wrote, and the
//! forward pass of `LanguageModel`, `Transformer` and `hk.MultiHeadAttention`.
//!
//! Keys: the model's own parameter is `language_model.positional_embeddings`; its submodules,
//! made while it runs, are joined with `/` (`language_model/embed.embeddings`,
//! `language_model/linear.w`). The transformer's submodules are numbered in creation order
//! within the `transformer` scope, per class, across both layers:
//!
//! | layer | norm, attention                          | norm, MLP                                  |
//! |-------|------------------------------------------|--------------------------------------------|
//! | 0     | `layer_norm`, `multi_head_attention`     | `layer_norm_1`, `linear` -> `linear_1`     |
//! | 1     | `layer_norm_2`, `multi_head_attention_1` | `layer_norm_3`, `linear_2` -> `linear_3`   |
//!
//! and the final norm is `layer_norm_4`. Inside each attention block, `query`, `key`, `value`
//! and the output projection `linear`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ndarray::{Array, Array1, Array2, Array3, ArrayView1, Axis, s};
use safejax::{Error, SafeParams};

/// The fixture's name, in `tests/fixtures/real-models/`.
pub const NAME: &str = "haiku_transformer_lm";

/// The largest error accepted against the logits recorded in JAX: more room than the MLPs'
/// 1e-5, for a longer chain of f32 reductions (attention, softmax, layer norms) whose order of
/// operations differs from XLA's.
pub const TOLERANCE: f32 = 1e-4;

const NUM_HEADS: usize = 4;
const KEY_SIZE: usize = 8;
const NUM_LAYERS: usize = 2;
const PAD_TOKEN: i32 = 0;
/// `hk.LayerNorm`'s default.
const LAYER_NORM_EPS: f32 = 1e-5;
/// What `hk.MultiHeadAttention` puts in place of a masked logit.
const MASKED_LOGIT: f32 = -1e30;

/// `hk.Linear`: `x @ w + b`.
#[derive(SafeParams)]
pub struct Linear {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

/// `hk.LayerNorm(axis=-1, create_scale=True, create_offset=True)`.
#[derive(SafeParams)]
pub struct LayerNorm {
    pub scale: Array1<f32>,
    pub offset: Array1<f32>,
}

/// `hk.Embed`.
#[derive(SafeParams)]
pub struct Embed {
    pub embeddings: Array2<f32>,
}

/// `hk.MultiHeadAttention`: its projections are made while it runs, so joined with `/`.
#[derive(SafeParams)]
#[safejax(sep = "/")]
pub struct MultiHeadAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub linear: Linear,
}

/// The example's `LanguageModel`: embeddings in, logits out, around the transformer.
#[derive(SafeParams)]
#[safejax(sep = "/")]
pub struct LanguageModel {
    pub positional_embeddings: Array2<f32>,
    pub embed: Embed,
    pub linear: Linear,
}

/// The example's `Transformer`: Haiku numbers each class's modules in creation order, so
/// layer `i` uses `multi_head_attention[i]`, `layer_norm[2 * i]` and `[2 * i + 1]`,
/// `linear[2 * i]` and `[2 * i + 1]`; the last `layer_norm` is the final one.
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

/// Every parameter of the model: the two top-level Haiku modules.
#[derive(SafeParams)]
#[safejax(style = "haiku")]
// Checked against the file at compile time: a field that does not match it fails the build.
#[safejax(expect = "tests/fixtures/real-models/haiku_transformer_lm.safetensors")]
pub struct Params {
    pub language_model: LanguageModel,
    pub transformer: Transformer,
}

/// The path of the checkpoint.
pub fn fixture() -> PathBuf {
    real_models().join(format!("{NAME}.safetensors"))
}

fn real_models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-models")
}

/// Loads the checkpoint strictly: every tensor read, none missing, all problems in one report.
pub fn load_params(path: impl AsRef<Path>) -> Result<Params, Error> {
    Params::load(path)
}

/// The token ids (batch, time) and the logits (batch, time, vocabulary) recorded in JAX.
pub fn recorded_io() -> Result<(Array2<i32>, Array3<f32>), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(real_models().join("manifest.json"))?;
    let manifest: serde_json::Value = serde_json::from_str(&text)?;
    let entry = &manifest["fixtures"][NAME];
    let tokens = numbers(&entry["input"])?
        .into_iter()
        .map(|x| x as i32)
        .collect();
    let logits = numbers(&entry["output"])?
        .into_iter()
        .map(|x| x as f32)
        .collect();
    Ok((
        Array::from_shape_vec(shape::<2>(&entry["input_shape"])?, tokens)?,
        Array::from_shape_vec(shape::<3>(&entry["output_shape"])?, logits)?,
    ))
}

fn numbers(list: &serde_json::Value) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let list = list.as_array().ok_or("expected a list of numbers")?;
    list.iter()
        .map(|x| x.as_f64().ok_or_else(|| "expected a number".into()))
        .collect()
}

fn shape<const N: usize>(
    list: &serde_json::Value,
) -> Result<[usize; N], Box<dyn std::error::Error>> {
    let dims: Vec<usize> = numbers(list)?.into_iter().map(|d| d as usize).collect();
    dims.try_into()
        .map_err(|dims| format!("expected {N} dimensions, found {dims:?}").into())
}

/// The largest absolute difference, or infinity when the shapes differ.
pub fn max_abs_err(got: &Array3<f32>, want: &Array3<f32>) -> f32 {
    if got.shape() != want.shape() {
        return f32::INFINITY;
    }
    (got - want).iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

impl Params {
    /// `LanguageModel.__call__` on token ids (batch, time): logits (batch, time, vocabulary).
    pub fn forward(&self, tokens: &Array2<i32>) -> Array3<f32> {
        let (batch, time) = tokens.dim();
        let vocab = self.language_model.linear.b.len();
        let mut logits = Array3::zeros((batch, time, vocab));
        for (row, mut out) in tokens.outer_iter().zip(logits.outer_iter_mut()) {
            out.assign(&self.sequence(row));
        }
        logits
    }

    /// One sequence of the batch: attention never mixes sequences.
    fn sequence(&self, tokens: ArrayView1<'_, i32>) -> Array2<f32> {
        let model = &self.language_model;
        let time = tokens.len();
        let mut embeddings = model.positional_embeddings.slice(s![..time, ..]).to_owned();
        for (t, &token) in tokens.iter().enumerate() {
            // An id outside the vocabulary panics here, where JAX would clamp it.
            let token = usize::try_from(token).unwrap_or(usize::MAX);
            embeddings
                .row_mut(t)
                .scaled_add(1.0, &model.embed.embeddings.row(token));
        }
        let input_mask = tokens.mapv(|token| token != PAD_TOKEN);
        model
            .linear
            .forward(&self.transformer.forward(embeddings, &input_mask))
    }
}

impl Transformer {
    /// Pre-norm residual layers, then a final norm.
    fn forward(&self, mut h: Array2<f32>, input_mask: &Array1<bool>) -> Array2<f32> {
        let time = h.nrows();
        // `mask[:, None, None, :] * np.tril(ones((1, 1, T, T)))`: a query at `t` sees the
        // non-padding keys up to `t`.
        let mask = Array2::from_shape_fn((time, time), |(t, k)| k <= t && input_mask[k]);
        for (i, attention) in self.multi_head_attention.iter().enumerate() {
            let h_norm = self.layer_norm[2 * i].forward(&h);
            h = h + attention.forward(&h_norm, &mask);
            let h_norm = self.layer_norm[2 * i + 1].forward(&h);
            let hidden = self.linear[2 * i].forward(&h_norm).mapv_into(gelu);
            h = h + self.linear[2 * i + 1].forward(&hidden);
        }
        self.layer_norm[2 * self.multi_head_attention.len()].forward(&h)
    }
}

impl MultiHeadAttention {
    /// Self-attention of a sequence (time, model) under a (query time, key time) mask.
    fn forward(&self, x: &Array2<f32>, mask: &Array2<bool>) -> Array2<f32> {
        let query = self.query.forward(x);
        let key = self.key.forward(x);
        let value = self.value.forward(x);
        let mut attended = Array2::zeros(value.raw_dim());
        let scale = 1.0 / (KEY_SIZE as f32).sqrt();
        for head in 0..NUM_HEADS {
            // `reshape(T, H, K)`: head `h` owns columns `h * K .. (h + 1) * K`.
            let columns = s![.., head * KEY_SIZE..(head + 1) * KEY_SIZE];
            let mut logits = query.slice(columns).dot(&key.slice(columns).t()) * scale;
            ndarray::Zip::from(&mut logits)
                .and(mask)
                .for_each(|logit, &visible| {
                    if !visible {
                        *logit = MASKED_LOGIT;
                    }
                });
            softmax_rows(&mut logits);
            attended
                .slice_mut(columns)
                .assign(&logits.dot(&value.slice(columns)));
        }
        self.linear.forward(&attended)
    }
}

impl Linear {
    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        x.dot(&self.w) + &self.b
    }
}

impl LayerNorm {
    /// Normalizes each row over the last axis with its biased variance.
    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        let mut out = x.clone();
        for mut row in out.rows_mut() {
            let n = row.len() as f32;
            let mean = row.sum() / n;
            let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv_std = 1.0 / (variance + LAYER_NORM_EPS).sqrt();
            ndarray::Zip::from(&mut row)
                .and(&self.scale)
                .and(&self.offset)
                .for_each(|v, &scale, &offset| *v = (*v - mean) * (scale * inv_std) + offset);
        }
        out
    }
}

/// `jax.nn.softmax` over the last axis, each row shifted by its maximum.
fn softmax_rows(logits: &mut Array2<f32>) {
    for mut row in logits.axis_iter_mut(Axis(0)) {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum);
    }
}

/// `jax.nn.gelu` with its default `approximate=True`: the tanh form.
fn gelu(x: f32) -> f32 {
    let sqrt_2_over_pi = (2.0 / std::f32::consts::PI).sqrt();
    0.5 * x * (1.0 + (sqrt_2_over_pi * (x + 0.044715 * x * x * x)).tanh())
}
