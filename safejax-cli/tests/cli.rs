//! The `safejax` binary run on the Python-made fixtures and on files made here: `inspect`,
//! `check`, `diff` and `convert`, their output and their exit codes.

mod common;

use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use safejax_core::format::parse;
use safejax_core::{Dtype, Metadata, Tensor};
use serde_json::Value;

fn i32s(values: &[i32]) -> Tensor {
    let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    Tensor::new(Dtype::I32, vec![values.len()], bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// A file whose JSON header is `header` (padded to 8 bytes), followed by `data`.
fn raw_file(path: &Path, header: &str, data: &[u8]) -> u64 {
    let mut json = header.as_bytes().to_vec();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}"));
    8 + json.len() as u64
}

/// The names, dtypes and shapes of a file, in sorted order.
fn contents(path: &Path) -> Vec<(String, Dtype, Vec<usize>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let parsed = parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut all: Vec<_> = parsed
        .iter()
        .map(|(name, t)| (name.to_owned(), t.dtype(), t.shape().to_vec()))
        .collect();
    all.sort();
    all
}

/// The line of `text` that contains every one of `parts`.
fn line_with<'t>(text: &'t str, parts: &[&str]) -> &'t str {
    text.lines()
        .find(|line| parts.iter().all(|p| line.contains(p)))
        .unwrap_or_else(|| panic!("no line with {parts:?} in:\n{text}"))
}

// ---------------------------------------------------------------------------------- inspect

