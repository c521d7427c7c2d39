//! Hugging Face `transformers`' Flax checkpoints, on files its `save_pretrained(...,
//! safe_serialization=True)` wrote (`tests/fixtures/hf/make.py`): a BERT without collections in
//! its keys, a ResNet with `params.` and `batch_stats.`.

use std::path::PathBuf;

use ndarray::{Array1, Array2, Array4, ArrayD};
use safejax::hf::{self, FlaxPreset, Layout};
use safejax::{Error, Loader, Metadata, SafeParams, Saver, Tensor, Tree};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/hf/{name}.safetensors"))
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("the fixture is readable")
}

/// The manifest's entry of one tensor: dtype, shape, sum and first values.
fn expected(name: &str, key: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/manifest.json");
    let text = std::fs::read_to_string(path).expect("the manifest is readable");
    let manifest: Value = serde_json::from_str(&text).expect("the manifest is JSON");
    let entry = manifest["files"][format!("{name}.safetensors")]["tensors"][key].clone();
    assert!(entry.is_object(), "{key} is not in the manifest of {name}");
    entry
}

fn manifest_keys(name: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/manifest.json");
    let text = std::fs::read_to_string(path).expect("the manifest is readable");
    let manifest: Value = serde_json::from_str(&text).expect("the manifest is JSON");
    let tensors = manifest["files"][format!("{name}.safetensors")]["tensors"]
        .as_object()
        .expect("the file's tensors");
    tensors.keys().cloned().collect()
}

/// Asserts that `values` have the manifest's shape, sum and first values for `key`.
fn assert_matches<'a>(
    name: &str,
    key: &str,
    shape: &[usize],
    values: impl Iterator<Item = &'a f32>,
) {
    let entry = expected(name, key);
    let want_shape: Vec<usize> = serde_json::from_value(entry["shape"].clone()).expect("a shape");
    assert_eq!(shape, want_shape, "shape of {key}");
    let values: Vec<f64> = values.map(|&v| f64::from(v)).collect();
    let sum: f64 = values.iter().sum();
    let want_sum = entry["sum"].as_f64().expect("a sum");
    assert!(
        (sum - want_sum).abs() <= 1e-9 * want_sum.abs().max(1.0),
        "sum of {key}: {sum} against {want_sum}"
    );
    // Compared as f32: JSON's decimal of the f64 need not read back as the same f64.
    let first: Vec<f32> = serde_json::from_value::<Vec<f64>>(entry["first"].clone())
        .expect("first values")
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let got: Vec<f32> = values[..first.len()].iter().map(|&v| v as f32).collect();
    assert_eq!(got, first, "first values of {key}");
}

