//! The local and in-memory stores of `object_store`, through the same calls as S3: typed
//! loads and saves, sharded checkpoints, the tree API, in-place loads; and the futures of
//! every call are `Send`, for `tokio::spawn`.

use std::sync::Arc;

use ndarray::{Array1, array};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use safejax_core::{Loader, Saver, flax};
use safejax_store::{Remote, blocking};

/// The stores under test, each with a name for messages; the local one in `dir`.
fn stores(dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn ObjectStore>)> {
    let local = LocalFileSystem::new_with_prefix(dir).unwrap_or_else(|e| panic!("{e}"));
    vec![
        ("memory", Arc::new(InMemory::new())),
        ("local", Arc::new(local)),
    ]
}

fn weights() -> Vec<Array1<f32>> {
    (0..5)
        .map(|i| Array1::from_iter((0..1000).map(|j| (i * 1000 + j) as f32)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_and_sharded_checkpoints_round_trip_through_each_store() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, store) in stores(dir.path()) {
        let value = weights();
        let single = Remote::new(store.clone(), "single/model.safetensors");
        let saver = Saver::new().metadata([("step".to_owned(), "7".to_owned())].into());
        let written = single.save(&saver, &value).await;
        let written = written.unwrap_or_else(|e| panic!("{name}: {e}"));
        let bytes = saver.to_bytes(&value).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written.bytes, bytes.len() as u64, "{name}");
        let fetched = single.load::<Vec<Array1<f32>>>(&Loader::new()).await;
        let fetched = fetched.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fetched.loaded.value, value, "{name}");
        assert_eq!(fetched.loaded.metadata["step"], "7", "{name}");
        assert_eq!(fetched.stats.bytes, bytes.len() as u64, "{name}");

        let index = Remote::new(store.clone(), "sharded/model.safetensors.index.json");
        let sharded = Saver::new().max_shard_size(8000);
        index
            .save(&sharded, &value)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for k in 1..=3 {
            let shard = format!("sharded/model-0000{k}-of-00003.safetensors");
            let size = Remote::new(store.clone(), shard).size().await;
            size.unwrap_or_else(|e| panic!("{name}: shard {k}: {e}"));
        }
        let fetched = index.load::<Vec<Array1<f32>>>(&Loader::new()).await;
        assert_eq!(
            fetched
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .loaded
                .value,
            value
        );
        // In place, from the index: only the tensors the value holds are fetched.
        let mut first_two = vec![Array1::<f32>::zeros(1000); 2];
        let loader = Loader::new().allow_unexpected();
        let into = index.load_into(&loader, &mut first_two).await;
        let into = into.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(first_two[..], value[..2], "{name}");
        let heads = index.check::<Vec<Array1<f32>>>(&Loader::new()).await;
        let heads = heads.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(into.stats.bytes, heads.stats.bytes + 8000, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tensor_longer_than_a_request_is_fetched_in_several() {
    // 20 MiB of data: requests of 8, 8 and 4 MiB after the header's two.
    let value = vec![Array1::from_iter((0..5 << 20).map(|i| i as f32))];
    let remote = Remote::new(Arc::new(InMemory::new()), "long.safetensors");
    remote
        .save(&Saver::new(), &value)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let fetched = remote.load::<Vec<Array1<f32>>>(&Loader::new()).await;
    let fetched = fetched.unwrap_or_else(|e| panic!("{e}"));
    assert!(fetched.loaded.value == value);
    assert_eq!(fetched.stats.requests, 5);
    assert_eq!(safejax_store::MAX_REQUEST, 8 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_tensors_load_with_nothing_to_fetch() {
    let value = vec![Array1::<f32>::zeros(0), array![1.0f32], Array1::zeros(0)];
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, store) in stores(dir.path()) {
        let remote = Remote::new(store, "empty.safetensors");
        let saved = remote.save(&Saver::new(), &value).await;
        saved.unwrap_or_else(|e| panic!("{name}: {e}"));
        let fetched = remote.load::<Vec<Array1<f32>>>(&Loader::new()).await;
        let fetched = fetched.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fetched.loaded.value, value, "{name}");
        let tree = remote
            .load_tree()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(tree.loaded.value.len(), 3, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_api_round_trips_through_each_store() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/flax_mlp.safetensors"
    );
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let tree = flax::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, store) in stores(dir.path()) {
        let remote = Remote::new(store, "flax_mlp.safetensors");
        let written = remote.save_tree(&Saver::new(), &tree).await;
        written.unwrap_or_else(|e| panic!("{name}: {e}"));
        let fetched = remote.load_tree().await;
        let fetched = fetched.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(fetched.loaded.value == tree, "{name}");
        assert_eq!(fetched.stats.bytes, bytes.len() as u64, "{name}");
    }
    // The local store wrote the file Python wrote.
    let written = std::fs::read(dir.path().join("flax_mlp.safetensors"));
    assert!(written.unwrap_or_else(|e| panic!("{e}")) == bytes);
}

#[test]
fn the_blocking_calls_take_file_urls() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("file://{}/model.safetensors", dir.path().display());
    let value = vec![array![1.0f32, 2.0], array![3.0f32]];
    blocking::save(&url, &value).unwrap_or_else(|e| panic!("{e}"));
    let on_disk =
        safejax_core::Loader::new().load::<Vec<Array1<f32>>>(dir.path().join("model.safetensors"));
    assert_eq!(on_disk.unwrap_or_else(|e| panic!("{e}")).value, value);
    let fetched = blocking::load::<Vec<Array1<f32>>>(&url).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fetched.loaded.value, value);
    let err = blocking::load::<Vec<Array1<f32>>>(&format!("{url}.missing")).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    let err = blocking::load::<Vec<Array1<f32>>>("nowhere://x/y").unwrap_err();
    assert!(
        err.to_string().starts_with("cannot open `nowhere://x/y`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_and_saves_run_as_spawned_tasks() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let remote = Remote::new(store, "model.safetensors");
    let value = weights();
    let saving = {
        let (remote, value) = (remote.clone(), value.clone());
        tokio::spawn(async move { remote.save(&Saver::new(), &value).await })
    };
    saving
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let loading = {
        let remote = remote.clone();
        tokio::spawn(async move { remote.load::<Vec<Array1<f32>>>(&Loader::new()).await })
    };
    let fetched = loading.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        fetched.unwrap_or_else(|e| panic!("{e}")).loaded.value,
        value
    );
    let tree = {
        let remote = remote.clone();
        tokio::spawn(async move { remote.load_tree().await })
    };
    let tree = tree.await.unwrap_or_else(|e| panic!("{e}"));
    let tree = tree.unwrap_or_else(|e| panic!("{e}")).loaded.value;
    assert_eq!(tree.len(), 5);
    let index = Remote::new(Arc::new(InMemory::new()), "model.safetensors.index.json");
    let saving = tokio::spawn(async move { index.save_tree(&Saver::new(), &tree).await });
    let saved = saving.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        saved.unwrap_or_else(|e| panic!("{e}")).requests,
        2,
        "a shard, the index"
    );
    let into = tokio::spawn(async move {
        let mut held = vec![Array1::<f32>::zeros(1000); 5];
        remote
            .load_into(&Loader::new(), &mut held)
            .await
            .map(|_| held)
    });
    let held = into.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(held.unwrap_or_else(|e| panic!("{e}")), value);
}

