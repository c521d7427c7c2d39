//! Every safetensors file Python wrote for the tests (Flax, Haiku, Objax, Hugging Face, the
//! real models), put on a real S3 server as any client would, loaded with the tree API, saved
//! back through the store and compared, byte for byte, with the file Python wrote.

mod server;

use std::path::{Path, PathBuf};

use safejax_core::{Saver, flax, objax};
use server::start;

/// The `.safetensors` files under `tests/fixtures`, sorted.
fn fixtures() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "safetensors") {
                found.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut found = Vec::new();
    walk(&root, &mut found);
    found.sort();
    found
}

/// The fixture's path under `tests/fixtures`, as its object's key.
fn key(path: &Path) -> String {
    let text = path.to_string_lossy();
    let at = text.find("tests/fixtures/").unwrap_or(0);
    text[at + "tests/fixtures/".len()..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_round_trips_through_the_server() {
    let server = start().await;
    let paths = fixtures();
    assert!(paths.len() >= 12, "{paths:?}");
    for path in &paths {
        let key = key(path);
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
        server.put(&key, bytes.clone()).await;
        let remote = server.remote(&key);
        let saved_to = server.remote(&format!("back/{key}"));
        let sent_before = server.sent();
        let is_objax = key.contains("objax");
        let (fetched_bytes, metadata) = if is_objax {
            let fetched = remote.load_vars().await;
            let fetched = fetched.unwrap_or_else(|e| panic!("{key}: {e}"));
            let local = objax::deserialize_file(path).unwrap_or_else(|e| panic!("{e}"));
            assert!(fetched.loaded.value == local, "{key}");
            let saver = Saver::new().metadata(fetched.loaded.metadata.clone());
            saved_to
                .save_vars(&saver, &fetched.loaded.value)
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            (fetched.stats.bytes, fetched.loaded.metadata)
        } else {
            let fetched = remote.load_tree().await;
            let fetched = fetched.unwrap_or_else(|e| panic!("{key}: {e}"));
            let local = flax::deserialize_file(path).unwrap_or_else(|e| panic!("{e}"));
            assert!(fetched.loaded.value == local, "{key}");
            let saver = Saver::new().metadata(fetched.loaded.metadata.clone());
            saved_to
                .save_tree(&saver, &fetched.loaded.value)
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            (fetched.stats.bytes, fetched.loaded.metadata)
        };
        assert_eq!(fetched_bytes, bytes.len() as u64, "{key}: the file, once");
        assert_eq!(server.sent() - sent_before, fetched_bytes, "{key}");
        let (_, local_metadata) =
            flax::deserialize_file_with_metadata(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(metadata, local_metadata, "{key}");
        let written = server.root.path().join("ckpt/back").join(&key);
        let written = std::fs::read(written).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(
            written == bytes,
            "{key}: saved back, not the bytes Python wrote"
        );
    }
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_models_save_and_load_sharded_through_the_server() {
    let server = start().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/real-models");

    // The Haiku transformer LM, as a tree, in shards of at most 30 KB of data.
    let lm = flax::deserialize_file(root.join("haiku_transformer_lm.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    let index = server.remote("lm/model.safetensors.index.json");
    let saver = Saver::new().max_shard_size(30_000);
    index
        .save_tree(&saver, &lm)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let listing = server.listing("lm");
    assert!(listing.len() > 3, "{listing:?}");
    let fetched = index.load_tree().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(fetched.loaded.value == lm);
    assert!(fetched.loaded.warnings.is_empty());

    // The Objax WideResNet, as variables, sharded; then assigned into a collection whose
    // values are zeros, fetching only the variables it holds.
    let path = root.join("objax_wide_resnet.safetensors");
    let vars = objax::deserialize_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let index = server.remote("wrn/model.safetensors.index.json");
    index
        .save_vars(&Saver::new().max_shard_size(200_000), &vars)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(server.listing("wrn").len() > 3);
    let fetched = index.load_vars().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(fetched.loaded.value == vars);
    let mut zeroed = vars.clone();
    for var in zeroed.values_mut() {
        let (dtype, shape) = (var.tensor.dtype(), var.tensor.shape().to_vec());
        let zeros = vec![0; var.tensor.data().len()];
        let tensor = safejax_core::Tensor::new(dtype, shape, zeros);
        var.tensor = tensor.unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(zeroed != vars);
    let assigned = index.load_vars_into(&mut zeroed).await;
    assigned.unwrap_or_else(|e| panic!("{e}"));
    assert!(zeroed == vars);

    // A collection with a variable the file lacks and one of another kind: refused whole.
    let mut wrong = vars.clone();
    let (name, var) = wrong
        .iter_mut()
        .next()
        .unwrap_or_else(|| panic!("a variable"));
    let name = name.clone();
    var.kind = objax::VarKind::StateVar;
    let before = wrong.clone();
    let err = index.load_vars_into(&mut wrong).await.unwrap_err();
    assert!(err.to_string().contains(&name), "{err}");
    assert!(wrong == before, "nothing assigned");
    server.task.abort();
}
