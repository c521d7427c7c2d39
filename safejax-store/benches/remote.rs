//! Loads over HTTP from nginx on 127.0.0.1: time, bytes fetched and peak resident memory of a
//! streamed load, of a load on a single-threaded runtime (every range fetched, then read), and
//! of a load of one tensor, against the whole file read in one GET (what Python safejax does
//! through `fs.open(path).read()`) and that read followed by a load from the bytes (what glue
//! code over an object store does).
//!
//! Each contender runs in a child process of its own, three times; the table has the median
//! time and the largest peak. `VmHWM` (from `/proc/self/status`) is reset just before the load
//! (`/proc/self/clear_refs`), so the peak is what the load itself holds.
//!
//! `cargo bench -p safejax-store --bench remote` measures a 256 MiB file of 32 tensors; run
//! without `--bench` (as `cargo test --benches` does) a 4 MiB one. Needs `nginx`.

#[path = "../tests/nginx/mod.rs"]
mod nginx;

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use ndarray::Array1;
use object_store::ObjectStoreExt;
use safejax_core::{Loader, Saver};
use safejax_store::Remote;

const CHILD: &str = "--remote-child";
const CONTENDERS: [&str; 5] = [
    "whole-get",
    "whole-get+load",
    "streamed",
    "fetched-first",
    "one-tensor",
];
const RUNS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == CHILD) {
        let [url, contender] = &args[at + 1..] else {
            panic!("usage: {CHILD} <url> <contender>");
        };
        child(url, contender);
        return;
    }
    let Some(binary) = nginx::nginx_binary() else {
        eprintln!("SKIPPED: no nginx binary (apt-get install nginx-light)");
        return;
    };
    let (tensors, len) = if args.iter().any(|a| a == "--bench") {
        (32, 2 << 20)
    } else {
        (16, 64 << 10)
    };
    let server = nginx::start(&binary);
    let model: Vec<Array1<f32>> = (0..tensors)
        .map(|i| Array1::from_elem(len, i as f32))
        .collect();
    let bytes = Saver::new().to_bytes(&model).expect("the model's bytes");
    let file = server.dir.path().join("www/model.safetensors");
    std::fs::write(&file, &bytes).expect("write the file");
    drop(model);
    let url = server.remote("model.safetensors").url().to_owned();
    let file_mib = bytes.len() as f64 / f64::from(1 << 20);
    println!("{tensors} tensors, {file_mib:.0} MiB, from nginx on 127.0.0.1\n");
    println!(
        "| contender | bytes fetched | requests | time | × whole-get | peak RSS | × file size |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut whole_get = None;
    for contender in CONTENDERS {
        let mut runs: Vec<[f64; 4]> = (0..RUNS).map(|_| run_child(&url, contender)).collect();
        runs.sort_by(|a, b| a[2].total_cmp(&b[2]));
        let [bytes_fetched, requests, _, _] = runs[RUNS / 2];
        let ms = runs[RUNS / 2][2];
        let peak_kib = runs.iter().map(|r| r[3]).fold(0.0, f64::max);
        let base = *whole_get.get_or_insert(ms);
        let peak_mib = peak_kib / 1024.0;
        println!(
            "| {contender} | {bytes_fetched:.0} | {requests:.0} | {ms:.1} ms | {:.2} | {peak_mib:.1} MiB | {:.2} |",
            ms / base,
            peak_mib / file_mib
        );
    }
}

/// Runs one child: bytes fetched, requests, milliseconds, peak KiB above the baseline.
fn run_child(url: &str, contender: &str) -> [f64; 4] {
    let exe = std::env::current_exe().expect("the bench's own path");
    let output = Command::new(exe)
        .args([CHILD, url, contender])
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{contender} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let numbers: Vec<f64> = stdout
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect();
    numbers[..].try_into().expect("four numbers")
}

/// Does one load and prints bytes fetched, requests, milliseconds and peak KiB.
fn child(url: &str, contender: &str) {
    let remote = Remote::parse_with(url, [("allow_http", "true")]).expect("the URL");
    let single = contender == "fetched-first";
    let runtime = if single {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    let runtime = runtime.expect("a runtime");
    runtime.block_on(async {
        let parsed = url::Url::parse(url).expect("the URL");
        let (store, path) =
            object_store::parse_url_opts(&parsed, [("allow_http", "true")]).expect("the store");
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the high-water mark");
        let baseline = high_water_mark();
        let started = Instant::now();
        let (bytes, requests, value) = match contender {
            "whole-get" => {
                let got = store.get(&path).await.expect("get");
                let got = got.bytes().await.expect("the body");
                (got.len() as u64, 1, black_box(got.len()))
            }
            "whole-get+load" => {
                let got = store.get(&path).await.expect("get");
                let got = got.bytes().await.expect("the body");
                let loaded = Loader::new().from_bytes::<Vec<Array1<f32>>>(&got);
                let loaded = loaded.expect("load");
                (got.len() as u64, 1, black_box(loaded.value.len()))
            }
            "streamed" | "fetched-first" => {
                let fetched = remote.load::<Vec<Array1<f32>>>(&Loader::new()).await;
                let fetched = fetched.expect("load");
                let stats = fetched.stats;
                (
                    stats.bytes,
                    stats.requests,
                    black_box(fetched.loaded.value.len()),
                )
            }
            "one-tensor" => {
                let loader = Loader::new().allow_unexpected();
                let fetched = remote.load::<[Array1<f32>; 1]>(&loader).await;
                let fetched = fetched.expect("load");
                let stats = fetched.stats;
                (
                    stats.bytes,
                    stats.requests,
                    black_box(fetched.loaded.value.len()),
                )
            }
            other => panic!("no contender {other}"),
        };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let peak = high_water_mark();
        black_box(value);
        println!("{bytes} {requests} {ms} {}", peak - baseline);
    });
}

fn high_water_mark() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
    let kib = line.and_then(|l| l.trim().strip_suffix("kB"));
    kib.and_then(|k| k.trim().parse().ok())
        .expect("a VmHWM line in kB")
}
