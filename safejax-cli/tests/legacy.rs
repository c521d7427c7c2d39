//! `safejax convert` of checkpoints in the formats before safetensors: every file of
//! `tests/fixtures/legacy/manifest.json` converts byte for byte to the file Python safejax
//! wrote for the same parameters, or is refused as the manifest says.

mod common;

use common::*;

use std::path::{Path, PathBuf};

use safejax_core::format;

fn legacy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/legacy")
        .join(name)
}

/// The manifest's entries: file name, and its expected safetensors file or the global it must
/// refuse.
fn manifest() -> Vec<(String, serde_json::Value)> {
    let text = std::fs::read_to_string(legacy("manifest.json")).unwrap_or_else(|e| panic!("{e}"));
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    manifest["files"]
        .as_object()
        .unwrap_or_else(|| panic!("a manifest with files"))
        .iter()
        .map(|(name, entry)| (name.clone(), entry.clone()))
        .collect()
}

/// Every good file converts to its expected bytes in its manifest style; every hostile one is
/// refused with the global it would have called, and nothing ran.
#[test]
fn every_fixture_converts_byte_for_byte_or_is_refused() {
    let dir = temp();
    let marker = Path::new("/tmp/safejax-pickle-was-executed");
    let mut converted = 0;
    let mut refused = 0;
    for (name, entry) in manifest() {
        let out = dir.path().join(format!("{name}.safetensors"));
        let style = entry["style"].as_str();
        let mut args: Vec<std::ffi::OsString> =
            vec!["convert".into(), legacy(&name).into(), out.clone().into()];
        if let Some(style) = style {
            args.extend(["--style".into(), style.into()]);
        }
        let run = safejax(&args);
        if let Some(global) = entry["must_refuse"].as_str() {
            assert_eq!(run.code, 2, "{name}: {}{}", run.stdout, run.stderr);
            assert!(
                run.stderr.contains(&format!("`{global}`")),
                "{name}: {}",
                run.stderr
            );
            assert_eq!(run.stderr.lines().count(), 1, "{name}: {}", run.stderr);
            assert!(!out.exists(), "{name}: nothing is written");
            refused += 1;
            continue;
        }
        assert_eq!(run.code, 0, "{name}: {}{}", run.stdout, run.stderr);
        let expected = entry["expected_safetensors"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: an expected file"));
        let want = std::fs::read(legacy(expected)).unwrap_or_else(|e| panic!("{e}"));
        let got = std::fs::read(&out).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            got == want,
            "{name} does not convert to {expected} byte for byte"
        );
        converted += 1;
    }
    assert_eq!((converted, refused), (8, 3));
    assert!(!marker.exists(), "a hostile pickle ran");
}

