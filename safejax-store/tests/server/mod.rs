//! A real S3 server for the tests: s3s-fs, serving a temporary directory on 127.0.0.1, reached
//! through object_store's S3 client over HTTP. The server logs every request it answers and
//! counts the bytes of the objects it sends, and can be made to stop at a given request, as a
//! server that goes away mid-load or mid-upload.

#![allow(dead_code)] // each test file uses part of it

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ObjectStoreExt, RetryConfig};
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use safejax_store::Remote;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub const KEY: &str = "test-access-key";
pub const SECRET: &str = "test-secret-key";
pub const BUCKET: &str = "ckpt";

/// A running s3s-fs server over a temporary directory with one bucket.
pub struct Server {
    pub endpoint: String,
    pub task: JoinHandle<()>,
    pub root: tempfile::TempDir,
    gate: Arc<Gate>,
}

/// What the server saw, and when it stops.
#[derive(Default)]
struct Gate {
    /// `METHOD /path?query` of every request, in the order they came.
    log: Mutex<Vec<String>>,
    /// The `Content-Length` of every object body sent (GET), summed.
    sent: AtomicU64,
    /// Stop at the request of this method and number (1 for the first), before answering it.
    stop_at: Cue,
    stop: Notify,
    /// Answer every request of this method from this number on with a server error.
    fail_from: Cue,
}

/// A method and a request number, when set.
#[derive(Default)]
struct Cue(Mutex<Option<(http::Method, u64)>>);

impl Cue {
    fn set(&self, method: http::Method, nth: u64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((method, nth));
    }

    /// Whether the cue is set for `method` and its number passes `test`.
    fn is(&self, method: &http::Method, test: impl Fn(u64) -> bool) -> bool {
        let cue = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cue.as_ref().is_some_and(|(m, n)| m == method && test(*n))
    }
}

/// The S3 service, with the [`Gate`] in front.
#[derive(Clone)]
struct Gated {
    inner: S3Service,
    gate: Arc<Gate>,
}

impl hyper::service::Service<http::Request<Incoming>> for Gated {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let method = req.method().clone();
        let line = format!("{method} {}", req.uri());
        let nth = {
            let mut log = self.gate.log.lock().unwrap_or_else(|e| e.into_inner());
            log.push(line);
            log.iter()
                .filter(|l| l.starts_with(&format!("{method} ")))
                .count() as u64
        };
        let stop_here = self.gate.stop_at.is(&method, |n| n == nth);
        let fail_here = self.gate.fail_from.is(&method, |n| nth >= n);
        if fail_here {
            let response = http::Response::builder()
                .status(http::StatusCode::INTERNAL_SERVER_ERROR)
                .body(s3s::Body::from("failed on purpose".to_owned()))
                .unwrap_or_else(|e| panic!("{e}"));
            return Box::pin(async move { Ok(response) });
        }
        let gate = self.gate.clone();
        let answer = hyper::service::Service::call(&self.inner, req);
        Box::pin(async move {
            if stop_here {
                // The server task ends, and with it every connection, this one included.
                gate.stop.notify_one();
                std::future::pending::<()>().await;
            }
            let response = answer.await?;
            if method == http::Method::GET && response.status().is_success() {
                let len = response
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                gate.sent.fetch_add(len.unwrap_or(0), Ordering::SeqCst);
            }
            Ok(response)
        })
    }
}

/// A server over a new directory holding the bucket.
pub async fn start() -> Server {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(root.path().join(BUCKET)).unwrap_or_else(|e| panic!("{e}"));
    start_in(root).await
}

/// A server over `root`, which holds the bucket already.
pub async fn start_in(root: tempfile::TempDir) -> Server {
    let fs = s3s_fs::FileSystem::new(root.path()).unwrap_or_else(|e| panic!("{e:?}"));
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(KEY, SECRET));
    let gate = Arc::new(Gate::default());
    let service = Gated {
        inner: builder.build(),
        gate: gate.clone(),
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let stopper = gate.clone();
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        // Dropped with this task when the server stops, which ends every connection.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = stopper.stop.notified() => return,
            };
            let Ok((socket, _)) = accepted else { return };
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
        root,
        gate,
    }
}

impl Server {
    /// The S3 client of this server, with these credentials; few retries, so that a stopped
    /// server fails a request soon.
    pub fn store_as(&self, key: &str, secret: &str) -> AmazonS3 {
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(5),
            ..RetryConfig::default()
        };
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id(key)
            .with_secret_access_key(secret)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_retry(retry)
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The S3 client with the right credentials.
    pub fn store(&self) -> AmazonS3 {
        self.store_as(KEY, SECRET)
    }

    /// The object `path` of the bucket, with these credentials.
    pub fn remote_as(&self, key: &str, secret: &str, path: &str) -> Remote {
        Remote::new(Arc::new(self.store_as(key, secret)), path)
    }

    /// The object `path` of the bucket.
    pub fn remote(&self, path: &str) -> Remote {
        self.remote_as(KEY, SECRET, path)
    }

    /// Puts `bytes` at `path`, as any other S3 client would.
    pub async fn put(&self, path: &str, bytes: Vec<u8>) {
        let path = object_store::path::Path::from(path);
        self.store()
            .put(&path, bytes.into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The bytes of object bodies the server has sent so far.
    pub fn sent(&self) -> u64 {
        self.gate.sent.load(Ordering::SeqCst)
    }

    /// Every request so far, as `METHOD /path?query`.
    pub fn log(&self) -> Vec<String> {
        self.gate
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes the server stop when the `nth` request of `method` (counting those already
    /// answered) comes, before it is answered.
    pub fn stop_at(&self, method: http::Method, nth: u64) {
        self.gate.stop_at.set(method, nth);
    }

    /// Makes the server answer every request of `method` from the `nth` on (counting those
    /// already answered) with a server error, as a failing disk would.
    pub fn fail_from(&self, method: http::Method, nth: u64) {
        self.gate.fail_from.set(method, nth);
    }

    /// The names of the files in the server's directory that are not objects of the bucket:
    /// the parts of unfinished multipart uploads and their records.
    pub fn upload_leftovers(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.path())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.starts_with(".upload"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The names of the objects under `dir/` in the bucket, sorted.
    pub fn listing(&self, dir: &str) -> Vec<String> {
        let dir = self.root.path().join(BUCKET).join(dir);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Stops the server and serves its directory again, on another port.
    pub async fn restart(self) -> Server {
        self.task.abort();
        let _ = self.task.await;
        start_in(self.root).await
    }
}
