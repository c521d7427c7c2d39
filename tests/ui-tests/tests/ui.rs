//! Compile-fail cases of `#[derive(SafeParams)]` (`tests/ui/<category>/*.rs`, each with the
//! `.stderr` a user should see), and cases that must compile.
//!
//! The `expect` cases pin structs to files named relative to the crate's directory, and trybuild
//! builds every case in a project of its own, `<target dir>/tests/trybuild/safejax-ui-tests/`:
//! that project's directory is the `CARGO_MANIFEST_DIR` the derive sees. So before the cases
//! run, the files they pin are copied into its `fixtures/`, and a case names them as
//! `expect = "fixtures/flax_mlp.safetensors"`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn ui() {
    stage_fixtures();
    let cases = trybuild::TestCases::new();
    cases.compile_fail("../ui/**/*.rs");
    cases.pass("pass/*.rs");
}

/// The directories whose files the cases pin, relative to this crate; their files land side by
/// side in the project's `fixtures/` (manifests and READMEs excepted), so their names must differ.
const FIXTURE_DIRS: [&str; 3] = [
    "../fixtures",
    "../fixtures/real-models",
    "../ui/expect/fixtures",
];

/// Files of those directories that describe the others.
const DOCS: [&str; 2] = ["manifest.json", "README.md"];

/// Copies the pinned files into the trybuild project. A file already there with the same bytes
/// is left alone, so that its timestamp does not make cargo rebuild the cases that read it.
fn stage_fixtures() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let to = project_dir().join("fixtures");
    std::fs::create_dir_all(&to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    let mut staged: Vec<String> = Vec::new();
    for dir in FIXTURE_DIRS {
        let dir = here.join(dir);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let staged_file = |n: &String| path.is_file() && !DOCS.contains(&n.as_str());
            let Some(name) = name.filter(staged_file) else {
                continue;
            };
            assert!(!staged.contains(&name), "two fixtures are named `{name}`");
            let bytes = read(&path);
            let target = to.join(&name);
            if std::fs::read(&target).ok().as_ref() != Some(&bytes) {
                std::fs::write(&target, &bytes)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
            }
            staged.push(name);
        }
    }
}

/// Where trybuild puts its project: `tests/trybuild/<crate>/` in the target directory that
/// `cargo metadata` names, as trybuild finds it (so `CARGO_TARGET_DIR` and `build.target-dir`
/// count alike).
fn project_dir() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version=1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo metadata: {e}"));
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("cargo metadata printed no JSON: {e}"));
    let target = metadata["target_directory"]
        .as_str()
        .unwrap_or_else(|| panic!("cargo metadata names no target directory"));
    Path::new(target)
        .join("tests/trybuild")
        .join(env!("CARGO_PKG_NAME"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