#[test]
fn inspect_flax_shows_collection_modules_and_leaves() {
    let run = safejax(&[
        "inspect".as_ref(),
        fixture("flax_mlp.safetensors").as_os_str(),
    ]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let text = &run.stdout;
    line_with(
        text,
        &[
            "flax_mlp.safetensors: 4 tensors, 212 parameters, 848 B",
            "1168 bytes",
        ],
    );
    line_with(
        text,
        &[
            "style: flax (recognised:",
            "keys start with their collection",
        ],
    );
    line_with(text, &["metadata: none"]);
    let params = line_with(text, &["params ", "4 tensors"]);
    assert!(params.starts_with("params "), "{params}");
    line_with(text, &["  Dense_0", "2 tensors", "576 B"]);
    let kernel = line_with(text, &["    kernel", "F32 [8, 16]"]);
    assert!(kernel.ends_with("512 B"), "{kernel}");
}

#[test]
fn inspect_haiku_groups_by_collection_then_module() {
    let run = safejax(&[
        "inspect".as_ref(),
        fixture("haiku_bn.safetensors").as_os_str(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = &run.stdout;
    line_with(
        text,
        &[
            "style: haiku (recognised: ",
            "; keys start with their collection)",
        ],
    );
    line_with(text, &["state", "6 tensors", "264 B"]);
    line_with(text, &["  batch_norm/~/mean_ema", "3 tensors"]);
    line_with(text, &["    counter", "I32 []", "4 B"]);
    line_with(text, &["    offset", "F32 [1, 16]", "64 B"]);
}

#[test]
fn inspect_a_real_haiku_transformer() {
    let path = fixture("real-models/haiku_transformer_lm.safetensors");
    let run = safejax(&["inspect".as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = &run.stdout;
    line_with(text, &["38 tensors"]);
    // No collection: `language_model.positional_embeddings` is module and parameter.
    assert!(!text.contains("keys start with their collection"), "{text}");
    line_with(
        text,
        &["transformer/multi_head_attention_1/query", "2 tensors"],
    );
    line_with(text, &["positional_embeddings", "F32 [10, 32]", "1.3 kB"]);
}

#[test]
fn inspect_objax_shows_classes_and_variable_kinds() {
    let path = fixture("real-models/objax_wide_resnet.safetensors");
    let run = safejax(&["inspect".as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = &run.stdout;
    line_with(text, &["69 tensors, 175994 parameters", "712776 bytes"]);
    line_with(text, &["style: objax (recognised: "]);
    line_with(text, &["(WideResNet)", "69 tensors"]);
    line_with(text, &["  [1](WRNBlock)", "10 tensors"]);
    line_with(text, &["    norm_1(BatchNorm2D)", "4 tensors"]);
    line_with(
        text,
        &["running_mean", "F32 [1, 16, 1, 1]", "64 B", "StateVar"],
    );
    // Indices in numeric order: [2] before [10].
    let (two, ten) = (text.find("  [2](WRNBlock)"), text.find("  [10](Linear)"));
    assert!(two.is_some() && two < ten, "{text}");
}

#[test]
fn inspect_json_is_one_document_with_the_tree() {
    let run = safejax(&[
        "inspect".as_ref(),
        "--json".as_ref(),
        fixture("haiku_bn.safetensors").as_os_str(),
        fixture("objax_mlp.safetensors").as_os_str(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}"));
    let haiku = &doc["checkpoints"][0];
    assert_eq!(haiku["style"], "haiku");
    assert_eq!(haiku["style_recognised"], true);
    assert_eq!(haiku["keys_have_collection"], true);
    assert_eq!(haiku["totals"]["tensors"], 12);
    assert_eq!(haiku["files"][0]["bytes"], 2272);
    let state = &haiku["tree"][1];
    assert_eq!(
        (&state["kind"], &state["name"]),
        (&"collection".into(), &"state".into())
    );
    let ema = &state["children"][0];
    assert_eq!(ema["name"], "batch_norm/~/mean_ema");
    assert_eq!(ema["totals"]["bytes"], 132);
    let counter = &ema["children"][1];
    assert_eq!(counter["key"], "state.batch_norm/~/mean_ema.counter");
    assert_eq!(counter["dtype"], "I32");
    assert_eq!(counter["shape"], serde_json::json!([]));
    let objax = &doc["checkpoints"][1];
    let linear = &objax["tree"][0]["children"][0]["children"][1];
    assert_eq!(linear["class"], "Linear");
    assert_eq!(linear["indexed"], true);
    assert_eq!(linear["name"], "2");
    assert_eq!(linear["children"][1]["var_kind"], "TrainVar");
    assert_eq!(doc["totals"]["tensors"], 16);
}

#[test]
fn inspect_with_a_given_style_says_so() {
    let path = fixture("flax_mlp.safetensors");
    let run = safejax(&[
        "inspect".as_ref(),
        "--style".as_ref(),
        "objax".as_ref(),
        path.as_os_str(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    line_with(&run.stdout, &["style: objax (given)"]);
    line_with(&run.stdout, &["4 keys do not follow the objax style"]);
    line_with(&run.stdout, &["params.Dense_0.kernel", "F32 [8, 16]"]);
}

#[test]
fn inspect_shows_metadata() {
    let dir = temp();
    let path = dir.path().join("meta.safetensors");
    let metadata: Metadata = [("format".to_owned(), "flax".to_owned())].into();
    save(&path, &[("params.w", &f32s(&[1.0]))], metadata);
    let run = safejax(&["inspect".as_ref(), path.as_os_str()]);
    line_with(&run.stdout, &["metadata:"]);
    line_with(&run.stdout, &["  format: flax"]);
}

// ------------------------------------------------------------------------- errors and usage

#[test]
fn a_missing_file_is_exit_2_with_one_line() {
    for command in ["inspect", "check", "convert", "diff"] {
        let mut args = vec![command, "no/such.safetensors"];
        if command == "convert" || command == "diff" {
            args.push("other.safetensors");
        }
        let run = safejax(&args);
        assert_eq!(run.code, 2, "{command}");
        assert_eq!(
            run.stderr, "safejax: no/such.safetensors: No such file or directory (os error 2)\n",
            "{command}"
        );
    }
}

#[test]
fn a_corrupt_file_is_exit_2_for_inspect_naming_the_cause() {
    let dir = temp();
    let path = dir.path().join("cut.safetensors");
    let bytes = std::fs::read(fixture("flax_mlp.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap_or_else(|e| panic!("{e}"));
    let run = safejax(&["inspect".as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("invalid safetensors data at byte"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("params.Dense_1.kernel"),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors_are_exit_2() {
    assert_eq!(safejax(&["diff", "only-one"]).code, 2);
    assert_eq!(safejax(&["inspect", "--style", "keras", "x"]).code, 2);
    let run = safejax(&["diff", "a", "b", "--atol=-1"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, "safejax: --atol must be a number at least 0, not -1\n")
    );
    let run = safejax(&["diff", "a", "b", "--rtol", "NaN"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, "safejax: --rtol must be a number at least 0, not NaN\n")
    );
}

// ------------------------------------------------------------------------------------ check

#[test]
fn check_passes_every_fixture() {
    let files = [
        "flax_mlp.safetensors",
        "haiku_bn.safetensors",
        "haiku_mlp.safetensors",
        "objax_mlp.safetensors",
        "real-models/haiku_transformer_lm.safetensors",
        "real-models/objax_wide_resnet.safetensors",
    ];
    let mut args = vec!["check".into(), "--values".into()];
    args.extend(files.iter().map(|f| fixture(f).into_os_string()));
    let run = safejax(&args);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.lines().count(), files.len());
    line_with(
        &run.stdout,
        &[
            "haiku_bn.safetensors: ok (12 tensors, 2272 bytes; 10 float tensors, every value finite)",
        ],
    );
}

/// Checks `path`, expecting exit 1 and one line naming `parts`.
fn check_fails(path: &Path, parts: &[&str]) -> String {
    let run = safejax(&["check".as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    line_with(&run.stdout, parts).to_owned()
}

#[test]
fn check_finds_a_truncated_file() {
    let dir = temp();
    let path = dir.path().join("cut.safetensors");
    let bytes = std::fs::read(fixture("flax_mlp.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap_or_else(|e| panic!("{e}"));
    // The last tensor, `params.Dense_1.kernel` (256 bytes), starts 256 bytes before the end.
    let start = bytes.len() - 256;
    check_fails(
        &path,
        &[
            &format!("problem at byte {start}:"),
            "tensor `params.Dense_1.kernel` ends at data offset 848, past the end of the data (838 bytes)",
        ],
    );
    std::fs::write(&path, &bytes[..20]).unwrap_or_else(|e| panic!("{e}"));
    check_fails(
        &path,
        &["problem at byte 0: header length", "runs past the end"],
    );
}

#[test]
fn check_finds_trailing_bytes() {
    let dir = temp();
    let path = dir.path().join("long.safetensors");
    let mut bytes =
        std::fs::read(fixture("haiku_mlp.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    let end = bytes.len();
    bytes.extend_from_slice(&[0; 3]);
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
    check_fails(
        &path,
        &[&format!(
            "problem at byte {end}: 3 bytes after the last tensor belong to no tensor"
        )],
    );
}

#[test]
fn check_finds_a_bad_bool_byte() {
    let dir = temp();
    let path = dir.path().join("mask.safetensors");
    let mask =
        Tensor::new(Dtype::BOOL, vec![4], vec![0, 1, 2, 1]).unwrap_or_else(|e| panic!("{e}"));
    save(
        &path,
        &[("mask", &mask), ("w", &f32s(&[1.0]))],
        Metadata::new(),
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    // The bool tensor comes last: its byte 2 is 2 bytes before the end of the file.
    let at = bytes.len() - 2;
    check_fails(
        &path,
        &[&format!(
            "problem at byte {at}: tensor `mask`: bool element 2 is byte 2, expected 0 or 1"
        )],
    );
}

#[test]
fn check_finds_overlapping_offsets() {
    let dir = temp();
    let path = dir.path().join("overlap.safetensors");
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let data_start = raw_file(&path, header, &[0; 12]);
    check_fails(
        &path,
        &[
            &format!("problem at byte {}:", data_start + 4),
            "tensor `b` starts at data offset 4, which overlaps the previous tensor ending at 8",
        ],
    );
}

#[test]
fn check_reports_each_file_and_fails_if_one_does() {
    let dir = temp();
    let path = dir.path().join("junk.safetensors");
    std::fs::write(&path, b"not a safetensors file at all").unwrap_or_else(|e| panic!("{e}"));
    let good = fixture("flax_mlp.safetensors");
    let run = safejax(&["check".as_ref(), good.as_os_str(), path.as_os_str()]);
    assert_eq!(run.code, 1);
    line_with(
        &run.stdout,
        &["flax_mlp.safetensors: ok (4 tensors, 1168 bytes)"],
    );
    line_with(
        &run.stdout,
        &["junk.safetensors: problem at byte 0: header length"],
    );
}

#[test]
fn check_values_counts_nan_and_infinity() {
    let dir = temp();
    let path = dir.path().join("nan.safetensors");
    let bad = f32s(&[1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
    save(
        &path,
        &[("bad", &bad), ("good", &f32s(&[1.0])), ("n", &i32s(&[1]))],
        Metadata::new(),
    );
    let run = safejax(&["check".as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 0, "values are looked at only with --values");
    let run = safejax(&["check".as_ref(), "--values".as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    line_with(
        &run.stdout,
        &["non-finite values in 1 of 2 float tensors (3 tensors"],
    );
    line_with(
        &run.stdout,
        &["tensor `bad` at byte", "1 NaN, 2 infinite of 4 values"],
    );
}

// ------------------------------------------------------------------------------------- diff

/// Saves `w` (and any `extra` tensors) in a new file of `dir` named `name`.
fn one(dir: &Path, name: &str, w: &Tensor, extra: &[(&str, &Tensor)]) -> PathBuf {
    let path = dir.join(name);
    let mut tensors = vec![("w", w)];
    tensors.extend_from_slice(extra);
    save(&path, &tensors, Metadata::new());
    path
}

fn diff(a: &Path, b: &Path, options: &[&str]) -> Run {
    let mut args = vec!["diff".as_ref(), a.as_os_str(), b.as_os_str()];
    args.extend(options.iter().map(|o| std::ffi::OsStr::new(*o)));
    safejax(&args)
}

#[test]
fn diff_of_a_file_with_itself_is_equal() {
    let path = fixture("real-models/objax_wide_resnet.safetensors");
    let run = diff(&path, &path, &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    line_with(
        &run.stdout,
        &[
            "equal: 69 common tensors (69 identical, 0 equal within tolerance, 0 different), 0 only in A, 0 only in B",
        ],
    );
}

#[test]
fn diff_reports_values_and_tolerances() {
    let dir = temp();
    let a = one(dir.path(), "a.safetensors", &f32s(&[1.0, 2.0, 3.0]), &[]);
    let b = one(dir.path(), "b.safetensors", &f32s(&[1.0, 2.0, 3.5]), &[]);
    let run = diff(&a, &b, &[]);
    assert_eq!(run.code, 1);
    line_with(
        &run.stdout,
        &[
            "values differ: w: 1 of 3 elements out of tolerance; max |a-b| = 5.000e-1, max |a-b|/|b| = 1.429e-1",
        ],
    );
    line_with(
        &run.stdout,
        &["different: 1 common tensors (0 identical, 0 equal within tolerance, 1 different)"],
    );
    // |a-b| <= atol + rtol * |b|: 0.5 <= 0.5; 0.5 <= 0.15 * 3.5; not 0.5 <= 0.1 * 3.5.
    for (options, code) in [
        (&["--atol", "0.5"][..], 0),
        (&["--atol", "0.4"][..], 1),
        (&["--rtol", "0.15"][..], 0),
        (&["--rtol", "0.1"][..], 1),
        (&["--atol", "0.2", "--rtol", "0.1"][..], 0),
    ] {
        let run = diff(&a, &b, options);
        assert_eq!(run.code, code, "{options:?}: {}", run.stdout);
    }
    let run = diff(&a, &b, &["--atol", "0.5"]);
    line_with(&run.stdout, &["within tolerance: w: max |a-b| = 5.000e-1"]);
    line_with(
        &run.stdout,
        &["equal: 1 common tensors (0 identical, 1 equal within tolerance, 0 different)"],
    );
}

#[test]
fn diff_reports_keys_dtypes_and_shapes() {
    let dir = temp();
    let w = f32s(&[1.0, 2.0]);
    let a = one(
        dir.path(),
        "a.safetensors",
        &w,
        &[("s", &f32s(&[1.0])), ("d", &f32s(&[1.0])), ("x", &w)],
    );
    let b = one(
        dir.path(),
        "b.safetensors",
        &w,
        &[("s", &f32s(&[1.0, 2.0])), ("d", &i32s(&[1])), ("y", &w)],
    );
    let run = diff(&a, &b, &["--atol", "100"]);
    assert_eq!(run.code, 1);
    line_with(&run.stdout, &["only in A: x (F32 [2])"]);
    line_with(&run.stdout, &["only in B: y (F32 [2])"]);
    line_with(
        &run.stdout,
        &["shape differs: s: F32 [1] in A, F32 [2] in B"],
    );
    line_with(
        &run.stdout,
        &["dtype differs: d: F32 [1] in A, I32 [1] in B"],
    );
    line_with(
        &run.stdout,
        &[
            "different: 3 common tensors (1 identical, 0 equal within tolerance, 2 different), 1 only in A, 1 only in B",
        ],
    );
}

#[test]
fn diff_compares_integers_exactly_and_nan_equal_to_nan() {
    let dir = temp();
    let a = one(
        dir.path(),
        "a.safetensors",
        &f32s(&[f32::NAN, 1.0]),
        &[("n", &i32s(&[1, 2]))],
    );
    let b = one(
        dir.path(),
        "b.safetensors",
        &f32s(&[f32::NAN, 1.0]),
        &[("n", &i32s(&[1, 3]))],
    );
    let run = diff(&a, &b, &["--atol", "10"]);
    assert_eq!(run.code, 1);
    line_with(
        &run.stdout,
        &["values differ: n: 1 of 2 elements differ; max |a-b| = 1"],
    );
    let c = one(
        dir.path(),
        "c.safetensors",
        &f32s(&[f32::NAN, 1.0]),
        &[("n", &i32s(&[1, 2]))],
    );
    assert_eq!(diff(&a, &c, &[]).code, 0);
    let d = one(
        dir.path(),
        "d.safetensors",
        &f32s(&[0.0, 1.0]),
        &[("n", &i32s(&[1, 2]))],
    );
    let run = diff(&a, &d, &["--atol", "1e9"]);
    assert_eq!(run.code, 1);
    line_with(
        &run.stdout,
        &["values differ: w: 1 of 2 elements out of tolerance (1 NaN in only one file)"],
    );
}

// ---------------------------------------------------------------------------------- convert

fn convert(input: &Path, output: &Path, options: &[&str]) -> Run {
    let mut args = vec!["convert".as_ref(), input.as_os_str(), output.as_os_str()];
    args.extend(options.iter().map(|o| std::ffi::OsStr::new(*o)));
    safejax(&args)
}

#[test]
fn convert_to_f16_and_back_is_within_f16_precision() {
    let dir = temp();
    let original = fixture("real-models/haiku_transformer_lm.safetensors");
    let half = dir.path().join("half.safetensors");
    let back = dir.path().join("back.safetensors");
    let run = convert(&original, &half, &["--dtype", "f16"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    line_with(
        &run.stdout,
        &["wrote", "half.safetensors: 38 tensors, 38 converted to F16"],
    );
    assert!(
        contents(&half)
            .iter()
            .all(|(_, dtype, _)| *dtype == Dtype::F16)
    );
    assert_eq!(convert(&half, &back, &["--dtype", "f32"]).code, 0);
    let shapes = |path: &Path| {
        contents(path)
            .into_iter()
            .map(|(k, _, s)| (k, s))
            .collect::<Vec<_>>()
    };
    assert_eq!(shapes(&back), shapes(&original));
    assert_eq!(diff(&back, &original, &[]).code, 1, "f16 rounds");
    // f16 keeps 11 significant bits: a relative error of at most 2^-11, or an absolute one of
    // 2^-25 among its subnormals.
    let run = diff(&back, &original, &["--rtol", "4.9e-4", "--atol", "3e-8"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        diff(&half, &original, &["--rtol", "1"]).code,
        1,
        "dtypes differ"
    );
}

#[test]
fn convert_keeps_integers_and_metadata() {
    let dir = temp();
    let input = dir.path().join("in.safetensors");
    let metadata: Metadata = [("step".to_owned(), "3".to_owned())].into();
    save(
        &input,
        &[("w", &f32s(&[1.5])), ("n", &i32s(&[7]))],
        metadata.clone(),
    );
    let output = dir.path().join("out.safetensors");
    let run = convert(&input, &output, &["--dtype", "bf16"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    line_with(&run.stdout, &["2 tensors, 1 converted to BF16"]);
    let bytes = std::fs::read(&output).unwrap_or_else(|e| panic!("{e}"));
    let parsed = parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.metadata, metadata);
    let dtypes: Vec<_> = parsed
        .iter()
        .map(|(k, t)| (k.to_owned(), t.dtype()))
        .collect();
    assert_eq!(
        dtypes,
        [("n".to_owned(), Dtype::I32), ("w".to_owned(), Dtype::BF16)]
    );
}

#[test]
fn convert_renames_in_order_and_keeps_prefixes() {
    let dir = temp();
    let output = dir.path().join("renamed.safetensors");
    let run = convert(
        &fixture("flax_mlp.safetensors"),
        &output,
        &[
            "--rename",
            "^params\\.=",
            "--rename",
            "Dense_(\\d)=dense${1}",
            "--only",
            "params.Dense_1",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    line_with(&run.stdout, &["2 tensors, 2 renamed, 2 left out"]);
    let keys: Vec<String> = contents(&output).into_iter().map(|(k, ..)| k).collect();
    assert_eq!(keys, ["dense1.bias", "dense1.kernel"]);
    // The tensors are the original's, byte for byte.
    let original = dir.path().join("original.safetensors");
    assert_eq!(
        convert(
            &fixture("flax_mlp.safetensors"),
            &original,
            &[
                "--rename",
                "^params\\.Dense_1=dense1",
                "--only",
                "params.Dense_1"
            ]
        )
        .code,
        0
    );
    assert_eq!(diff(&output, &original, &[]).code, 0);
}

#[test]
fn convert_refuses_a_collision_before_writing() {
    let dir = temp();
    let output = dir.path().join("out.safetensors");
    let run = convert(
        &fixture("flax_mlp.safetensors"),
        &output,
        &["--rename", "Dense_\\d=dense"],
    );
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "safejax: --rename turns both `params.Dense_0.bias` and `params.Dense_1.bias` into `params.dense.bias`; nothing was written\n"
    );
    assert!(!output.exists());
    assert_eq!(
        std::fs::read_dir(dir.path())
            .map(Iterator::count)
            .unwrap_or(1),
        0
    );
}

#[test]
fn convert_refuses_bad_arguments_before_writing() {
    let dir = temp();
    let output = dir.path().join("out.safetensors");
    let input = fixture("flax_mlp.safetensors");
    for (options, message) in [
        (
            &["--rename", "(=x"][..],
            "safejax: --rename `(=x`: invalid regex `(`: unclosed group\n",
        ),
        (
            &["--only", "nothing"][..],
            "safejax: --only nothing: no key of",
        ),
        (
            &["--max-shard-size", "5XB"][..],
            "safejax: --max-shard-size: size `5XB` has unknown unit `XB`",
        ),
        (
            &["--max-shard-size", "800"][..],
            "the tensors take 848 bytes, more than --max-shard-size (800 bytes)",
        ),
        (&["--rename", ".*=__metadata__"][..], "cannot name a tensor"),
    ] {
        let run = convert(&input, &output, options);
        assert_eq!(run.code, 2, "{options:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(message), "{options:?}: {}", run.stderr);
        assert!(!output.exists(), "{options:?}");
    }
    let run = convert(&input, &output, &["--max-shard-size", "1kB"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(diff(&input, &output, &[]).code, 0);
}

#[test]
fn convert_replaces_its_own_input() {
    let dir = temp();
    let path = dir.path().join("model.safetensors");
    std::fs::copy(fixture("objax_mlp.safetensors"), &path).unwrap_or_else(|e| panic!("{e}"));
    let run = convert(&path, &path, &["--dtype", "f64"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        contents(&path)
            .iter()
            .all(|(_, dtype, _)| *dtype == Dtype::F64)
    );
    let run = diff(&path, &fixture("objax_mlp.safetensors"), &[]);
    line_with(&run.stdout, &["4 different"]);
    let back = dir.path().join("back.safetensors");
    assert_eq!(convert(&path, &back, &["--dtype", "f32"]).code, 0);
    assert_eq!(
        std::fs::read(&back).ok(),
        std::fs::read(fixture("objax_mlp.safetensors")).ok()
    );
}

// ------------------------------------------------------------------- tensors read in chunks

#[test]
fn values_past_the_first_chunk_are_read() {
    let dir = temp();
    // 16 MiB is the chunk of bytes; 2 Mi elements the chunk of a float comparison.
    let len = (16 << 20) + 5;
    let mut mask = vec![1u8; len];
    mask[len - 2] = 7;
    let path = dir.path().join("mask.safetensors");
    let mask = Tensor::new(Dtype::BOOL, vec![len], mask).unwrap_or_else(|e| panic!("{e}"));
    save(&path, &[("mask", &mask)], Metadata::new());
    let at = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) - 2;
    check_fails(
        &path,
        &[&format!(
            "problem at byte {at}: tensor `mask`: bool element {} is byte 7",
            len - 2
        )],
    );

    let n = (2 << 20) + 3;
    let mut values = vec![0.5f32; n];
    let a = one(dir.path(), "a.safetensors", &f32s(&values), &[]);
    values[n - 1] = 0.25;
    let b = one(dir.path(), "b.safetensors", &f32s(&values), &[]);
    let run = diff(&a, &b, &[]);
    line_with(
        &run.stdout,
        &[&format!(
            "values differ: w: 1 of {n} elements out of tolerance; max |a-b| = 2.500e-1, max |a-b|/|b| = 1.000e0"
        )],
    );
    let half = dir.path().join("half.safetensors");
    assert_eq!(convert(&b, &half, &["--dtype", "f16"]).code, 0);
    let run = diff(&half, &b, &[]);
    line_with(
        &run.stdout,
        &["dtype differs: w: F16 [2097155] in A, F32 [2097155] in B (max |a-b| = 0.000e0"],
    );
}

/// README.md shows what `inspect` prints today for the two fixtures it quotes.
#[test]
fn the_readme_shows_the_current_output_of_inspect() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .unwrap_or_else(|e| panic!("{e}"));
    for fixture in ["haiku_bn", "objax_mlp"] {
        let shown = format!("tests/fixtures/{fixture}.safetensors");
        let run = Command::new(env!("CARGO_BIN_EXE_safejax"))
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["inspect", shown.as_str()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run safejax: {e}"));
        let printed = String::from_utf8_lossy(&run.stdout);
        assert!(
            readme.contains(&format!("$ safejax inspect {shown}\n{printed}")),
            "README.md does not show what `safejax inspect {shown}` prints:\n{printed}"
        );
    }
}
