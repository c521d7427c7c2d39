//! The commands on sharded checkpoints (an index and its shards, in the Hugging Face
//! convention).

mod common;

use common::*;

use std::path::{Path, PathBuf};

use safejax_core::Metadata;

/// A checkpoint of `a`, `b` (first shard) and `c` (second shard) in `dir`, with its index, and
/// the same tensors in one file; `weight_map` overrides the index's map when given.
fn sharded(dir: &Path, weight_map: Option<serde_json::Value>) -> (PathBuf, PathBuf) {
    sharded_of_size(dir, weight_map, 24)
}

/// [`sharded`] with the index's `total_size` given.
fn sharded_of_size(
    dir: &Path,
    weight_map: Option<serde_json::Value>,
    total_size: u64,
) -> (PathBuf, PathBuf) {
    let (a, b, c) = (f32s(&[1.0, 2.0]), f32s(&[3.0]), f32s(&[4.0, 5.0, 6.0]));
    let first = "model-00001-of-00002.safetensors";
    let second = "model-00002-of-00002.safetensors";
    save(&dir.join(first), &[("a", &a), ("b", &b)], Metadata::new());
    save(&dir.join(second), &[("c", &c)], Metadata::new());
    let map =
        weight_map.unwrap_or_else(|| serde_json::json!({"a": first, "b": first, "c": second}));
    let index = serde_json::json!({"metadata": {"total_size": total_size}, "weight_map": map});
    let index_path = dir.join("model.safetensors.index.json");
    std::fs::write(&index_path, index.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let single = dir.join("single.safetensors");
    save(&single, &[("a", &a), ("b", &b), ("c", &c)], Metadata::new());
    (index_path, single)
}

#[test]
fn inspect_shows_every_shard_and_the_whole_tree() {
    let dir = temp();
    let (index, _) = sharded(dir.path(), None);
    let run = safejax(&["inspect".as_ref(), index.as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("3 tensors, 6 parameters, 24 B of tensor data"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("shard"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("model-00002-of-00002.safetensors: 1 tensors"),
        "{}",
        run.stdout
    );
}

#[test]
fn check_passes_shards_that_agree_with_their_index_and_fails_others() {
    let dir = temp();
    let (index, _) = sharded(dir.path(), None);
    let run = safejax(&["check".as_ref(), index.as_os_str()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.matches(": ok (").count(), 2, "{}", run.stdout);
    let wrong = serde_json::json!({
        "a": "model-00002-of-00002.safetensors",
        "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors",
    });
    let (index, _) = sharded(dir.path(), Some(wrong));
    let run = safejax(&["check".as_ref(), index.as_os_str()]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("`a`"), "{}", run.stdout);
}

#[test]
fn diff_and_convert_read_an_index_as_one_checkpoint() {
    let dir = temp();
    let (index, single) = sharded(dir.path(), None);
    let run = safejax(&["diff".as_ref(), index.as_os_str(), single.as_os_str()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let joined = dir.path().join("joined.safetensors");
    let run = safejax(&["convert".as_ref(), index.as_os_str(), joined.as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(&joined).ok(), std::fs::read(&single).ok());
}

#[test]
fn convert_writes_shards_of_at_most_the_size_asked() {
    let dir = temp();
    let (_, single) = sharded(dir.path(), None);
    let out = dir.path().join("out").join("model.safetensors.index.json");
    std::fs::create_dir_all(dir.path().join("out")).unwrap_or_else(|e| panic!("{e}"));
    let run = safejax(&[
        "convert".as_ref(),
        single.as_os_str(),
        out.as_os_str(),
        "--max-shard-size".as_ref(),
        "12B".as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shards = std::fs::read_dir(dir.path().join("out"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert!(shards >= 3, "an index and at least two shards");
    let run = safejax(&["diff".as_ref(), out.as_os_str(), single.as_os_str()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

#[test]
fn a_total_size_that_disagrees_fails_check_and_is_a_warning_elsewhere() {
    let dir = temp();
    let (index, single) = sharded_of_size(dir.path(), None, 1000);
    let run = safejax(&["check".as_ref(), index.as_os_str()]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("total_size"), "{}", run.stdout);
    assert!(run.stdout.contains("1000"), "{}", run.stdout);
    // The tensors are all there: the other commands read them.
    let run = safejax(&["diff".as_ref(), index.as_os_str(), single.as_os_str()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}
