//! Loads over HTTP from a real web server that honours ranges: nginx, serving a temporary
//! directory on 127.0.0.1, its access log counting the bytes it sent. Skipped, loudly, when no
//! `nginx` binary is installed (`.ci/run` installs one).

mod common;
mod nginx;

use std::time::Instant;

use ndarray::Array1;
use object_store::ObjectStoreExt;
use safejax_core::{Loader, Saver};

use common::{load_error, load_weights};
use nginx::{nginx_binary, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_load_over_http_costs_the_header_and_the_tensors_it_reads() {
    let Some(binary) = nginx_binary() else {
        eprintln!("SKIPPED: no nginx binary (apt-get install nginx-light); HTTP loads untested");
        return;
    };
    let nginx = start(&binary);
    let weights: Vec<Array1<f32>> = (0..8)
        .map(|i| Array1::from_elem(50_000, i as f32))
        .collect();
    let bytes = Saver::new()
        .to_bytes(&weights)
        .unwrap_or_else(|e| panic!("{e}"));
    let www = nginx.dir.path().join("www/model.safetensors");
    std::fs::write(&www, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let remote = nginx.remote("model.safetensors");

    let whole = load_weights(&remote).await;
    assert_eq!(whole.loaded.value, weights);
    assert_eq!(whole.stats.bytes, bytes.len() as u64);
    assert_eq!(
        nginx.sent(),
        (whole.stats.bytes, whole.stats.requests),
        "counted at the server"
    );

    let partial = remote
        .load::<[Array1<f32>; 1]>(&Loader::new().allow_unexpected())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(partial.loaded.value[0], weights[0]);
    let head = bytes.len() as u64 - 8 * 200_000;
    assert_eq!(partial.stats.bytes, head + 200_000);
    let (sent, requests) = nginx.sent();
    assert_eq!(
        (sent - whole.stats.bytes, requests - whole.stats.requests),
        (partial.stats.bytes, partial.stats.requests)
    );

    let missing = nginx.remote("none.safetensors");
    let err = load_error(&missing).await;
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read `{}`: not found", missing.url())),
        "{err}"
    );
}

/// A 32 MiB file of eight 4 MiB tensors, loaded whole and one tensor of it; prints both
/// (`cargo test -p safejax-store --test http -- --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_load_against_a_whole_one() {
    let Some(binary) = nginx_binary() else {
        eprintln!("SKIPPED: no nginx binary (apt-get install nginx-light); HTTP loads untested");
        return;
    };
    let nginx = start(&binary);
    let weights: Vec<Array1<f32>> = (0..8)
        .map(|i| Array1::from_elem(1 << 20, i as f32))
        .collect();
    let bytes = Saver::new()
        .to_bytes(&weights)
        .unwrap_or_else(|e| panic!("{e}"));
    let www = nginx.dir.path().join("www/big.safetensors");
    std::fs::write(&www, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let remote = nginx.remote("big.safetensors");

    // The baseline: the whole file in one GET, as Python's `fs.open(path).read()` reads it.
    let url = url::Url::parse(remote.url()).unwrap_or_else(|e| panic!("{e}"));
    let (store, path) = object_store::parse_url_opts(&url, [("allow_http", "true")])
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let file = store.get(&path).await.unwrap_or_else(|e| panic!("{e}"));
    let file = file.bytes().await.unwrap_or_else(|e| panic!("{e}"));
    let read_time = started.elapsed();
    assert!(file[..] == bytes[..]);

    let started = Instant::now();
    let whole = load_weights(&remote).await;
    let whole_time = started.elapsed();
    let started = Instant::now();
    let partial = remote
        .load::<[Array1<f32>; 1]>(&Loader::new().allow_unexpected())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let partial_time = started.elapsed();
    assert_eq!(partial.loaded.value[0], weights[0]);
    eprintln!(
        "whole-file read: {} bytes in 1 request, {read_time:?}; whole load: {} bytes in {} \
         requests, {whole_time:?}; one tensor of eight: {} bytes in {} requests, {partial_time:?}",
        file.len(),
        whole.stats.bytes,
        whole.stats.requests,
        partial.stats.bytes,
        partial.stats.requests
    );
    assert!(partial.stats.bytes * 7 < whole.stats.bytes);
    assert_eq!(
        nginx.sent().0,
        file.len() as u64 + whole.stats.bytes + partial.stats.bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ignoring_ranges_is_an_error_naming_the_url() {
    let Some(binary) = nginx_binary() else {
        eprintln!("SKIPPED: no nginx binary (apt-get install nginx-light); HTTP loads untested");
        return;
    };
    let nginx = start(&binary);
    let weights: Vec<Array1<f32>> = (0..2).map(|i| Array1::from_elem(1000, i as f32)).collect();
    let bytes = Saver::new()
        .to_bytes(&weights)
        .unwrap_or_else(|e| panic!("{e}"));
    let www = nginx.dir.path().join("www/whole");
    std::fs::create_dir(&www).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(www.join("model.safetensors"), &bytes).unwrap_or_else(|e| panic!("{e}"));
    let remote = nginx.remote("whole/model.safetensors");
    let err = load_error(&remote).await;
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read `{}`", remote.url())),
        "{err}"
    );
    assert!(
        err.to_string().contains("Range request not supported"),
        "{err}"
    );
}
