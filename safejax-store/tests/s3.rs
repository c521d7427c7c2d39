//! Loads and saves against a real S3 server: s3s-fs, serving a temporary directory on
//! 127.0.0.1, reached through object_store's S3 client over HTTP.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use ndarray::{Array1, array};
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use safejax_core::{Loader, Saver};
use safejax_store::{Error, Remote};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const KEY: &str = "test-access-key";
const SECRET: &str = "test-secret-key";
const BUCKET: &str = "ckpt";

/// A running s3s-fs server over a temporary directory with one bucket.
struct Server {
    endpoint: String,
    task: JoinHandle<()>,
    _root: tempfile::TempDir,
}

async fn start() -> Server {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(root.path().join(BUCKET)).unwrap_or_else(|e| panic!("{e}"));
    start_in(root).await
}

/// A server over `root`, which holds the bucket already.
async fn start_in(root: tempfile::TempDir) -> Server {
    let fs = s3s_fs::FileSystem::new(root.path()).unwrap_or_else(|e| panic!("{e:?}"));
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(KEY, SECRET));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        // Dropped with this task when the server is stopped, which ends every connection.
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((socket, _)) = listener.accept().await {
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            connections.spawn(async move {
                let _ = conn.await;
            });
            while connections.try_join_next().is_some() {}
        }
    });
    Server {
        endpoint: format!("http://{addr}"),
        task,
        _root: root,
    }
}

impl Server {
    fn remote(&self, key: &str, secret: &str, path: &str) -> Remote {
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id(key)
            .with_secret_access_key(secret)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        Remote::new(Arc::new(store), path)
    }
}

fn weights() -> Vec<Array1<f32>> {
    (0..6)
        .map(|i| Array1::from_iter((0..10_000).map(|j| (i * 10_000 + j) as f32)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_and_a_load_round_trip_through_the_server() {
    let server = start().await;
    let remote = server
        .remote(KEY, SECRET, "model.safetensors")
        .part_size(5 << 20);
    let value = weights();
    let metadata = [("epoch".to_owned(), "3".to_owned())].into();
    let saver = Saver::new().metadata(metadata);
    remote
        .save(&saver, &value)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bytes = saver.to_bytes(&value).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        remote.size().await.unwrap_or_else(|e| panic!("{e}")),
        bytes.len() as u64
    );
    let fetched = remote
        .load::<Vec<Array1<f32>>>(&Loader::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fetched.loaded.value, value);
    assert_eq!(fetched.loaded.metadata["epoch"], "3");
    assert_eq!(
        fetched.stats.bytes,
        bytes.len() as u64,
        "the whole file, once"
    );
    // Header length, header, and the six adjacent tensors in one request.
    assert_eq!(fetched.stats.requests, 3);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_of_part_of_a_file_fetches_the_header_and_that_part() {
    let server = start().await;
    let remote = server.remote(KEY, SECRET, "model.safetensors");
    let value = weights();
    remote
        .save(&Saver::new(), &value)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bytes = Saver::new()
        .to_bytes(&value)
        .unwrap_or_else(|e| panic!("{e}"));
    let head = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap_or_else(|e| panic!("{e}")));
    let loader = Loader::new().allow_unexpected();
    let fetched = remote
        .load::<[Array1<f32>; 2]>(&loader)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fetched.loaded.value[..], value[..2]);
    assert_eq!(fetched.loaded.ignored, ["2", "3", "4", "5"]);
    assert_eq!(fetched.stats.bytes, head + 2 * 40_000);
    // A header-only check fetches the header only.
    let checked = remote
        .check::<Vec<Array1<f32>>>(&Loader::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked.stats.bytes, head);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_a_missing_object_are_errors_naming_the_url() {
    let server = start().await;
    let remote = server.remote(KEY, SECRET, "model.safetensors");
    remote
        .save(&Saver::new(), &weights())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let wrong = server.remote(KEY, "not-the-secret", "model.safetensors");
    let err = wrong
        .load::<Vec<Array1<f32>>>(&Loader::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot read `{}`", wrong.url())),
        "{text}"
    );
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(text.contains("access denied"), "{text}");

    let missing = server.remote(KEY, SECRET, "nothing.safetensors");
    let err = missing
        .load::<Vec<Array1<f32>>>(&Loader::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read `{}`: not found", missing.url())),
        "{err}"
    );
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_the_load_and_keeps_the_value() {
    let server = start().await;
    let remote = server.remote(KEY, SECRET, "model.safetensors");
    remote
        .save(&Saver::new(), &weights())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    server.task.abort();
    let _ = server.task.await;
    let mut value = vec![array![0.0f32]; 6];
    let before = value.clone();
    let remote = remote.concurrency(1);
    let err = remote
        .load_into(&Loader::new(), &mut value)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(remote.url()), "{err}");
    assert_eq!(value, before, "nothing assigned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_a_stopped_server_leaves_no_object() {
    let server = start().await;
    let remote = server
        .remote(KEY, SECRET, "big.safetensors")
        .part_size(5 << 20);
    let big: Vec<Array1<f32>> = (0..16).map(|_| Array1::zeros(1 << 20)).collect();
    let task = server.task;
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        task.abort();
    });
    let saver = Saver::new();
    let err = remote.save(&saver, &big).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot write `{}`", remote.url())),
        "{err}"
    );
    let _ = stopper.await;
    // The same directory served again: the object was never completed.
    let server = start_in(server._root).await;
    let store = server_store(&server);
    let err = store
        .head(&Path::from("big.safetensors"))
        .await
        .unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    server.task.abort();
}

fn server_store(server: &Server) -> object_store::aws::AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_access_key_id(KEY)
        .with_secret_access_key(SECRET)
        .with_allow_http(true)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_checkpoint_loads_from_its_index() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let index = dir.path().join("model.safetensors.index.json");
    let value = weights();
    Saver::new()
        .max_shard_size(100_000)
        .save(&value, &index)
        .unwrap_or_else(|e| panic!("{e}"));
    let store = server_store(&server);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_else(|| panic!("a file name"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        store
            .put(&Path::from(format!("run/{name}")), bytes.into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        names.push(name);
    }
    assert_eq!(names.len(), 4, "an index and three shards: {names:?}");
    let remote = server.remote(KEY, SECRET, "run/model.safetensors.index.json");
    let fetched = remote
        .load::<Vec<Array1<f32>>>(&Loader::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fetched.loaded.value, value);
    assert!(fetched.loaded.warnings.is_empty());
    let total: u64 = names
        .iter()
        .map(|n| std::fs::metadata(dir.path().join(n)).map_or(0, |m| m.len()))
        .sum();
    assert_eq!(
        fetched.stats.bytes, total,
        "the index and every shard, once"
    );

    // One shard gone: the load names the index and the missing shard's URL.
    store
        .delete(&Path::from("run/model-00002-of-00003.safetensors"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let err = remote
        .load::<Vec<Array1<f32>>>(&Loader::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("run/model-00002-of-00003.safetensors`: not found"),
        "{err}"
    );
    server.task.abort();
}
