//! Loads and saves against a real S3 server (s3s-fs on 127.0.0.1, see `server`): typed loads
//! of whole files, of one collection and of parts, sharded checkpoints, and the failures a
//! remote store has.

mod common;
mod server;

use ndarray::{Array1, Array2, array};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use safejax_core::{Loader, PartSpec, SafeParams, Saver};
use safejax_derive::SafeParams;
use safejax_store::{Error, Remote, read_parts};

use common::{load_error, load_weights, save_weights};
use server::{KEY, start};

fn weights() -> Vec<Array1<f32>> {
    (0..6)
        .map(|i| Array1::from_iter((0..10_000).map(|j| (i * 10_000 + j) as f32)))
        .collect()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The bytes before the data of a safetensors file: its length and its header.
fn head_len(bytes: &[u8]) -> u64 {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap_or_else(|e| panic!("{e}")))
}

#[derive(SafeParams, PartialEq, Debug, Clone)]
#[safejax(crate = "::safejax_core")]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams, PartialEq, Debug, Clone)]
#[safejax(crate = "::safejax_core")]
struct Ema {
    average: Array2<f32>,
    hidden: Array2<f32>,
    counter: i32,
}

#[derive(SafeParams, PartialEq, Debug, Clone)]
#[safejax(crate = "::safejax_core")]
struct BatchNorm {
    scale: Array2<f32>,
    offset: Array2<f32>,
    #[safejax(collection = "state")]
    mean_ema: Ema,
    #[safejax(collection = "state")]
    var_ema: Ema,
}

/// Haiku's `hk.Linear`, `hk.BatchNorm`, `hk.Linear`: params and state, as Python saves them
/// in one file (`tests/fixtures/haiku_bn.safetensors`).
#[derive(SafeParams, PartialEq, Debug, Clone)]
#[safejax(crate = "::safejax_core", style = "haiku", collection = "params")]
struct Net {
    linear: Linear,
    batch_norm: BatchNorm,
    linear_1: Linear,
}

#[derive(SafeParams, PartialEq, Debug)]
#[safejax(crate = "::safejax_core")]
struct Norm {
    scale: Array2<f32>,
    offset: Array2<f32>,
}

/// The `params` collection of [`Net`] alone.
#[derive(SafeParams, PartialEq, Debug)]
#[safejax(crate = "::safejax_core", style = "haiku", collection = "params")]
struct NetParams {
    linear: Linear,
    batch_norm: Norm,
    linear_1: Linear,
}

