//! nginx serving a temporary directory on 127.0.0.1, honouring ranges, its access log counting
//! the bytes it sent: the web server of the HTTP tests and of the remote-load bench.

#![allow(dead_code)] // each user takes part of it

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use safejax_store::Remote;

/// An nginx serving `dir/www` on a free port of 127.0.0.1, stopped when dropped.
pub struct Nginx {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
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

pub fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

pub fn start(binary: &Path) -> Nginx {
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
    pub fn remote(&self, name: &str) -> Remote {
        let url = format!("http://127.0.0.1:{}/{name}", self.port);
        Remote::parse_with(&url, [("allow_http", "true")]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The bytes of the bodies nginx sent so far, and how many requests it answered.
    pub fn sent(&self) -> (u64, u64) {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines().fold((0, 0), |(bytes, requests), line| {
            let sent = line.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok());
            (bytes + sent.unwrap_or(0), requests + 1)
        })
    }
}
