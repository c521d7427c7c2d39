//! What the tests of the `safejax` binary share: running it, fixtures, small files.
#![allow(
    dead_code,
    reason = "each test file uses a different part of this module"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use safejax_core::{Dtype, Leaf, Metadata, Saver, Tensor};

/// What a run of the binary gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `args`.
pub fn safejax<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_safejax"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run safejax: {e}"));
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A file of `tests/fixtures` at the workspace's root.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

pub fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

/// A rank-1 `F32` tensor of `values`.
pub fn f32s(values: &[f32]) -> Tensor {
    let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    Tensor::new(Dtype::F32, vec![values.len()], bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// Saves `tensors` under their names, with `metadata`.
pub fn save(path: &Path, tensors: &[(&str, &Tensor)], metadata: Metadata) {
    let named: Vec<(String, &dyn Leaf)> = tensors
        .iter()
        .map(|(name, tensor)| (name.to_string(), *tensor as &dyn Leaf))
        .collect();
    Saver::new()
        .metadata(metadata)
        .save_tensors(&named, path)
        .unwrap_or_else(|e| panic!("{e}"));
}