/// Without `--style`, each format has its default: Flax for msgpack, Haiku for pickles and
/// `scope//name` npz, Objax for Objax npz.
#[test]
fn each_format_has_a_default_style() {
    let dir = temp();
    for (name, expected) in [
        ("flax_mlp.msgpack", "flax_mlp.safetensors"),
        ("haiku_bn_p5.pkl", "haiku_bn.safetensors"),
        ("haiku_mlp_af.npz", "haiku_mlp.safetensors"),
        ("objax_mlp.npz", "objax_mlp.safetensors"),
    ] {
        let out = dir.path().join(expected);
        let run = safejax(&[
            "convert".as_ref(),
            legacy(name).as_os_str(),
            out.as_os_str(),
        ]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let want = std::fs::read(legacy(expected)).unwrap_or_else(|e| panic!("{e}"));
        assert!(std::fs::read(&out).ok() == Some(want), "{name}");
    }
}

/// The keys of the safetensors file at `path`, sorted.
fn keys(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let parsed = format::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut keys: Vec<String> = parsed.iter().map(|(name, _)| name.to_owned()).collect();
    keys.sort();
    keys
}

/// An Objax npz records no kinds: `--var-kind` rules come first, then `--state-vars`.
#[test]
fn objax_kinds_come_from_the_options() {
    let dir = temp();
    let out = dir.path().join("kinds.safetensors");
    let run = safejax(&[
        "convert".as_ref(),
        legacy("objax_mlp.npz").as_os_str(),
        out.as_os_str(),
        "--state-vars".as_ref(),
        "\\.b$".as_ref(),
        "--var-kind".as_ref(),
        "\\[2\\].*\\.b$=RandomState".as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        keys(&out),
        [
            "(OMLP).layers(Sequential)[0](Linear).b::StateVar",
            "(OMLP).layers(Sequential)[0](Linear).w::TrainVar",
            "(OMLP).layers(Sequential)[2](Linear).b::RandomState",
            "(OMLP).layers(Sequential)[2](Linear).w::TrainVar",
        ]
    );
}

/// Options that do not fit the input are refused in one line, before anything is written.
#[test]
fn options_that_do_not_fit_the_input_are_refused() {
    let dir = temp();
    let out = dir.path().join("out.safetensors");
    let cases: [(&str, &[&str], &str); 5] = [
        (
            "haiku_bn_p4.pkl",
            &["--style", "objax"],
            "a nested dict does not record",
        ),
        ("objax_mlp.npz", &["--style", "flax"], "objax style only"),
        ("flax_mlp.msgpack", &["--state-vars", "x"], "has none"),
        (
            "objax_mlp.npz",
            &["--var-kind", "w=Bad Kind"],
            "cannot be a kind",
        ),
        ("objax_mlp.npz", &["--state-vars", "("], "invalid regex"),
    ];
    for (name, options, why) in cases {
        let mut args: Vec<std::ffi::OsString> =
            vec!["convert".into(), legacy(name).into(), out.clone().into()];
        args.extend(options.iter().map(Into::into));
        let run = safejax(&args);
        assert_eq!(run.code, 2, "{name} {options:?}: {}", run.stdout);
        assert!(
            run.stderr.contains(why),
            "{name} {options:?}: {}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(!out.exists());
    }
    let safetensors =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/flax_mlp.safetensors");
    let run = safejax(&[
        "convert".as_ref(),
        safetensors.as_os_str(),
        out.as_os_str(),
        "--style".as_ref(),
        "haiku".as_ref(),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("keeps its keys"), "{}", run.stderr);
}

/// The other options apply to legacy inputs as to safetensors ones.
#[test]
fn dtype_rename_and_only_apply_to_legacy_inputs() {
    let dir = temp();
    let out = dir.path().join("out.safetensors");
    let run = safejax(&[
        "convert".as_ref(),
        legacy("haiku_bn_p2.pkl").as_os_str(),
        out.as_os_str(),
        "--only".as_ref(),
        "params.".as_ref(),
        "--rename".as_ref(),
        "^params\\.=".as_ref(),
        "--dtype".as_ref(),
        "bf16".as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("6 tensors, 6 converted to BF16, 6 renamed, 6 left out"),
        "{}",
        run.stdout
    );
    let bytes = std::fs::read(&out).unwrap_or_else(|e| panic!("{e}"));
    let parsed = format::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
    for (name, tensor) in parsed.iter() {
        assert!(!name.starts_with("params."), "{name}");
        assert_eq!(tensor.dtype(), safejax_core::Dtype::BF16, "{name}");
    }
}

mod typed {
    //! The library's readers into derived structs: a pickle through `Loader::from_tree`, an
    //! Objax npz through `Loader::from_vars`, whose kinds come from the struct.

    use safejax::legacy::{npz, pickle};
    use safejax::ndarray::{Array1, Array2};
    use safejax::{Loader, SafeParams, VarKind};

    use super::legacy;

    #[derive(Debug, SafeParams)]
    #[safejax(style = "haiku", collection = "params")]
    struct HaikuBn {
        batch_norm: BatchNorm,
        #[safejax(numbering = "haiku")]
        linear: Vec<Linear>,
    }

    #[derive(Debug, SafeParams)]
    struct BatchNorm {
        #[safejax(collection = "state")]
        mean_ema: Ema,
        offset: Array2<f32>,
        scale: Array2<f32>,
        #[safejax(collection = "state")]
        var_ema: Ema,
    }

    #[derive(Debug, SafeParams)]
    struct Ema {
        average: Array2<f32>,
        counter: i32,
        hidden: Array2<f32>,
    }

    #[derive(Debug, SafeParams)]
    struct Linear {
        b: Array1<f32>,
        w: Array2<f32>,
    }

    #[test]
    fn every_pickle_loads_into_a_struct_and_saves_as_python_wrote_it() {
        let expected =
            std::fs::read(legacy("haiku_bn.safetensors")).unwrap_or_else(|e| panic!("{e}"));
        for name in [
            "haiku_bn_p2.pkl",
            "haiku_bn_p4.pkl",
            "haiku_bn_p5.pkl",
            "haiku_bn_jax.pkl",
        ] {
            let tree = pickle::from_file(legacy(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let model = Loader::new()
                .from_tree::<HaikuBn>(&tree)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .value;
            assert_eq!(model.linear.len(), 2);
            assert_eq!(model.linear[1].w.dim(), (16, 4));
            let bytes = model.to_bytes().unwrap_or_else(|e| panic!("{e}"));
            assert!(bytes == expected, "{name}");
        }
    }

    #[derive(Debug, SafeParams)]
    #[safejax(style = "objax", class = "OMLP")]
    struct Omlp {
        layers: Sequential,
    }

    #[derive(Debug, SafeParams)]
    struct Sequential(Linear, (), Linear);

    #[test]
    fn an_objax_npz_loads_into_a_struct_whatever_kinds_it_was_read_with() {
        let expected =
            std::fs::read(legacy("objax_mlp.safetensors")).unwrap_or_else(|e| panic!("{e}"));
        // Every variable guessed a StateVar: the struct's kinds win.
        let vars = npz::objax_from_file(legacy("objax_mlp.npz"), |_| VarKind::StateVar)
            .unwrap_or_else(|e| panic!("{e}"));
        let model = Loader::new()
            .from_vars::<Omlp>(&vars)
            .unwrap_or_else(|e| panic!("{e}"))
            .value;
        assert_eq!(model.layers.2.w.dim(), (16, 4));
        let bytes = model.to_bytes().unwrap_or_else(|e| panic!("{e}"));
        assert!(bytes == expected);
    }
}
