//! Peak resident memory of one load or one save, as the OS counts it: the bench runs itself again
//! in a child process per case and contender; the child prepares what a save needs, resets its
//! high-water mark (`/proc/self/clear_refs`), reads `VmHWM` from `/proc/self/status`, does the one
//! load or save, and prints `VmHWM` again. The table is what the parent collects: the peak less
//! the child's baseline, in MiB and as a multiple of the file's size.
//!
//! `cargo bench --bench peak_rss` measures 256 MiB and 1 GiB models (1.3 GiB of temporary files);
//! run without `--bench`, as `cargo test --benches` does, it measures a 4 MiB one.

mod common;

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use common::{BIG, Case, HUGE, Model};
use safejax::{Loader, SafeParams, flax};

const CHILD: &str = "--peak-rss-child";

const SMOKE: Case = Case {
    name: "4MiB",
    tensors: 16,
    len: (4 << 20) / 4 / 16,
};

const LOADS: [&str; 6] = [
    "safejax",
    "safejax-mmap",
    "tree",
    "hand",
    "hand-mmap",
    "floor-read",
];
const SAVES: [&str; 4] = ["safejax", "tree", "hand", "floor-write"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == CHILD) {
        let [case, op, contender, dir] = &args[at + 1..] else {
            panic!("usage: {CHILD} <case> <load|save> <contender> <dir>");
        };
        child(case_named(case), op, contender, Path::new(dir));
        return;
    }
    let cases = if args.iter().any(|a| a == "--bench") {
        vec![BIG, HUGE]
    } else {
        vec![SMOKE]
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!("| case | operation | contender | peak RSS above baseline | × file size |");
    println!("|---|---|---|---|---|");
    for case in cases {
        let path = case.file(dir.path());
        case.model().save(&path).expect("save the model");
        let file_len = std::fs::metadata(&path).expect("the file's size").len();
        let runs = LOADS.iter().map(|c| ("load", *c));
        for (op, contender) in runs.chain(SAVES.iter().map(|c| ("save", *c))) {
            let kib = run_child(case, op, contender, dir.path());
            let mib = kib as f64 / 1024.0;
            let ratio = (kib * 1024) as f64 / file_len as f64;
            println!(
                "| {} | {op} | {contender} | {mib:.1} MiB | {ratio:.2} |",
                case.name
            );
        }
        std::fs::remove_file(&path).expect("remove the file");
        let _ = std::fs::remove_file(case.save_target(dir.path()));
    }
}

fn case_named(name: &str) -> Case {
    let cases = [BIG, HUGE, SMOKE];
    let case = cases.into_iter().find(|c| c.name == name);
    case.unwrap_or_else(|| panic!("no case named {name}"))
}

/// Runs one child and returns its peak less its baseline, in KiB.
fn run_child(case: Case, op: &str, contender: &str, dir: &Path) -> u64 {
    let exe = std::env::current_exe().expect("the bench's own path");
    let output = Command::new(exe)
        .args([CHILD, case.name, op, contender])
        .arg(dir)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{op} {contender} of {} failed: {stdout}{}",
        case.name,
        String::from_utf8_lossy(&output.stderr)
    );
    let numbers: Vec<u64> = stdout
        .split_whitespace()
        .map(|n| n.parse().expect("a number of KiB"))
        .collect();
    let [baseline, peak] = numbers[..] else {
        panic!("the child printed `{stdout}`");
    };
    peak - baseline
}

/// Does one load or save and prints the baseline and the peak of resident memory, in KiB.
fn child(case: Case, op: &str, contender: &str, dir: &Path) {
    let path = case.file(dir);
    let target = case.save_target(dir);
    let layers = case.tensors;
    let (baseline, peak) = match (op, contender) {
        ("load", "safejax") => measure(|| Model::load(&path).expect("load")),
        ("load", "safejax-mmap") => measure(|| {
            Loader::new()
                .memory_map()
                .load::<Model>(&path)
                .expect("load")
        }),
        ("load", "tree") => measure(|| flax::deserialize_file(&path).expect("load")),
        ("load", "hand") => measure(|| common::hand_load(&path, layers)),
        ("load", "hand-mmap") => measure(|| common::hand_load_mmap(&path, layers)),
        ("load", "floor-read") => measure(|| common::floor_read(&path)),
        ("save", "safejax") => {
            let model = case.model();
            measure(|| model.save(&target).expect("save"))
        }
        ("save", "tree") => {
            let tree = common::tree_of(&case.model());
            measure(|| flax::serialize_to_file(&tree, &target, None).expect("save"))
        }
        ("save", "hand") => {
            let model = case.model();
            measure(|| common::hand_save(&model, &target))
        }
        ("save", "floor-write") => {
            let bytes = std::fs::read(&path).expect("read the file");
            measure(|| common::floor_write(&bytes, &target))
        }
        _ => panic!("no contender {op} {contender}"),
    };
    println!("{baseline} {peak}");
}

/// Resets the high-water mark, runs `f` once and returns the high-water mark before and after, in
/// KiB. What `f` returns is dropped after the second reading.
fn measure<R>(f: impl FnOnce() -> R) -> (u64, u64) {
    // Writing 5 resets VmHWM to the current resident size (Linux 4.0 and later).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the high-water mark");
    let baseline = high_water_mark();
    let result = black_box(f());
    let peak = high_water_mark();
    drop(result);
    (baseline, peak)
}

fn high_water_mark() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
    let kib = line.and_then(|l| l.trim().strip_suffix("kB"));
    kib.and_then(|k| k.trim().parse().ok())
        .expect("a VmHWM line in kB")
}
