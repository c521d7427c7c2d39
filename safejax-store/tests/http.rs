//! Loads over HTTP from a real web server that honours ranges: nginx, serving a temporary
//! directory on 127.0.0.1, its access log counting the bytes it sent. Skipped, loudly, when no
//! `nginx` binary is installed (`.ci/run` installs one).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ndarray::Array1;
use safejax_core::{Loader, Saver};
use safejax_store::Remote;

/// An nginx serving `dir/www` on a free port of 127.0.0.1, stopped when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // A graceful stop: the master ends its workers, which a kill would leave behind.
        let pid = self.child.id().to_string();
        let stopped = Command::new("kill").args(["-TERM", &pid]).status();
        if !stopped.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

fn start(binary: &Path) -> Nginx {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path().display();
    std::fs::create_dir(dir.path().join("www")).unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    // `user root` only matters when the tests run as root: the workers then read the
    // temporary directory, which only its owner may.
    let user = if std::env::var("USER").as_deref() == Ok("root") {
        "user root;"
    } else {
        ""
    };
    let conf = format!(
        "{user}
worker_processes 1;
daemon off;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    log_format sent '$request_method $status $body_bytes_sent';
    access_log {d}/access.log sent;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        # A server that ignores ranges, sending whole files.
        location /whole/ {{ max_ranges 0; }}
    }}
}}
"
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start nginx: {e}"));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx { child, dir, port }
}

impl Nginx {
    fn remote(&self, name: &str) -> Remote {
        let url = format!("http://127.0.0.1:{}/{name}", self.port);
        Remote::parse_with(&url, [("allow_http", "true")]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The bytes of the bodies nginx sent so far, and how many requests it answered.
    fn sent(&self) -> (u64, u64) {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines().fold((0, 0), |(bytes, requests), line| {
            let sent = line.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok());
            (bytes + sent.unwrap_or(0), requests + 1)
        })
    }
}

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

    let whole = remote
        .load::<Vec<Array1<f32>>>(&Loader::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
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
    let err = missing
        .load::<Vec<Array1<f32>>>(&Loader::new())
        .await
        .unwrap_err();
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

    let started = Instant::now();
    let whole = remote
        .load::<Vec<Array1<f32>>>(&Loader::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let whole_time = started.elapsed();
    let started = Instant::now();
    let partial = remote
        .load::<[Array1<f32>; 1]>(&Loader::new().allow_unexpected())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let partial_time = started.elapsed();
    assert_eq!(partial.loaded.value[0], weights[0]);
    eprintln!(
        "whole load: {} bytes in {} requests, {whole_time:?}; one tensor of eight: {} bytes in {} \
         requests, {partial_time:?}",
        whole.stats.bytes, whole.stats.requests, partial.stats.bytes, partial.stats.requests
    );
    assert!(partial.stats.bytes * 7 < whole.stats.bytes);
    assert_eq!(nginx.sent().0, whole.stats.bytes + partial.stats.bytes);
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
    let err = remote
        .load::<Vec<Array1<f32>>>(&Loader::new())
        .await
        .unwrap_err();
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
