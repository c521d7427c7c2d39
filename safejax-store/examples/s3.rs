//! A training checkpoint on S3, loaded for serving: the params fetched, Adam's moments not.
//!
//! Starts an S3 server (s3s-fs over a temporary directory on 127.0.0.1), saves a train state
//! (params and Adam's `mu` and `nu`, 24 MiB) to `s3://ckpt/run-7/state.safetensors`, then
//! loads it whole, and loads only the params, printing what each load fetched:
//!
//! ```text
//! cargo run -p safejax-store --example s3
//! ```
//!
//! Against another S3 server, give its endpoint and credentials as `object_store` reads them
//! from the environment (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_ALLOW_HTTP`) and call `Remote::parse(url)` instead of `Remote::parse_with`.

use std::error::Error;
use std::time::Instant;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use ndarray::{Array1, Array2};
use object_store::ObjectStoreExt;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use safejax_core::{Loader, Saver};
use safejax_derive::SafeParams;
use safejax_store::Remote;

#[derive(SafeParams, Clone, PartialEq, Debug)]
#[safejax(crate = "::safejax_core")]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

#[derive(SafeParams, Clone, PartialEq, Debug)]
#[safejax(crate = "::safejax_core")]
struct Mlp {
    layers: Vec<Dense>,
}

/// What training saves: `params.layers_0.kernel`, `mu.layers_0.kernel`, `nu.…`.
#[derive(SafeParams, PartialEq, Debug)]
#[safejax(crate = "::safejax_core", style = "flax")]
struct TrainState {
    params: Mlp,
    mu: Mlp,
    nu: Mlp,
}

/// What serving needs: the params.
#[derive(SafeParams, PartialEq, Debug)]
#[safejax(crate = "::safejax_core", style = "flax")]
struct Serving {
    params: Mlp,
}

fn mlp(seed: f32) -> Mlp {
    let layers = (0..4)
        .map(|i| Dense {
            kernel: Array2::from_shape_fn((512, 1024), |(r, c)| seed + (i * r + c) as f32),
            bias: Array1::from_elem(1024, seed),
        })
        .collect();
    Mlp { layers }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let root = tempfile::tempdir()?;
    let endpoint = start_server(root.path()).await?;
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_access_key_id", "example-key"),
        ("aws_secret_access_key", "example-secret"),
        ("aws_region", "us-east-1"),
        ("aws_allow_http", "true"),
    ];
    let remote = Remote::parse_with("s3://ckpt/run-7/state.safetensors", options)?;

    let state = TrainState {
        params: mlp(1.0),
        mu: mlp(0.1),
        nu: mlp(0.01),
    };
    let saved = remote.save(&Saver::new(), &state).await?;
    println!(
        "saved {}: {} bytes in {} parts",
        remote.url(),
        saved.bytes,
        saved.requests
    );

    // The baseline: the whole object in one GET, as Python's `fs.open(path).read()` reads it.
    let url = url::Url::parse(remote.url())?;
    let (store, path) = object_store::parse_url_opts(&url, options)?;
    let started = Instant::now();
    let file = store.get(&path).await?.bytes().await?;
    let read_time = started.elapsed();
    println!(
        "whole-file read:     fetched {:>10} bytes in 1 request,  {:>6.1} ms",
        file.len(),
        read_time.as_secs_f64() * 1e3
    );

    let started = Instant::now();
    let whole = remote.load::<TrainState>(&Loader::new()).await?;
    let whole_time = started.elapsed();
    assert!(whole.loaded.value == state);
    println!(
        "train state, whole:  fetched {:>10} bytes in {} requests, {:>6.1} ms",
        whole.stats.bytes,
        whole.stats.requests,
        whole_time.as_secs_f64() * 1e3
    );

    // `mu.*` and `nu.*` are left in the file, and never fetched.
    let started = Instant::now();
    let serving = remote
        .load::<Serving>(&Loader::new().allow_unexpected())
        .await?;
    let serving_time = started.elapsed();
    assert!(serving.loaded.value.params == state.params);
    println!(
        "params for serving:  fetched {:>10} bytes in {} requests, {:>6.1} ms ({} tensors left unread)",
        serving.stats.bytes,
        serving.stats.requests,
        serving_time.as_secs_f64() * 1e3,
        serving.loaded.ignored.len()
    );
    if serving.stats.bytes * 2 > whole.stats.bytes {
        return Err("the serving load fetched more than the params".into());
    }
    Ok(())
}

/// An S3 server over `root` with a bucket `ckpt`, on a free port; its URL.
async fn start_server(root: &std::path::Path) -> Result<String, Box<dyn Error>> {
    std::fs::create_dir(root.join("ckpt"))?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("{e:?}"))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single("example-key", "example-secret"));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        while let Ok((socket, _)) = listener.accept().await {
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(conn);
        }
    });
    Ok(endpoint)
}
