//! Sharded checkpoints: several safetensors files and a Hugging Face index
//! (`model.safetensors.index.json`). A real model saved in shards loads back byte for byte,
//! typed and as a tree; an index that disagrees with its shards is an error naming the shard
//! and the key; a `total_size` that disagrees is a warning; a save over a checkpoint never
//! overwrites a shard the live index names, and a save stopped after any of its steps leaves
//! the old checkpoint or the new one, whole.

mod common;
#[path = "../examples/common/transformer.rs"]
mod transformer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::real_model;
use ndarray::{Array1, array};
use safejax::shard::{self, Index, Sharded};
use safejax::{
    Error, Leaf, Loader, Metadata, SafeParams, Saver, ShardProblem, Tensor, Tree, flax, format,
    haiku, objax,
};

const INDEX: &str = "model.safetensors.index.json";

fn ok<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn temp_dir() -> tempfile::TempDir {
    ok(tempfile::tempdir())
}

/// The names of the entries of `dir`, sorted, hidden ones included.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = ok(std::fs::read_dir(dir))
        .map(|entry| ok(entry).file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Hugging Face's names of `count` shards of `model`.
fn hf_names(count: usize) -> Vec<String> {
    (1..=count)
        .map(|k| format!("model-{k:05}-of-{count:05}.safetensors"))
        .collect()
}

/// The transformer's tensors, as Python safejax wrote them.
fn transformer_tree() -> Tree {
    ok(haiku::deserialize_file(real_model(transformer::NAME)))
}

fn transformer_bytes() -> Vec<u8> {
    ok(std::fs::read(real_model(transformer::NAME)))
}

/// Saves the transformer's tensors as a tree, in shards of at most `max` bytes.
fn save_transformer(index: &Path, max: u64) -> Tree {
    let tree = transformer_tree();
    let flat = ok(tree.flatten());
    let metadata: Metadata = [("source".to_owned(), "haiku".to_owned())].into();
    let saver = Saver::new().metadata(metadata).max_shard_size(max);
    let leaves: Vec<(String, &dyn Leaf)> = flat
        .iter()
        .map(|(key, tensor)| (key.clone(), *tensor as &dyn Leaf))
        .collect();
    ok(saver.save_tensors(&leaves, index));
    tree
}

#[test]
fn a_real_model_round_trips_through_shards_byte_for_byte() {
    let dir = temp_dir();
    let index = dir.path().join(INDEX);
    let max = 32 << 10;
    let tree = save_transformer(&index, max);
    let flat = ok(tree.flatten());

    // The shards, then the index, and nothing else (no temporary file left).
    let text = ok(std::fs::read_to_string(&index));
    let json: serde_json::Value = ok(serde_json::from_str(&text));
    let weight_map = json["weight_map"].as_object().expect("a weight map");
    let shards: std::collections::BTreeSet<&str> =
        weight_map.values().filter_map(|v| v.as_str()).collect();
    assert!(shards.len() >= 3, "{shards:?}");
    let mut expected = hf_names(shards.len());
    assert_eq!(shards.iter().copied().collect::<Vec<_>>(), expected);
    expected.push(INDEX.to_owned());
    expected.sort();
    assert_eq!(entries(dir.path()), expected);

    // The index: every key, the data bytes in all, written as Hugging Face writes it.
    let total: usize = flat.iter().map(|(_, tensor)| tensor.data().len()).sum();
    assert_eq!(json["metadata"]["total_size"], total as u64);
    assert_eq!(weight_map.len(), flat.len());
    assert!(
        text.starts_with("{\n  \"metadata\": {\n    \"total_size\": "),
        "{text}"
    );
    assert!(text.ends_with("}\n"), "{text}");
    assert_eq!(ok(Index::from_slice(text.as_bytes())).to_json(), text);

    // Each shard: keys in order, at most `max` bytes unless a tensor alone, the saver's metadata.
    let mut keys_in_order = Vec::new();
    for name in &shards {
        let bytes = ok(std::fs::read(dir.path().join(name)));
        let parsed = ok(format::parse(&bytes));
        assert_eq!(parsed.metadata["source"], "haiku", "{name}");
        let data: usize = parsed.iter().map(|(_, t)| t.byte_len()).sum();
        assert!(
            data as u64 <= max || parsed.len() == 1,
            "{name}: {data} bytes"
        );
        let mut keys: Vec<&str> = parsed.iter().map(|(key, _)| key).collect();
        keys.sort();
        for key in &keys {
            assert_eq!(weight_map[*key], *name, "{key}");
        }
        keys_in_order.extend(keys.into_iter().map(str::to_owned));
    }
    let mut sorted = keys_in_order.clone();
    sorted.sort();
    assert_eq!(
        keys_in_order, sorted,
        "tensors in key order over the shards"
    );

    // Back as a tree, each tensor byte for byte; the metadata of the shards.
    let (loaded, metadata) = ok(haiku::deserialize_file_with_metadata(&index));
    assert_eq!(loaded, tree);
    for (key, tensor) in &flat {
        let back = loaded.tensor(key).expect("every key");
        assert_eq!(back.data(), tensor.data(), "{key}");
        assert_eq!(
            (back.dtype(), back.shape()),
            (tensor.dtype(), tensor.shape())
        );
    }
    assert_eq!(metadata["source"], "haiku");
    assert_eq!(ok(haiku::serialize(&loaded, None)), transformer_bytes());

    // Back as the typed model, read and memory-mapped: the single file's bytes again.
    let params = ok(transformer::Params::load(&index));
    assert_eq!(ok(params.to_bytes()), transformer_bytes());
    let mapped = ok(Loader::new()
        .memory_map()
        .load::<transformer::Params>(&index));
    assert_eq!(ok(mapped.value.to_bytes()), transformer_bytes());
    assert_eq!(mapped.metadata["source"], "haiku");
    assert!(mapped.warnings.is_empty(), "{:?}", mapped.warnings);
}

#[test]
fn a_typed_model_saves_in_shards_and_loads_back() {
    let dir = temp_dir();
    let index = dir.path().join("transformer.safetensors.index.json");
    let params = ok(transformer::load_params(transformer::fixture()));
    ok(Saver::new().max_shard_size(20_000).save(&params, &index));
    let sharded = ok(Sharded::open(&index));
    assert!(sharded.shard_paths().len() > 3);
    for path in sharded.shard_paths() {
        let name = path.file_name().expect("a name").to_string_lossy();
        assert!(name.starts_with("transformer-0000"), "{name}");
    }
    assert_eq!(
        Some(sharded.total_bytes()),
        sharded.index().total_size,
        "total_size is the data in the shards"
    );
    let back = ok(transformer::Params::load(&index));
    assert_eq!(ok(back.to_bytes()), transformer_bytes());

    let mut into = ok(transformer::load_params(transformer::fixture()));
    ok(into.load_into(&index));
    assert_eq!(ok(into.to_bytes()), transformer_bytes());
}

/// A checkpoint written by hand: each shard with its keys (tensors `[k]` as f32), and an index
/// with `weight_map` and `total_size` as given.
fn checkpoint(
    dir: &Path,
    shards: &[(&str, &[&str])],
    weight_map: &[(&str, &str)],
    total_size: Option<u64>,
) -> PathBuf {
    for (name, keys) in shards {
        let tensors: Vec<(String, Tensor)> = keys
            .iter()
            .map(|key| (key.to_string(), Tensor::from_array(&array![1.0f32])))
            .collect();
        let leaves: Vec<(String, &dyn Leaf)> = tensors
            .iter()
            .map(|(key, tensor)| (key.clone(), tensor as &dyn Leaf))
            .collect();
        ok(Saver::new().save_tensors(&leaves, dir.join(name)));
    }
    let index = Index {
        total_size,
        metadata: serde_json::Map::new(),
        weight_map: weight_map
            .iter()
            .map(|(key, shard)| (key.to_string(), shard.to_string()))
            .collect(),
    };
    let path = dir.join(INDEX);
    ok(std::fs::write(&path, index.to_json()));
    path
}

type Params = BTreeMap<String, Array1<f32>>;

/// Every way of loading `index` fails with the same shard error.
fn shard_error(index: &Path) -> (ShardProblem, String, String, String) {
    let errors = [
        Sharded::open(index).map(drop).unwrap_err(),
        Loader::new().load::<Params>(index).map(drop).unwrap_err(),
        Loader::new()
            .memory_map()
            .load::<Params>(index)
            .map(drop)
            .unwrap_err(),
        Loader::new().check::<Params>(index).map(drop).unwrap_err(),
        flax::deserialize_file(index).map(drop).unwrap_err(),
        objax::deserialize_file(index).map(drop).unwrap_err(),
    ];
    let message = errors[0].to_string();
    for error in &errors {
        assert_eq!(error.to_string(), message);
    }
    match &errors[0] {
        Error::Shard {
            index: at,
            shard,
            key,
            problem,
        } => {
            assert_eq!(at, index);
            assert!(message.contains(&index.display().to_string()), "{message}");
            (problem.clone(), shard.clone(), key.clone(), message)
        }
        other => panic!("not a shard error: {other:#?}"),
    }
}

#[test]
fn a_key_in_two_shards_is_an_error_naming_both() {
    let dir = temp_dir();
    let index = checkpoint(
        dir.path(),
        &[
            ("a.safetensors", &["x", "y"]),
            ("b.safetensors", &["y", "z"]),
        ],
        &[
            ("x", "a.safetensors"),
            ("y", "a.safetensors"),
            ("z", "b.safetensors"),
        ],
        Some(12),
    );
    let (problem, shard, key, message) = shard_error(&index);
    assert_eq!(
        problem,
        ShardProblem::TwoShards {
            other: "b.safetensors".into()
        }
    );
    assert_eq!((shard.as_str(), key.as_str()), ("a.safetensors", "y"));
    assert!(
        message.contains("key `y` is in two shards")
            && message.contains("`a.safetensors` and `b.safetensors`"),
        "{message}"
    );
}

#[test]
fn a_key_missing_from_its_shard_is_an_error() {
    let dir = temp_dir();
    let index = checkpoint(
        dir.path(),
        &[("a.safetensors", &["x"]), ("b.safetensors", &["z"])],
        &[
            ("x", "a.safetensors"),
            ("y", "a.safetensors"),
            ("z", "b.safetensors"),
        ],
        Some(8),
    );
    let (problem, shard, key, message) = shard_error(&index);
    assert_eq!(problem, ShardProblem::NotInShard);
    assert_eq!((shard.as_str(), key.as_str()), ("a.safetensors", "y"));
    assert!(
        message.contains("maps key `y` to shard `a.safetensors`, which does not hold it"),
        "{message}"
    );
}

#[test]
fn a_key_in_the_wrong_shard_is_an_error() {
    let dir = temp_dir();
    let index = checkpoint(
        dir.path(),
        &[("a.safetensors", &["x"]), ("b.safetensors", &["y"])],
        &[("x", "a.safetensors"), ("y", "a.safetensors")],
        Some(8),
    );
    // `b.safetensors` is no shard of this index: only `a` is opened, and lacks `y`.
    let (problem, shard, key, _) = shard_error(&index);
    assert_eq!(problem, ShardProblem::NotInShard);
    assert_eq!((shard.as_str(), key.as_str()), ("a.safetensors", "y"));
}

#[test]
fn a_key_the_index_does_not_name_is_an_error() {
    let dir = temp_dir();
    let index = checkpoint(
        dir.path(),
        &[("a.safetensors", &["x", "stray"])],
        &[("x", "a.safetensors")],
        Some(8),
    );
    let (problem, shard, key, message) = shard_error(&index);
    assert_eq!(problem, ShardProblem::NotInIndex);
    assert_eq!((shard.as_str(), key.as_str()), ("a.safetensors", "stray"));
    assert!(
        message.contains("shard `a.safetensors` of")
            && message.contains("holds key `stray`, which the index does not name"),
        "{message}"
    );
}

#[test]
fn a_missing_shard_is_an_error() {
    let dir = temp_dir();
    let index = checkpoint(
        dir.path(),
        &[("a.safetensors", &["x"])],
        &[("x", "a.safetensors"), ("y", "gone.safetensors")],
        Some(8),
    );
    let (problem, shard, key, message) = shard_error(&index);
    assert_eq!(problem, ShardProblem::MissingShard);
    assert_eq!((shard.as_str(), key.as_str()), ("gone.safetensors", "y"));
    assert!(
        message.contains("maps key `y` to shard `gone.safetensors`, which does not exist"),
        "{message}"
    );
}

#[test]
fn a_shard_name_out_of_the_directory_is_an_error() {
    let outer = temp_dir();
    let dir = outer.path().join("ckpt");
    ok(std::fs::create_dir(&dir));
    // A real file where the name leads: refused for its name, never opened.
    let outside = outer.path().join("outside.safetensors");
    ok(vec![array![1.0f32]].save(&outside));
    let absolute = outside.display().to_string();
    for name in [
        "../outside.safetensors",
        absolute.as_str(),
        "sub/x.safetensors",
        "..",
    ] {
        let index = checkpoint(
            &dir,
            &[("a.safetensors", &["x"])],
            &[("x", "a.safetensors"), ("y", name)],
            None,
        );
        let (problem, shard, key, message) = shard_error(&index);
        assert_eq!(problem, ShardProblem::UnsafeName, "{name}");
        assert_eq!((shard.as_str(), key.as_str()), (name, "y"));
        assert!(message.contains("is not a plain file name"), "{message}");
    }
}

#[test]
fn a_total_size_that_disagrees_is_a_warning() {
    let dir = temp_dir();
    let index = checkpoint(
        dir.path(),
        &[("a.safetensors", &["x"]), ("b.safetensors", &["y"])],
        &[("x", "a.safetensors"), ("y", "b.safetensors")],
        Some(1000),
    );
    let loaded = ok(Loader::new().load::<Params>(&index));
    assert_eq!(loaded.value.len(), 2);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    assert!(
        warning.contains("`total_size` of 1000 bytes") && warning.contains("hold 8 bytes"),
        "{warning}"
    );
    assert!(warning.contains(&index.display().to_string()), "{warning}");
    let sharded = ok(Sharded::open(&index));
    assert_eq!(sharded.warnings(), loaded.warnings);
    assert_eq!(sharded.total_bytes(), 8);
    let checked = ok(Loader::new().check::<Params>(&index));
    assert_eq!(checked.warnings, loaded.warnings);

    // Without a `total_size` there is nothing to disagree with.
    let index = checkpoint(
        dir.path(),
        &[("a.safetensors", &["x"])],
        &[("x", "a.safetensors")],
        None,
    );
    assert!(ok(Loader::new().load::<Params>(&index)).warnings.is_empty());
    // A single file has no index to warn about.
    let single = dir.path().join("a.safetensors");
    assert!(
        ok(Loader::new().load::<Params>(&single))
            .warnings
            .is_empty()
    );
}

#[test]
fn check_reads_the_shards_headers_through_the_index() {
    let dir = temp_dir();
    let index = dir.path().join(INDEX);
    let params = ok(transformer::load_params(transformer::fixture()));
    ok(Saver::new().max_shard_size(20_000).save(&params, &index));
    let checked = ok(Loader::new().check::<transformer::Params>(&index));
    assert!(checked.warnings.is_empty());
    // A model that wants other dtypes: the strict check's report, through the index.
    let err = Loader::new().check::<Vec<Array1<f64>>>(&index).unwrap_err();
    let report = err.report().expect("a load report");
    assert!(!report.unexpected.is_empty(), "{err}");
    // Only headers are read: shards cut after their headers check as whole ones.
    for shard in ok(Sharded::open(&index)).shard_paths() {
        let header_len =
            u64::from_le_bytes(ok(std::fs::read(&shard))[..8].try_into().expect("8 bytes"));
        let file = ok(std::fs::OpenOptions::new().write(true).open(&shard));
        ok(file.set_len(8 + header_len));
    }
    ok(Loader::new().check::<transformer::Params>(&index));
    assert!(transformer::Params::load(&index).is_err());
}

fn model(scale: f32, tensors: usize) -> Vec<Array1<f32>> {
    (0..tensors)
        .map(|i| Array1::from_elem(4, scale + i as f32))
        .collect()
}

/// Saves `value` with shards of 16 bytes: one tensor of [`model`] each.
fn save_model(value: &Vec<Array1<f32>>, index: &Path) -> safejax::Result<()> {
    Saver::new().max_shard_size(16).save(value, index)
}

fn load_model(index: &Path) -> Vec<Array1<f32>> {
    ok(Vec::<Array1<f32>>::load(index))
}

#[test]
fn a_save_over_a_checkpoint_takes_names_the_live_index_does_not_hold() {
    let dir = temp_dir();
    let index = dir.path().join(INDEX);
    ok(save_model(&model(1.0, 3), &index));
    let mut first = hf_names(3);
    first.push(INDEX.to_owned());
    assert_eq!(entries(dir.path()), first);

    // Hugging Face's names are taken by the live index: the new shards are `.1`.
    ok(save_model(&model(2.0, 3), &index));
    let second: Vec<String> = (1..=3)
        .map(|k| format!("model-{k:05}-of-00003.1.safetensors"))
        .chain([INDEX.to_owned()])
        .collect();
    assert_eq!(entries(dir.path()), second, "the old shards are removed");
    assert_eq!(load_model(&index), model(2.0, 3));
    assert_eq!(ok(Index::read(&index)).shards().len(), 3);

    // And now Hugging Face's names are free again.
    ok(save_model(&model(3.0, 3), &index));
    assert_eq!(entries(dir.path()), first);
    assert_eq!(load_model(&index), model(3.0, 3));

    // Fewer shards: other names, nothing to collide with; the old ones go.
    ok(save_model(&model(4.0, 2), &index));
    let mut fewer = hf_names(2);
    fewer.push(INDEX.to_owned());
    assert_eq!(entries(dir.path()), fewer);
    assert_eq!(load_model(&index), model(4.0, 2));
}

/// A save of `new` over `old`, stopped after each of its steps: the directory loads as the old
/// checkpoint until the index is replaced, as the new one after, whole either way.
fn stop_after_each_step(old: &Vec<Array1<f32>>, new: &Vec<Array1<f32>>) {
    let steps = new.len() + 1;
    for step in 1..=steps {
        let dir = temp_dir();
        let index = dir.path().join(INDEX);
        ok(save_model(old, &index));
        let old_files = entries(dir.path());

        safejax::__private::stop_sharded_saves_after(Some(step));
        let stopped = save_model(new, &index);
        safejax::__private::stop_sharded_saves_after(None);
        let err = stopped.expect_err("the save stops");
        assert!(err.to_string().contains("stopped after step"), "{err}");

        let expected = if step < steps { old } else { new };
        assert_eq!(&load_model(&index), expected, "stopped after step {step}");
        assert!(ok(Sharded::open(&index)).warnings().is_empty());
        // Nothing the loadable checkpoint needs was touched: its files are all there.
        let files = entries(dir.path());
        for name in &old_files {
            assert!(files.contains(name), "{name} after step {step}: {files:?}");
        }

        // The next save finishes the job: only the new checkpoint's files remain.
        ok(save_model(new, &index));
        assert_eq!(&load_model(&index), new);
        let sharded = ok(Sharded::open(&index));
        let mut live: Vec<String> = sharded
            .index()
            .shards()
            .into_iter()
            .map(str::to_owned)
            .collect();
        live.push(INDEX.to_owned());
        live.sort();
        assert_eq!(entries(dir.path()), live, "after step {step}");
    }
}

#[test]
fn a_save_stopped_after_any_step_leaves_one_whole_checkpoint() {
    // The same number of shards: every Hugging Face name collides with the live index.
    stop_after_each_step(&model(1.0, 3), &model(2.0, 3));
    // More shards and fewer: no name collides.
    stop_after_each_step(&model(1.0, 2), &model(2.0, 4));
    stop_after_each_step(&model(1.0, 4), &model(2.0, 2));
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let dir = temp_dir();
    let index = dir.path().join(INDEX);
    let tensor = Tensor::from_array(&array![1.0f32]);
    let twice: Vec<(String, &dyn Leaf)> = vec![("a".into(), &tensor), ("a".into(), &tensor)];
    let err = Saver::new()
        .max_shard_size(1)
        .save_tensors(&twice, &index)
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateKey { .. }), "{err:#?}");
    let reserved: Vec<(String, &dyn Leaf)> =
        vec![("a".into(), &tensor), ("__metadata__".into(), &tensor)];
    let err = Saver::new().save_tensors(&reserved, &index).unwrap_err();
    assert!(matches!(err, Error::ReservedKey { .. }), "{err:#?}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));

    // A read-only index is refused before any shard is written, root or not.
    ok(save_model(&model(1.0, 2), &index));
    let before = entries(dir.path());
    let mut permissions = ok(std::fs::metadata(&index)).permissions();
    permissions.set_readonly(true);
    ok(std::fs::set_permissions(&index, permissions));
    let err = save_model(&model(2.0, 2), &index).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:#?}");
    assert_eq!(entries(dir.path()), before);
    assert_eq!(load_model(&index), model(1.0, 2));
    ok(Saver::new()
        .max_shard_size(16)
        .overwrite_read_only()
        .save(&model(2.0, 2), &index));
    assert_eq!(load_model(&index), model(2.0, 2));
}

