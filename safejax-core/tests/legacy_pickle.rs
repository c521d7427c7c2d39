//! Pickled Haiku parameters read into trees, byte for byte as Python safejax saves them, and
//! hostile pickles refused.
#![cfg(feature = "pickle")]

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use safejax_core::legacy::pickle;
use safejax_core::{Error, haiku};

/// The file a hostile fixture would create if it were executed.
const MARKER: &str = "/tmp/safejax-pickle-was-executed";

const GOOD: [&str; 4] = [
    "haiku_bn_p2.pkl",
    "haiku_bn_p4.pkl",
    "haiku_bn_p5.pkl",
    "haiku_bn_jax.pkl",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/legacy")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

#[test]
fn haiku_pickles_convert_byte_for_byte() {
    let expected = read("haiku_bn.safetensors");
    let (_, metadata) = haiku::deserialize_with_metadata(&expected).expect("expected file");
    assert!(metadata.is_empty());
    for name in GOOD {
        let tree = pickle::from_slice(&read(name)).expect(name);
        assert_eq!(
            haiku::serialize(&tree, None).expect(name),
            expected,
            "{name}"
        );
        let tree = pickle::from_file(fixture(name)).expect(name);
        assert_eq!(
            haiku::serialize(&tree, None).expect(name),
            expected,
            "{name}"
        );
    }
}

#[test]
fn haiku_pickles_keep_collections_and_counters() {
    let tree = pickle::from_file(fixture("haiku_bn_p5.pkl")).expect("p5");
    let keys: Vec<String> = tree.iter().map(|(name, _)| name.to_owned()).collect();
    assert_eq!(keys, ["params", "state"]);
    let counter = tree
        .tensor("state.batch_norm/~/var_ema.counter")
        .expect("counter");
    assert_eq!(counter.dtype(), safejax_core::Dtype::I32);
    assert_eq!(counter.shape(), &[] as &[usize]);
    assert_eq!(counter.data(), &1i32.to_le_bytes());
}

#[test]
fn hostile_pickles_are_refused_naming_the_global() {
    let cases = [
        ("evil_os_system_p2.pkl", "posix.system", 252),
        ("evil_eval_p4.pkl", "builtins.eval", 29),
        ("evil_popen_p5.pkl", "subprocess.Popen", 38),
    ];
    let manifest = String::from_utf8(read("manifest.json")).expect("manifest");
    for (name, global, at) in cases {
        assert!(
            manifest.contains(&format!("\"must_refuse\": \"{global}\"")),
            "{name}"
        );
        for result in [
            pickle::from_slice(&read(name)),
            pickle::from_file(fixture(name)),
        ] {
            let err = result.expect_err(name);
            let Error::Legacy {
                format,
                offset,
                key,
                reason,
            } = &err
            else {
                panic!("{name}: {err:#?}");
            };
            assert_eq!(
                (*format, *offset, key.as_str()),
                ("pickle", at, ""),
                "{name}"
            );
            assert_eq!(reason, &format!("global `{global}` is not allowed"));
            assert_eq!(
                err.to_string(),
                format!("invalid pickle data at byte {at}: global `{global}` is not allowed")
            );
        }
    }
    // Nothing was executed, so nothing could have created the file.
    assert!(!Path::new(MARKER).exists());
}

#[test]
fn every_truncation_is_an_error() {
    for name in GOOD {
        let bytes = read(name);
        for len in 0..bytes.len() {
            let err = pickle::from_slice(&bytes[..len]).expect_err(name);
            assert!(
                matches!(err, Error::Legacy { .. }),
                "{name}[..{len}]: {err}"
            );
        }
    }
}

#[test]
fn a_missing_file_names_its_path() {
    let err = pickle::from_file(fixture("missing.pkl")).expect_err("missing");
    assert!(err.to_string().contains("missing.pkl"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = pickle::from_slice(&bytes);
        let mut with_proto = vec![0x80, 4];
        with_proto.extend_from_slice(&bytes);
        let _ = pickle::from_slice(&with_proto);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..GOOD.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = read(GOOD[which]);
        for (at, byte) in edits {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Ok(tree) = pickle::from_slice(&bytes) {
            let _ = haiku::serialize(&tree, None);
        }
    }
}