// BERT as `FlaxBertModel` names it: `embeddings.word_embeddings.embedding`,
// `encoder.layer.0.attention.self.query.kernel`, `pooler.dense.kernel`.

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct LayerNorm {
    scale: Array1<f32>,
    bias: Array1<f32>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Embed {
    embedding: Array2<f32>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Embeddings {
    word_embeddings: Embed,
    position_embeddings: Embed,
    token_type_embeddings: Embed,
    #[safejax(rename = "LayerNorm")]
    layer_norm: LayerNorm,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct SelfAttention {
    query: Dense,
    key: Dense,
    value: Dense,
}

/// A dense layer, then the residual's LayerNorm (`attention.output`, `output`).
#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Output {
    dense: Dense,
    #[safejax(rename = "LayerNorm")]
    layer_norm: LayerNorm,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Attention {
    #[safejax(rename = "self")]
    self_attention: SelfAttention,
    output: Output,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Intermediate {
    dense: Dense,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct BertLayer {
    attention: Attention,
    intermediate: Intermediate,
    output: Output,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Encoder {
    #[safejax(numbering = "nested")]
    layer: Vec<BertLayer>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Pooler {
    dense: Dense,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(collection = "params")]
struct Bert {
    embeddings: Embeddings,
    encoder: Encoder,
    pooler: Pooler,
}

/// The same model without its pooler, as a model that drops it would be declared.
#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(collection = "params")]
struct BertWithoutPooler {
    embeddings: Embeddings,
    encoder: Encoder,
}

#[test]
fn bert_loads_strictly_into_structs_with_the_files_values() -> Result<(), Error> {
    let loaded = hf::load::<Bert>(fixture("bert_tiny"))?;
    assert_eq!(
        loaded.metadata,
        Metadata::from([("format".to_owned(), "flax".to_owned())])
    );
    assert!(loaded.ignored.is_empty());
    let bert = loaded.value;
    assert_eq!(bert.encoder.layer.len(), 2);

    let word = &bert.embeddings.word_embeddings.embedding;
    assert_matches(
        "bert_tiny",
        "embeddings.word_embeddings.embedding",
        word.shape(),
        word.iter(),
    );
    let norm = &bert.embeddings.layer_norm.scale;
    assert_matches(
        "bert_tiny",
        "embeddings.LayerNorm.scale",
        norm.shape(),
        norm.iter(),
    );
    for (i, layer) in bert.encoder.layer.iter().enumerate() {
        let query = &layer.attention.self_attention.query.kernel;
        let key = format!("encoder.layer.{i}.attention.self.query.kernel");
        assert_matches("bert_tiny", &key, query.shape(), query.iter());
        let out = &layer.output.dense.kernel;
        let key = format!("encoder.layer.{i}.output.dense.kernel");
        assert_matches("bert_tiny", &key, out.shape(), out.iter());
    }
    let pooler = &bert.pooler.dense.kernel;
    assert_matches(
        "bert_tiny",
        "pooler.dense.kernel",
        pooler.shape(),
        pooler.iter(),
    );

    // The same through the path-free functions, and from bytes.
    assert_eq!(
        hf::from_bytes::<Bert>(&fixture_bytes("bert_tiny"))?.value,
        bert
    );
    Ok(())
}

#[test]
fn bert_saves_back_byte_for_byte() -> Result<(), Box<dyn std::error::Error>> {
    let original = fixture_bytes("bert_tiny");
    let bert = hf::load::<Bert>(fixture("bert_tiny"))?.value;
    assert_eq!(hf::to_bytes(&bert)?, original);

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.safetensors");
    hf::save(&bert, &path)?;
    assert_eq!(std::fs::read(&path)?, original);

    let keys = FlaxPreset::new().keys(&bert)?;
    assert_eq!(keys, manifest_keys("bert_tiny"));
    assert!(keys.contains(&"encoder.layer.1.attention.self.query.kernel".to_owned()));
    Ok(())
}

#[test]
fn bert_as_a_tree_is_the_variables_dict() -> Result<(), Error> {
    let variables = hf::deserialize_file(fixture("bert_tiny"))?;
    assert_eq!(
        variables
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>(),
        ["params"]
    );
    for key in manifest_keys("bert_tiny") {
        let tensor = variables
            .tensor(&format!("params.{key}"))
            .expect("every tensor of the file");
        let values: ArrayD<f32> = tensor.to_array()?;
        assert_matches("bert_tiny", &key, values.shape(), values.iter());
    }
    assert_eq!(hf::serialize(&variables)?, fixture_bytes("bert_tiny"));
    assert_eq!(hf::deserialize(&fixture_bytes("bert_tiny"))?, variables);
    Ok(())
}

// ResNet as `FlaxResNetModel` names it: BatchNorm keeps `batch_stats`, so the file holds the
// variables dict: `params.embedder.embedder.convolution.kernel`,
// `batch_stats.encoder.stages.1.layers.0.shortcut.normalization.mean`.

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Conv {
    kernel: Array4<f32>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct BatchNorm {
    scale: Array1<f32>,
    bias: Array1<f32>,
    #[safejax(collection = "batch_stats")]
    mean: Array1<f32>,
    #[safejax(collection = "batch_stats")]
    var: Array1<f32>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct ConvLayer {
    convolution: Conv,
    normalization: BatchNorm,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Embedder {
    embedder: ConvLayer,
}

/// `self.layer = [ConvLayer(...), ConvLayer(...)]` in `setup`: Flax's `layer_0`, `layer_1`.
#[derive(SafeParams, Debug, Clone, PartialEq)]
struct LayerCollection {
    layer: Vec<ConvLayer>,
}

/// A residual block; only a block that changes the shape has a shortcut.
#[derive(SafeParams, Debug, Clone, PartialEq)]
struct BasicLayer {
    layer: LayerCollection,
    shortcut: Option<ConvLayer>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Stage {
    #[safejax(numbering = "nested")]
    layers: Vec<BasicLayer>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct ResNetEncoder {
    #[safejax(numbering = "nested")]
    stages: Vec<Stage>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(collection = "params")]
struct ResNet {
    embedder: Embedder,
    encoder: ResNetEncoder,
}

#[test]
fn resnet_round_trips_with_both_collections_in_its_keys() -> Result<(), Error> {
    let original = fixture_bytes("resnet_tiny");
    let resnet = hf::load::<ResNet>(fixture("resnet_tiny"))?.value;
    let stages = &resnet.encoder.stages;
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].layers[0].layer.layer.len(), 2);
    assert!(stages[0].layers[0].shortcut.is_none());
    let shortcut = stages[1].layers[0]
        .shortcut
        .as_ref()
        .expect("the second stage's shortcut");

    let mean = &shortcut.normalization.mean;
    let key = "batch_stats.encoder.stages.1.layers.0.shortcut.normalization.mean";
    assert_matches("resnet_tiny", key, mean.shape(), mean.iter());
    let kernel = &resnet.embedder.embedder.convolution.kernel;
    assert_matches(
        "resnet_tiny",
        "params.embedder.embedder.convolution.kernel",
        kernel.shape(),
        kernel.iter(),
    );

    assert_eq!(hf::to_bytes(&resnet)?, original);
    assert_eq!(
        FlaxPreset::new().keys(&resnet)?,
        manifest_keys("resnet_tiny")
    );

    let variables = hf::deserialize(&original)?;
    let names: Vec<&str> = variables.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["batch_stats", "params"]);
    assert_eq!(hf::serialize(&variables)?, original);
    Ok(())
}

#[test]
fn the_layout_follows_the_keys() {
    let keys = manifest_keys("resnet_tiny");
    assert_eq!(
        Layout::of_keys(keys.iter().map(String::as_str)),
        Layout::Variables
    );
    let keys = manifest_keys("bert_tiny");
    assert_eq!(
        Layout::of_keys(keys.iter().map(String::as_str)),
        Layout::Params
    );
    assert_eq!(Layout::of_keys(["params.a", "b"]), Layout::Params);
    assert_eq!(Layout::of_keys(["paramsx.a"]), Layout::Params);
    assert_eq!(Layout::of_keys([]), Layout::Params);
}

#[test]
fn other_frameworks_files_are_refused_with_their_name() -> Result<(), Box<dyn std::error::Error>> {
    let bert = hf::load::<Bert>(fixture("bert_tiny"))?.value;
    // The file's tensors under the same keys, without metadata.
    let plain = Saver::new().without_collection().to_bytes(&bert)?;
    for (format, says) in [
        ("pt", "PyTorch"),
        ("tf", "TensorFlow"),
        ("jax", "not `flax`"),
    ] {
        let metadata = Metadata::from([("format".to_owned(), format.to_owned())]);
        let bytes = Saver::new()
            .without_collection()
            .metadata(metadata)
            .to_bytes(&bert)?;
        let err = hf::from_bytes::<Bert>(&bytes).expect_err("another framework's file");
        assert!(
            matches!(&err, Error::Invalid { key, .. } if key == "__metadata__"),
            "{err:?}"
        );
        assert!(err.to_string().contains(says), "{err}");
        // The tree functions refuse it too, and so does a loader that allows a missing format.
        assert!(hf::deserialize(&bytes).is_err());
        assert!(
            FlaxPreset::new()
                .allow_missing_format()
                .from_bytes::<Bert>(&bytes)
                .is_err()
        );
    }

    // No `format` at all: refused as `transformers` refuses it, unless asked for.
    let err = hf::from_bytes::<Bert>(&plain).expect_err("no format entry");
    assert!(err.to_string().contains("allow_missing_format"), "{err}");
    let loaded = FlaxPreset::new()
        .allow_missing_format()
        .from_bytes::<Bert>(&plain)?;
    assert_eq!(loaded.value, bert);

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.safetensors");
    let pt = Metadata::from([("format".to_owned(), "pt".to_owned())]);
    Saver::new()
        .without_collection()
        .metadata(pt)
        .save(&bert, &path)?;
    let err = hf::load::<Bert>(&path).expect_err("a PyTorch file");
    assert!(err.to_string().contains("PyTorch"), "{err}");
    assert!(hf::deserialize_file(&path).is_err());
    Ok(())
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(collection = "params")]
struct WithCache {
    dense: Dense,
    #[safejax(collection = "cache")]
    cached_key: Array1<f32>,
}

#[test]
fn collections_other_than_params_and_batch_stats_are_refused()
-> Result<(), Box<dyn std::error::Error>> {
    let dense = Dense {
        kernel: Array2::zeros((2, 2)),
        bias: Array1::zeros(2),
    };
    let model = WithCache {
        dense: dense.clone(),
        cached_key: Array1::zeros(2),
    };
    let err = hf::to_bytes(&model).expect_err("a cache collection");
    assert!(
        matches!(&err, Error::Invalid { key, .. } if key == "cache.cached_key"),
        "{err:?}"
    );
    assert!(err.to_string().contains("collection `cache`"), "{err}");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.safetensors");
    assert!(hf::save(&model, &path).is_err());
    assert!(!path.exists(), "nothing is written");

    // Loads refuse it too, from a file that holds its keys.
    let flax = Metadata::from([("format".to_owned(), "flax".to_owned())]);
    let bytes = Saver::new()
        .without_collection()
        .metadata(flax)
        .to_bytes(&model)?;
    let err = hf::from_bytes::<WithCache>(&bytes).expect_err("a cache collection");
    assert!(err.to_string().contains("collection `cache`"), "{err}");

    // Tensors in no collection are the params tree...
    assert_eq!(FlaxPreset::new().keys(&dense)?, ["bias", "kernel"]);
    assert_eq!(
        hf::from_bytes::<Dense>(&hf::to_bytes(&dense)?)?.value,
        dense
    );
    // ...but beside `batch_stats` their keys would name no collection.
    let norm = BatchNorm {
        scale: Array1::ones(2),
        bias: Array1::zeros(2),
        mean: Array1::zeros(2),
        var: Array1::ones(2),
    };
    let err = hf::to_bytes(&norm).expect_err("no collection beside batch_stats");
    assert!(
        matches!(&err, Error::Invalid { key, .. } if key == "scale"),
        "{err:?}"
    );
    assert!(err.to_string().contains("collection = \"params\""), "{err}");

    // A tree's entries are collections.
    let mut variables = Tree::new();
    variables.insert("params", Tree::new());
    variables.insert("cache", Tree::new());
    let err = hf::serialize(&variables).expect_err("a cache collection");
    assert!(
        matches!(&err, Error::Invalid { key, .. } if key == "cache"),
        "{err:?}"
    );
    let mut params_only = Tree::new();
    params_only.insert("kernel", Tensor::from_array(&Array1::<f32>::zeros(2)));
    assert!(
        hf::serialize(&params_only).is_err(),
        "a tensor is not a collection"
    );
    Ok(())
}

#[test]
fn metadata_is_merged_with_the_format() -> Result<(), Error> {
    let bert = hf::load::<Bert>(fixture("bert_tiny"))?.value;
    let extra = Metadata::from([("step".to_owned(), "100".to_owned())]);
    let bytes = FlaxPreset::new().metadata(extra).to_bytes(&bert)?;
    let loaded = hf::from_bytes::<Bert>(&bytes)?;
    assert_eq!(loaded.metadata["format"], "flax");
    assert_eq!(loaded.metadata["step"], "100");

    let wrong = Metadata::from([("format".to_owned(), "pt".to_owned())]);
    let err = FlaxPreset::new()
        .metadata(wrong)
        .to_bytes(&bert)
        .expect_err("format pt");
    assert!(err.to_string().contains("format: pt"), "{err}");
    Ok(())
}

#[test]
fn the_loaders_leniencies_apply() -> Result<(), Error> {
    let strict = hf::load::<BertWithoutPooler>(fixture("bert_tiny"));
    assert!(strict.is_err(), "the pooler is unexpected");
    let lenient = FlaxPreset::new().loader(Loader::new().allow_unexpected());
    let loaded = lenient.load::<BertWithoutPooler>(fixture("bert_tiny"))?;
    assert_eq!(loaded.ignored, ["pooler.dense.bias", "pooler.dense.kernel"]);

    // A struct with statistics does not read a file without them.
    let err = hf::load::<ResNet>(fixture("bert_tiny")).expect_err("not a ResNet");
    assert!(matches!(err, Error::Load(_)), "{err:?}");
    Ok(())
}