#[test]
fn a_failed_shard_write_removes_the_shards_written_before_it() {
    let dir = temp_dir();
    let index = dir.path().join(INDEX);
    // A read-only leftover where the second shard goes: its write is refused.
    let blocker = dir.path().join(&hf_names(2)[1]);
    ok(std::fs::write(&blocker, b"leftover"));
    let mut permissions = ok(std::fs::metadata(&blocker)).permissions();
    permissions.set_readonly(true);
    ok(std::fs::set_permissions(&blocker, permissions));
    let err = save_model(&model(1.0, 2), &index).unwrap_err();
    assert!(
        matches!(&err, Error::ReadOnly { path, .. } if *path == blocker),
        "{err:#?}"
    );
    assert_eq!(entries(dir.path()), [hf_names(2)[1].clone()]);
}

#[test]
fn the_tree_api_saves_and_loads_sharded_checkpoints() {
    let dir = temp_dir();
    let mut dense = Tree::new();
    dense.insert("kernel", Tensor::from_array(&array![[0.5f32, -1.0]]));
    dense.insert("bias", Tensor::from_array(&array![2.0f32]));
    let mut params = Tree::new();
    params.insert("Dense_0", dense);
    let metadata: Metadata = [("epoch".to_owned(), "3".to_owned())].into();
    let index = dir.path().join("x.safetensors.index.json");
    ok(flax::serialize_to_file(&params, &index, Some(&metadata)));
    assert_eq!(
        entries(dir.path()),
        ["x-00001-of-00001.safetensors", "x.safetensors.index.json"]
    );
    let (back, meta) = ok(flax::deserialize_file_with_metadata(&index));
    assert_eq!((back, meta), (params, metadata));

    // Objax, under an index named `.json` alone.
    let vars = ok(objax::deserialize_file(common::fixture("objax_mlp")));
    let index = dir.path().join("vars.json");
    ok(objax::serialize_to_file(&vars, &index, None));
    assert!(dir.path().join("vars-00001-of-00001.safetensors").is_file());
    assert_eq!(ok(objax::deserialize_file(&index)), vars);
    let mut assigned = vars.clone();
    ok(objax::deserialize_file_with_assignment(
        &index,
        &mut assigned,
    ));
    assert_eq!(assigned, vars);
}