#[tokio::test(flavor = "current_thread")]
async fn loads_on_a_single_threaded_runtime_fetch_first_then_read() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let value = weights();
    let bytes = Saver::new()
        .to_bytes(&value)
        .unwrap_or_else(|e| panic!("{e}"));
    let path = object_store::path::Path::from("model.safetensors");
    object_store::ObjectStoreExt::put(store.as_ref(), &path, bytes.clone().into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let remote = Remote::new(store, "model.safetensors");
    let fetched = remote.load::<Vec<Array1<f32>>>(&Loader::new()).await;
    let fetched = fetched.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fetched.loaded.value, value);
    assert_eq!(fetched.stats.bytes, bytes.len() as u64);
    let mut held = vec![Array1::<f32>::zeros(1000); 5];
    let into = remote.load_into(&Loader::new(), &mut held).await;
    into.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(held, value);
    let tree = remote.load_tree().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tree.loaded.value.len(), 5);
}

#[tokio::test(flavor = "current_thread")]
async fn a_save_on_a_single_threaded_runtime_is_refused() {
    let remote = Remote::new(Arc::new(InMemory::new()), "model.safetensors");
    let err = remote.save(&Saver::new(), &weights()).await.unwrap_err();
    assert!(err.to_string().contains("multi-threaded"), "{err}");
    assert!(remote.size().await.is_err(), "nothing written");
}