/// [`weights`] saved to `run/model.safetensors.index.json` in three shards: the index, the
/// saver and the value.
async fn saved_sharded(server: &server::Server) -> (Remote, Saver, Vec<Array1<f32>>) {
    let remote = server.remote("run/model.safetensors.index.json");
    let saver = Saver::new().max_shard_size(100_000);
    let value = weights();
    save_weights(&remote, &saver, &value).await;
    (remote, saver, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_and_a_load_round_trip_through_the_server() {
    let server = start().await;
    let remote = server.remote("model.safetensors").part_size(5 << 20);
    let value = weights();
    let metadata = [("epoch".to_owned(), "3".to_owned())].into();
    let saver = Saver::new().metadata(metadata);
    let saved = remote.save(&saver, &value).await;
    let saved = saved.unwrap_or_else(|e| panic!("{e}"));
    let bytes = saver.to_bytes(&value).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((saved.requests, saved.bytes), (1, bytes.len() as u64));
    // Smaller than a part: put in one request, not a multipart upload.
    assert_eq!(server.log(), ["PUT /ckpt/model.safetensors"]);
    assert_eq!(
        remote.size().await.unwrap_or_else(|e| panic!("{e}")),
        bytes.len() as u64
    );

    // Larger: a multipart upload of 5 MiB parts.
    let big = server.remote("big.safetensors").part_size(5 << 20);
    let large: Vec<Array1<f32>> = (0..3).map(|_| Array1::zeros(1 << 20)).collect();
    let saved = big.save(&Saver::new(), &large).await;
    assert_eq!(saved.unwrap_or_else(|e| panic!("{e}")).requests, 3);
    let writes = server.log().into_iter().skip(2);
    let writes: Vec<String> = writes
        .map(|l| l.split('?').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        writes,
        [
            "POST /ckpt/big.safetensors",
            "PUT /ckpt/big.safetensors",
            "PUT /ckpt/big.safetensors",
            "PUT /ckpt/big.safetensors",
            "POST /ckpt/big.safetensors"
        ]
    );
    assert!(load_weights(&big).await.loaded.value == large);

    let sent_before = server.sent();
    let fetched = load_weights(&remote).await;
    assert_eq!(fetched.loaded.value, value);
    assert_eq!(fetched.loaded.metadata["epoch"], "3");
    assert_eq!(
        fetched.stats.bytes,
        bytes.len() as u64,
        "the whole file, once"
    );
    assert_eq!(
        server.sent() - sent_before,
        fetched.stats.bytes,
        "counted at the server"
    );
    // Header length, header, and the six adjacent tensors in one request.
    assert_eq!(fetched.stats.requests, 3);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_of_one_collection_fetches_the_header_and_that_collection() {
    let server = start().await;
    let file = fixture("haiku_bn.safetensors");
    server.put("haiku_bn.safetensors", file.clone()).await;
    let remote = server.remote("haiku_bn.safetensors");
    let local = Net::from_bytes(&file).unwrap_or_else(|e| panic!("{e}"));

    let params = remote
        .load::<NetParams>(&Loader::new().allow_unexpected())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(params.loaded.value.linear, local.linear);
    assert_eq!(params.loaded.value.batch_norm.scale, local.batch_norm.scale);
    assert_eq!(params.loaded.ignored.len(), 6, "the state, not fetched");
    // The params are the first 976 bytes of data: six tensors, one request.
    let params_bytes = head_len(&file) + 976;
    assert_eq!(params.stats.bytes, params_bytes);
    assert_eq!(params.stats.requests, 3);
    assert_eq!(server.sent(), params_bytes, "counted at the server");

    let whole = remote
        .load::<Net>(&Loader::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(whole.loaded.value, local);
    assert_eq!(whole.stats.bytes, file.len() as u64);

    // A header-only check fetches the header only.
    let checked = remote
        .check::<Net>(&Loader::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked.stats.bytes, head_len(&file));
    assert_eq!(
        server.sent(),
        params_bytes + file.len() as u64 + head_len(&file)
    );
    // A type that does not match fails on the header, and fetches no tensor.
    let err = remote.load::<NetParams>(&Loader::new()).await.unwrap_err();
    assert!(err.to_string().contains("state."), "{err}");
    assert_eq!(
        server.sent(),
        params_bytes + file.len() as u64 + 2 * head_len(&file)
    );
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_and_state_saved_apart_load_as_the_parts_of_one_value() {
    let server = start().await;
    let net = Net::from_bytes(&fixture("haiku_bn.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    let (params, state) = (server.remote("params.st"), server.remote("state.st"));
    let only = |collection: &str| Saver::new().only([collection]).without_collection();
    params
        .save(&only("params"), &net)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    state
        .save(&only("state"), &net)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = |collection: &str| PartSpec {
        collections: Some(vec![collection.to_owned()]),
        with_collection: false,
    };
    let parts = [(params, spec("params")), (state, spec("state"))];
    let fetched = read_parts::<Net>(&Loader::new(), &parts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fetched.loaded.value, net);
    assert_eq!(server.sent(), fetched.stats.bytes);

    // Only the params: the state object's header is read, none of its tensors.
    let (params, spec) = &parts[0];
    let params_only = params.read::<NetParams>(&Loader::new(), spec).await;
    let params_only = params_only.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(params_only.loaded.value.linear_1, net.linear_1);
    let size = params.size().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(params_only.stats.bytes, size);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_of_some_tensors_fetches_the_header_and_those() {
    let server = start().await;
    let remote = server.remote("model.safetensors");
    let value = weights();
    save_weights(&remote, &Saver::new(), &value).await;
    let bytes = Saver::new()
        .to_bytes(&value)
        .unwrap_or_else(|e| panic!("{e}"));
    let loader = Loader::new().allow_unexpected();
    let fetched = remote
        .load::<[Array1<f32>; 2]>(&loader)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fetched.loaded.value[..], value[..2]);
    assert_eq!(fetched.loaded.ignored, ["2", "3", "4", "5"]);
    assert_eq!(fetched.stats.bytes, head_len(&bytes) + 2 * 40_000);
    assert_eq!(server.sent(), fetched.stats.bytes);

    // An in-place load fetches what the value holds.
    let mut two = vec![Array1::<f32>::zeros(10_000); 2];
    let into = remote.load_into(&loader, &mut two).await;
    let into = into.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(two[..], value[..2]);
    assert_eq!(into.stats.bytes, head_len(&bytes) + 2 * 40_000);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_a_missing_object_are_errors_naming_the_url() {
    let server = start().await;
    let remote = server.remote("model.safetensors");
    save_weights(&remote, &Saver::new(), &weights()).await;
    let wrong = server.remote_as(KEY, "not-the-secret", "model.safetensors");
    let err = load_error(&wrong).await;
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot read `{}`", wrong.url())),
        "{text}"
    );
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(text.contains("access denied"), "{text}");
    let err = wrong.save(&Saver::new(), &weights()).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot write `{}`: access denied", wrong.url())),
        "{err}"
    );

    let missing = server.remote("nothing.safetensors");
    let err = load_error(&missing).await;
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read `{}`: not found", missing.url())),
        "{err}"
    );
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_before_the_load_fails_it_and_keeps_the_value() {
    let server = start().await;
    let remote = server.remote("model.safetensors");
    save_weights(&remote, &Saver::new(), &weights()).await;
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
    assert!(
        err.to_string().contains("cannot connect to the server"),
        "{err}"
    );
    assert_eq!(value, before, "nothing assigned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_between_the_header_and_the_tensors_fails_the_load() {
    let server = start().await;
    let remote = server.remote("model.safetensors");
    let value = weights();
    save_weights(&remote, &Saver::new(), &value).await;
    // The third read is the first of the tensors: the header length and the header come,
    // then the server goes away in the middle of the load.
    server.stop_at(http::Method::GET, 3);
    let mut held = vec![Array1::<f32>::zeros(10_000); 6];
    let err = remote
        .load_into(&Loader::new(), &mut held)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read `{}`: ", remote.url())),
        "{err}"
    );
    let text = err.to_string();
    let gone = ["the connection dropped", "cannot connect to the server"];
    assert!(gone.iter().any(|cause| text.contains(cause)), "{text}");
    assert_eq!(
        held,
        vec![Array1::<f32>::zeros(10_000); 6],
        "nothing assigned"
    );
    let gets = server
        .log()
        .iter()
        .filter(|l| l.starts_with("GET "))
        .count();
    assert_eq!(gets, 3, "{:?}", server.log());
    let bytes = Saver::new()
        .to_bytes(&value)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        server.sent(),
        head_len(&bytes),
        "the header length and the header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_a_stopped_server_leaves_no_object() {
    let server = start().await;
    let remote = server.remote("big.safetensors").part_size(5 << 20);
    let big: Vec<Array1<f32>> = (0..8).map(|_| Array1::zeros(1 << 20)).collect();
    // Parts are uploaded with PUT: the second never gets an answer.
    server.stop_at(http::Method::PUT, 2);
    let err = remote.save(&Saver::new(), &big).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot write `{}`", remote.url())),
        "{err}"
    );
    // The same directory served again: the object was never completed.
    let server = server.restart().await;
    let err = server
        .store()
        .head(&Path::from("big.safetensors"))
        .await
        .unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_is_aborted_and_its_parts_removed() {
    let server = start().await;
    // One part in flight: the failure is seen while the file is still being written.
    let remote = server
        .remote("big.safetensors")
        .part_size(5 << 20)
        .concurrency(1);
    let big: Vec<Array1<f32>> = (0..8).map(|_| Array1::zeros(1 << 20)).collect();
    server.fail_from(http::Method::PUT, 2);
    let err = remote.save(&Saver::new(), &big).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot write `{}`", remote.url())),
        "{err}"
    );
    let log = server.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("DELETE /ckpt/big.safetensors?uploadId=")),
        "the upload is aborted: {log:?}"
    );
    assert_eq!(server.upload_leftovers(), Vec::<String>::new());
    assert_eq!(server.listing(""), Vec::<String>::new());
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_checkpoint_made_elsewhere_loads_from_its_index() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let index = dir.path().join("model.safetensors.index.json");
    let value = weights();
    Saver::new()
        .max_shard_size(100_000)
        .save(&value, &index)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_else(|| panic!("a file name"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        server.put(&format!("run/{name}"), bytes).await;
        names.push(name);
    }
    assert_eq!(names.len(), 4, "an index and three shards: {names:?}");
    let remote = server.remote("run/model.safetensors.index.json");
    let fetched = load_weights(&remote).await;
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
    assert_eq!(server.sent(), total);

    // One shard gone: the load names the missing shard's URL.
    server
        .store()
        .delete(&Path::from("run/model-00002-of-00003.safetensors"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let err = load_error(&remote).await;
    assert!(
        err.to_string()
            .contains("run/model-00002-of-00003.safetensors`: not found"),
        "{err}"
    );
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_save_writes_its_shards_then_its_index() {
    let server = start().await;
    let (remote, saver, value) = saved_sharded(&server).await;
    let shards = [
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
    ];
    let mut expected: Vec<&str> = shards.to_vec();
    expected.push("model.safetensors.index.json");
    assert_eq!(server.listing("run"), expected);
    // Every write of a shard comes before the index's.
    let writes: Vec<String> = server
        .log()
        .into_iter()
        .filter(|l| l.starts_with("PUT ") || l.starts_with("POST "))
        .collect();
    let last = writes.last().cloned().unwrap_or_default();
    assert_eq!(
        last, "PUT /ckpt/run/model.safetensors.index.json",
        "{writes:?}"
    );
    assert!(
        writes[..writes.len() - 1]
            .iter()
            .all(|l| l.contains("-of-00003"))
    );

    // The same as a local sharded save, byte for byte.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    saver
        .save(&value, dir.path().join("model.safetensors.index.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    for name in &expected {
        let local = std::fs::read(dir.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
        let path = server.root.path().join("ckpt/run").join(name);
        let remote_bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(local == remote_bytes, "{name} differs");
    }
    let fetched = load_weights(&remote).await;
    assert_eq!(fetched.loaded.value, value);

    // Saved again: the new shards take names the index in place does not hold, and the old
    // ones are removed once the new index is written.
    let update: Vec<Array1<f32>> = value.iter().map(|a| a * 2.0).collect();
    save_weights(&remote, &saver, &update).await;
    assert_eq!(
        server.listing("run"),
        [
            "model-00001-of-00003.1.safetensors",
            "model-00002-of-00003.1.safetensors",
            "model-00003-of-00003.1.safetensors",
            "model.safetensors.index.json",
        ]
    );
    let fetched = load_weights(&remote).await;
    assert_eq!(fetched.loaded.value, update);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_save_cut_midway_leaves_the_checkpoint_in_place() {
    let server = start().await;
    let (remote, saver, value) = saved_sharded(&server).await;
    let puts = server
        .log()
        .iter()
        .filter(|l| l.starts_with("PUT "))
        .count() as u64;
    // The second shard of the next save is cut.
    server.stop_at(http::Method::PUT, puts + 2);
    let update: Vec<Array1<f32>> = value.iter().map(|a| a * 2.0).collect();
    let err = remote.save(&saver, &update).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("run/model-00002-of-00003.1.safetensors`"),
        "{err}"
    );
    let server = server.restart().await;
    let remote = server.remote("run/model.safetensors.index.json");
    let fetched = load_weights(&remote).await;
    assert_eq!(fetched.loaded.value, value, "the old checkpoint, whole");

    // A failure the store reports (rather than a server gone) removes the shards written.
    server.fail_from(http::Method::PUT, 3);
    let err = remote.save(&saver, &update).await.unwrap_err();
    assert!(err.to_string().starts_with("cannot write `"), "{err}");
    let listing = server.listing("run");
    assert!(
        !listing.contains(&"model-00001-of-00003.1.safetensors".to_owned()),
        "{listing:?}"
    );
    server.task.abort();
}

/// The variable that tells [`loads_from_the_url_in_the_environment`] what to load.
const URL_VARIABLE: &str = "SAFEJAX_TEST_S3_URL";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_takes_its_endpoint_and_credentials_from_the_environment() {
    let server = start().await;
    let value = weights();
    save_weights(
        &server.remote("env/model.safetensors"),
        &Saver::new(),
        &value,
    )
    .await;
    // This test binary again, running only the test below, with nothing in its environment
    // but what an S3 user sets.
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let endpoint = server.endpoint.clone();
    let child = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["--exact", "loads_from_the_url_in_the_environment"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env_clear()
            .env(URL_VARIABLE, "s3://ckpt/env/model.safetensors")
            .env("AWS_ENDPOINT", endpoint)
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", server::SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ALLOW_HTTP", "true")
            .output()
    });
    let output = child.await.unwrap_or_else(|e| panic!("{e}"));
    let output = output.unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = format!("loaded 6 tensors, {} bytes fetched", server.sent());
    assert!(stdout.contains(&expected), "{stdout}");
    server.task.abort();
}

/// Loads what [`URL_VARIABLE`] names with the blocking call, configured from the environment
/// alone; run by the test above.
#[test]
#[ignore = "run by a_url_takes_its_endpoint_and_credentials_from_the_environment"]
fn loads_from_the_url_in_the_environment() {
    let url = std::env::var(URL_VARIABLE).unwrap_or_else(|e| panic!("{URL_VARIABLE}: {e}"));
    let fetched = safejax_store::blocking::load::<Vec<Array1<f32>>>(&url);
    let fetched = fetched.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fetched.loaded.value, weights());
    println!(
        "loaded {} tensors, {} bytes fetched",
        fetched.loaded.value.len(),
        fetched.stats.bytes
    );
}