#[test]
fn an_index_is_read_and_written_as_hugging_face_does() {
    let json = r#"{"metadata": {"total_size": 16.0, "format": "pt"}, "extra": [1],
                   "weight_map": {"b": "m-2.safetensors", "a": "m-1.safetensors"}}"#;
    let index = ok(Index::from_slice(json.as_bytes()));
    assert_eq!(index.total_size, Some(16));
    assert_eq!(index.shards(), ["m-1.safetensors", "m-2.safetensors"]);
    assert_eq!(
        index.to_json(),
        "{\n  \"metadata\": {\n    \"format\": \"pt\",\n    \"total_size\": 16\n  },\n  \
         \"weight_map\": {\n    \"a\": \"m-1.safetensors\",\n    \"b\": \"m-2.safetensors\"\n  }\n}\n"
    );

    let invalid = |json: &str| {
        let err = Index::from_slice(json.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::Index { .. }), "{err:#?}");
        err.to_string()
    };
    let twice = invalid(r#"{"weight_map": {"a": "m-1.safetensors", "a": "m-2.safetensors"}}"#);
    assert!(
        twice.contains("key `a` appears twice in `weight_map`")
            && twice.contains("`m-1.safetensors` and `m-2.safetensors`"),
        "{twice}"
    );
    assert!(invalid(r#"{"metadata": {}}"#).contains("no `weight_map`"));
    assert!(
        invalid(r#"{"weight_map": {}, "metadata": {"total_size": "big"}}"#)
            .contains("not a number of bytes")
    );
    assert!(invalid(r#"{"weight_map": {"a": 1}}"#).starts_with("invalid index: "));
    invalid("[]");
    invalid("{");

    let dir = temp_dir();
    let path = dir.path().join(INDEX);
    ok(std::fs::write(&path, "not json"));
    let err = Loader::new().load::<Params>(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("invalid index `{}`: ", path.display())),
        "{err}"
    );
    assert!(shard::is_index(&path));
    assert!(!shard::is_index(&dir.path().join("model.safetensors")));
}
