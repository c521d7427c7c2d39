//! The npz reader: the Python-made fixtures byte for byte, the strictness of the npy header,
//! archives that lie about their sizes, and arbitrary bytes.
#![cfg(feature = "npz")]

use std::io::Write;

use flate2::Compression;
use flate2::write::DeflateEncoder;
use proptest::prelude::*;
use rawzip::path::EntryPath;
use rawzip::{CompressionMethod, DataDescriptorOutput, ZipArchiveWriter};
use safejax_core::legacy::npz::{self, NpyArray, npy};
use safejax_core::{Dtype, Error, Tensor, VarKind, haiku, objax};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/legacy");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// An `.npy` file of `version` (1, 2 or 3) with `header` padded as numpy pads it, then `data`.
fn npy_file(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut text = header.to_owned();
    while !(prefix + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((text.len() as u16).to_le_bytes());
    } else {
        out.extend((text.len() as u32).to_le_bytes());
    }
    out.extend(text.as_bytes());
    out.extend(data);
    out
}

/// The dict numpy writes for `descr` and `shape` (a Python tuple literal).
fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let order = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}")
}

/// The npy file numpy writes for a little-endian C-ordered tensor.
fn npy_of(tensor: &Tensor) -> Vec<u8> {
    let descr = match tensor.dtype() {
        Dtype::F32 => "<f4",
        Dtype::I32 => "<i4",
        other => panic!("no descr for {other:?} in this test"),
    };
    let dims: Vec<String> = tensor.shape().iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    npy_file(1, &dict(descr, false, &shape), tensor.data())
}

/// A zip of `members`, deflated or stored, with the sizes the writer measures.
fn zip(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    zip_with(members, deflate, |descriptor| descriptor)
}

/// Like [`zip`], each member's size and CRC as `descriptor` rewrites them.
fn zip_with(
    members: &[(&str, Vec<u8>)],
    deflate: bool,
    descriptor: impl Fn(DataDescriptorOutput) -> DataDescriptorOutput,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut archive = ZipArchiveWriter::new(&mut out);
    for (name, data) in members {
        let method = if deflate {
            CompressionMethod::DEFLATE
        } else {
            CompressionMethod::STORE
        };
        let (mut entry, config) = archive
            .new_file(EntryPath::verbatim(name.as_bytes()))
            .compression_method(method)
            .start()
            .expect("an entry");
        let written = if deflate {
            let mut writer = config.wrap(DeflateEncoder::new(&mut entry, Compression::default()));
            writer.write_all(data).expect("deflated");
            let (encoder, written) = writer.finish().expect("finished");
            encoder.finish().expect("flushed");
            written
        } else {
            let mut writer = config.wrap(&mut entry);
            writer.write_all(data).expect("stored");
            writer.finish().expect("finished").1
        };
        entry.finish(descriptor(written)).expect("an entry");
    }
    archive.finish().expect("an archive");
    out
}

/// The format, offset, key and reason of a reader's error.
fn legacy(result: Result<impl std::fmt::Debug, Error>) -> (&'static str, u64, String, String) {
    match result {
        Err(Error::Legacy {
            format,
            offset,
            key,
            reason,
        }) => (format, offset, key, reason),
        other => panic!("not an error of a legacy reader: {other:?}"),
    }
}

fn npy_error(bytes: &[u8]) -> (u64, String) {
    let (format, offset, _, reason) = legacy(npy::read(bytes));
    assert_eq!(format, "npy");
    (offset, reason)
}

fn tensor(bytes: &[u8]) -> Tensor {
    match npy::read(bytes) {
        Ok(NpyArray::Tensor(tensor)) => tensor,
        other => panic!("not a tensor: {other:?}"),
    }
}

fn objax_kinds(name: &str) -> VarKind {
    if name.ends_with(".running_mean") || name.ends_with(".running_var") {
        VarKind::StateVar
    } else {
        VarKind::TrainVar
    }
}

#[test]
fn haiku_npz_writes_python_safejax_bytes() -> Result<(), Error> {
    let expected = fixture("haiku_mlp.safetensors");
    let (_, metadata) = haiku::deserialize_with_metadata(&expected)?;
    let metadata = (!metadata.is_empty()).then_some(&metadata);
    let from_slice = npz::haiku_from_slice(&fixture("haiku_mlp_af.npz"), None)?;
    let from_file = npz::haiku_from_file(format!("{FIXTURES}/haiku_mlp_af.npz"), None)?;
    assert_eq!(from_slice, from_file);
    assert_eq!(haiku::serialize(&from_slice, metadata)?, expected);
    assert_eq!(from_slice, haiku::deserialize(&expected)?);
    Ok(())
}

#[test]
fn haiku_npz_under_a_collection() -> Result<(), Error> {
    let tree = npz::haiku_from_slice(&fixture("haiku_mlp_af.npz"), Some("params"))?;
    let keys: Vec<String> = tree.flatten()?.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "params.mlp/~/linear_0.b",
            "params.mlp/~/linear_0.w",
            "params.mlp/~/linear_1.b",
            "params.mlp/~/linear_1.w"
        ]
    );
    for bad in ["", "a.b"] {
        let err = npz::haiku_from_slice(&fixture("haiku_mlp_af.npz"), Some(bad));
        assert!(
            matches!(err, Err(Error::Invalid { .. })),
            "{bad:?}: {err:?}"
        );
    }
    Ok(())
}

#[test]
fn objax_npz_writes_python_safejax_bytes() -> Result<(), Error> {
    let expected = fixture("objax_mlp.safetensors");
    let (expected_vars, metadata) = objax::deserialize_with_metadata(&expected)?;
    let metadata = (!metadata.is_empty()).then_some(&metadata);
    let from_slice = npz::objax_from_slice(&fixture("objax_mlp.npz"), objax_kinds)?;
    let from_file = npz::objax_from_file(format!("{FIXTURES}/objax_mlp.npz"), objax_kinds)?;
    assert_eq!(from_slice, from_file);
    assert_eq!(from_slice, expected_vars);
    assert_eq!(objax::serialize(&from_slice, metadata)?, expected);
    Ok(())
}

#[test]
fn objax_kinds_come_from_the_caller() -> Result<(), Error> {
    let vars = npz::objax_from_slice(&fixture("objax_mlp.npz"), |name| {
        if name.ends_with(".b") {
            VarKind::StateVar
        } else {
            VarKind::TrainVar
        }
    })?;
    let bytes = objax::serialize(&vars, None)?;
    let again = objax::deserialize(&bytes)?;
    assert_eq!(
        again["(OMLP).layers(Sequential)[0](Linear).b"].kind,
        VarKind::StateVar
    );
    assert_eq!(
        again["(OMLP).layers(Sequential)[0](Linear).w"].kind,
        VarKind::TrainVar
    );
    Ok(())
}

#[test]
fn arrays_come_in_archive_order() -> Result<(), Error> {
    let arrays = npz::arrays_from_slice(&fixture("haiku_mlp_af.npz"))?;
    let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "mlp/~/linear_0//w",
            "mlp/~/linear_0//b",
            "mlp/~/linear_1//w",
            "mlp/~/linear_1//b"
        ]
    );
    assert_eq!(
        npz::arrays_from_file(format!("{FIXTURES}/haiku_mlp_af.npz"))?,
        arrays
    );
    // `names` is unicode, not a tensor.
    let (format, _, key, reason) = legacy(npz::arrays_from_slice(&fixture("objax_mlp.npz")));
    assert_eq!((format, key.as_str()), ("npz", "names"));
    assert!(reason.contains("strings"), "{reason}");
    Ok(())
}

#[test]
fn a_deflated_archive_reads_as_the_stored_one() -> Result<(), Error> {
    for (file, expected) in [
        ("haiku_mlp_af.npz", "haiku_mlp.safetensors"),
        ("objax_mlp.npz", "objax_mlp.safetensors"),
    ] {
        let members = npz::members_from_slice(&fixture(file))?;
        let files: Vec<(String, Vec<u8>)> = members
            .iter()
            .map(|(name, array)| {
                let bytes = match array {
                    NpyArray::Tensor(tensor) => npy_of(tensor),
                    NpyArray::Strings { values, .. } => {
                        names_npy(&values.iter().map(String::as_str).collect::<Vec<_>>())
                    }
                    other => panic!("{other:?}"),
                };
                (format!("{name}.npy"), bytes)
            })
            .collect();
        let named: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        let deflated = zip(&named, true);
        assert_eq!(npz::members_from_slice(&deflated)?, members, "{file}");
        let expected = fixture(expected);
        let written = if file.starts_with("haiku") {
            haiku::serialize(&npz::haiku_from_slice(&deflated, None)?, None)?
        } else {
            objax::serialize(&npz::objax_from_slice(&deflated, objax_kinds)?, None)?
        };
        assert_eq!(written, expected, "{file}");
    }
    Ok(())
}

/// `np.savez_compressed` of a Fortran-ordered, a big-endian, a 0-d and a bool array
/// (`tests/data/make_compressed_npz.py`).
#[test]
fn numpy_compressed_npz_reads_in_row_major_little_endian() -> Result<(), Error> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/compressed_mixed.npz"
    );
    let tree = npz::haiku_from_file(path, None)?;
    assert_eq!(
        tree,
        npz::haiku_from_slice(&std::fs::read(path).expect("read"), None)?
    );
    let get = |key: &str| tree.tensor(key).unwrap_or_else(|| panic!("no {key}"));
    assert_eq!(
        get("mlp/~/linear_0.w").to_array::<f32, ndarray::Ix2>()?,
        ndarray::array![[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    );
    assert_eq!(
        get("mlp/~/linear_0.b").to_array::<f64, ndarray::Ix1>()?,
        ndarray::array![0.5, -1.0, 2.0]
    );
    assert_eq!(
        get("counter.count")
            .to_array::<i32, ndarray::Ix0>()?
            .into_scalar(),
        7
    );
    assert_eq!(
        get("mask.m").to_array::<bool, ndarray::Ix1>()?,
        ndarray::array![true, false]
    );
    // Every truncation errors.
    let bytes = std::fs::read(path).expect("read");
    for len in 0..bytes.len() {
        assert!(
            npz::members_from_slice(&bytes[..len]).is_err(),
            "cut at {len}"
        );
    }
    Ok(())
}

#[test]
fn every_truncation_of_the_fixtures_errors() {
    for file in ["haiku_mlp_af.npz", "objax_mlp.npz"] {
        let bytes = fixture(file);
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            assert!(npz::members_from_slice(cut).is_err(), "{file} cut at {len}");
            assert!(npz::haiku_from_slice(cut, None).is_err());
            assert!(npz::objax_from_slice(cut, objax_kinds).is_err());
        }
    }
}

#[test]
fn every_truncation_of_an_npy_errors() {
    let bytes = npy_file(1, &dict("<f4", false, "(2, 3)"), &[0; 24]);
    assert!(npy::read(&bytes).is_ok());
    for len in 0..bytes.len() {
        assert!(npy::read(&bytes[..len]).is_err(), "cut at {len}");
    }
}

#[test]
fn npy_versions_one_to_three() {
    for version in [1, 2, 3] {
        let bytes = npy_file(
            version,
            &dict("<i4", false, "(2,)"),
            &[1, 0, 0, 0, 2, 0, 0, 0],
        );
        let t = tensor(&bytes);
        assert_eq!((t.dtype(), t.shape()), (Dtype::I32, &[2][..]), "{version}");
        assert_eq!(t.data(), [1, 0, 0, 0, 2, 0, 0, 0]);
    }
    // 0-d and empty arrays.
    let t = tensor(&npy_file(1, &dict("<f8", false, "()"), &[0; 8]));
    assert_eq!(t.shape(), &[] as &[usize]);
    let t = tensor(&npy_file(1, &dict("|u1", false, "(0, 5)"), &[]));
    assert_eq!(t.shape(), &[0, 5]);
    // Keys in any order, double quotes, no trailing comma.
    let header = "{\"shape\": (1,), \"fortran_order\": False, \"descr\": \"|b1\"}";
    assert_eq!(tensor(&npy_file(1, header, &[1])).dtype(), Dtype::BOOL);
}

#[test]
fn npy_header_defects_are_refused_where_they_are() {
    let good = npy_file(1, &dict("<f4", false, "(2,)"), &[0; 8]);
    let mut bad_magic = good.clone();
    bad_magic[1] = b'n';
    assert_eq!(npy_error(&bad_magic).0, 0);
    assert!(npy_error(&bad_magic).1.contains("magic"));

    for version in [[4, 0], [1, 1], [0, 0]] {
        let mut bytes = good.clone();
        bytes[6..8].copy_from_slice(&version);
        let (offset, reason) = npy_error(&bytes);
        assert_eq!(offset, 6);
        assert!(reason.contains("version"), "{reason}");
    }

    let mut past_end = good.clone();
    past_end[8..10].copy_from_slice(&200u16.to_le_bytes());
    let (offset, reason) = npy_error(&past_end);
    assert_eq!(offset, 8);
    assert!(reason.contains("past the end"), "{reason}");

    let mut huge = b"\x93NUMPY\x02\x00".to_vec();
    huge.extend(u32::MAX.to_le_bytes());
    assert!(npy_error(&huge).1.contains("more than the 10000"));

    for (header, needle) in [
        ("{'descr': '<f4', 'shape': (2,), }", "no `fortran_order`"),
        ("{'fortran_order': False, 'shape': (2,), }", "no `descr`"),
        ("{'descr': '<f4', 'fortran_order': False, }", "no `shape`"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }",
            "key `extra`",
        ),
        (
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            "twice",
        ),
        (&dict("|O", false, "(2,)"), "object array"),
        (&dict("<c8", false, "(2,)"), "not read"),
        (&dict("<V2", false, "(2,)"), "raw bytes"),
        (&dict("|f4", false, "(2,)"), "no byte order"),
        (&dict("=f4", false, "(2,)"), "byte order"),
        (&dict("<f4", false, "(8)"), "a number"),
        (&dict("<f4", false, "(02,)"), "leading zero"),
        (&dict("<f4", false, "(-2,)"), "a dimension"),
        (
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
            "quoted string",
        ),
        (
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }",
            "`True` or `False`",
        ),
        (
            "{'descr': '<\\f4', 'fortran_order': False, 'shape': (2,), }",
            "escape",
        ),
    ] {
        let bytes = npy_file(1, header, &[0; 8]);
        let (offset, reason) = npy_error(&bytes);
        assert!(reason.contains(needle), "{header}: {reason}");
        assert!((10..10 + 128).contains(&offset), "{header}: {offset}");
    }

    // No newline at the end of the header.
    let mut bytes = good.clone();
    let newline = good.len() - 8 - 1;
    assert_eq!(bytes[newline], b'\n');
    bytes[newline] = b' ';
    assert!(npy_error(&bytes).1.contains("newline"));
    // Version 3 headers are UTF-8.
    let mut bytes = npy_file(3, &dict("<f4", false, "(2,)"), &[0; 8]);
    let padding = bytes.len() - 8 - 2;
    bytes[padding] = 0xff;
    assert!(npy_error(&bytes).1.contains("UTF-8"));
}

#[test]
fn npy_data_must_fill_the_shape_exactly() {
    let header = dict("<f4", false, "(2, 3)");
    let start = npy_file(1, &header, &[]).len() as u64;
    let (offset, reason) = npy_error(&npy_file(1, &header, &[0; 20]));
    assert_eq!(offset, start);
    assert!(reason.contains("needs 24"), "{reason}");
    let (offset, reason) = npy_error(&npy_file(1, &header, &[0; 28]));
    assert_eq!(offset, start);
    assert!(reason.contains("4 bytes after"), "{reason}");
    // A shape whose size overflows, and one whose size does not fit the file.
    let max = usize::MAX;
    let reason = npy_error(&npy_file(
        1,
        &dict("<f8", false, &format!("({max}, 2)")),
        &[],
    ))
    .1;
    assert!(reason.contains("overflows"), "{reason}");
    let reason = npy_error(&npy_file(
        1,
        &dict("<f8", false, "(99999999999999999999999,)"),
        &[],
    ))
    .1;
    assert!(reason.contains("too large"), "{reason}");
    let half = max / 2;
    let reason = npy_error(&npy_file(
        1,
        &dict("|u1", false, &format!("({half},)")),
        &[],
    ))
    .1;
    assert!(reason.contains("needs"), "{reason}");
    // A bool that is neither 0 nor 1.
    let header = dict("|b1", false, "(3,)");
    let (offset, reason) = npy_error(&npy_file(1, &header, &[0, 1, 2]));
    assert_eq!(offset, npy_file(1, &header, &[]).len() as u64 + 2);
    assert!(reason.contains("neither 0 nor 1"), "{reason}");
}

#[test]
fn big_endian_arrays_are_swapped() {
    let t = tensor(&npy_file(
        1,
        &dict(">i4", false, "(2,)"),
        &[0, 0, 1, 2, 0xff, 0xff, 0xff, 0xfe],
    ));
    assert_eq!(
        t.to_array::<i32, ndarray::Ix1>().ok(),
        Some(ndarray::array![258, -2])
    );
    let t = tensor(&npy_file(
        1,
        &dict(">f8", false, "(1,)"),
        &2.5f64.to_be_bytes(),
    ));
    assert_eq!(t.data(), 2.5f64.to_le_bytes());
    let t = tensor(&npy_file(1, &dict(">u2", false, "(1,)"), &[1, 2]));
    assert_eq!(t.data(), [2, 1]);
    let mut data = Vec::new();
    for c in "héllo\0".chars() {
        data.extend(u32::from(c).to_be_bytes());
    }
    match npy::read(&npy_file(1, &dict(">U3", false, "(2,)"), &data)) {
        Ok(NpyArray::Strings { shape, values }) => {
            assert_eq!(shape, [2]);
            assert_eq!(values, ["hél", "lo"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fortran_order_is_transposed_to_row_major() {
    // np.asfortranarray([[1, 2, 3], [4, 5, 6]]) stores 1, 4, 2, 5, 3, 6.
    let data: Vec<u8> = [1i32, 4, 2, 5, 3, 6]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let t = tensor(&npy_file(1, &dict("<i4", true, "(2, 3)"), &data));
    assert_eq!(
        t.to_array::<i32, ndarray::Ix2>().ok(),
        Some(ndarray::array![[1, 2, 3], [4, 5, 6]])
    );
    // Three dimensions: element (i, j, k) at i + 2 j + 6 k.
    let data: Vec<u8> = (0..24u8).collect();
    let t = tensor(&npy_file(1, &dict("|u1", true, "(2, 3, 4)"), &data));
    let a = t.to_array::<u8, ndarray::Ix3>().expect("u8");
    for ((i, j, k), &v) in a.indexed_iter() {
        assert_eq!(usize::from(v), i + 2 * j + 6 * k);
    }
}

#[test]
fn unicode_that_is_no_character_is_refused() {
    let data = [0x41, 0, 0, 0, 0, 0xd8, 0, 0];
    let header = dict("<U2", false, "(1,)");
    let (offset, reason) = npy_error(&npy_file(1, &header, &data));
    assert_eq!(offset, npy_file(1, &header, &[]).len() as u64 + 4);
    assert!(reason.contains("0xd800"), "{reason}");
    assert!(
        npy_error(&npy_file(1, &dict("<U0", false, "(5,)"), &[]))
            .1
            .contains("width")
    );
}

fn stored_npy(name: &str) -> (&str, Vec<u8>) {
    (name, npy_file(1, &dict("<f4", false, "(2,)"), &[0; 8]))
}

fn names_npy(names: &[&str]) -> Vec<u8> {
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut data = Vec::new();
    for name in names {
        let mut chars: Vec<u32> = name.chars().map(u32::from).collect();
        chars.resize(width, 0);
        chars.iter().for_each(|c| data.extend(c.to_le_bytes()));
    }
    let header = dict(&format!("<U{width}"), false, &format!("({},)", names.len()));
    npy_file(1, &header, &data)
}

#[test]
fn archive_members_must_be_npy_arrays_each_once() {
    let (_, _, key, reason) = legacy(npz::members_from_slice(&zip(&[stored_npy("a.txt")], false)));
    assert_eq!(key, "a.txt");
    assert!(reason.contains("`.npy`"), "{reason}");
    let twice = zip(&[stored_npy("a.npy"), stored_npy("a.npy")], false);
    assert!(legacy(npz::members_from_slice(&twice)).3.contains("twice"));
    let bad_npy = zip(&[("x.npy", b"\x93NUMPY\x09\x00....".to_vec())], true);
    let (format, offset, key, _) = legacy(npz::members_from_slice(&bad_npy));
    assert_eq!((format, offset, key.as_str()), ("npy", 6, "x"));
}

#[test]
fn haiku_member_names_need_one_double_slash() {
    for (name, needle) in [
        ("mlp/w.npy", "no `//`"),
        ("a//b//c.npy", "more than one"),
        ("//w.npy", "empty"),
        ("a.b//w.npy", "`.`"),
    ] {
        let archive = zip(&[stored_npy(name)], false);
        let (_, _, key, reason) = legacy(npz::haiku_from_slice(&archive, None));
        assert_eq!(key, name.trim_end_matches(".npy"));
        assert!(reason.contains(needle), "{name}: {reason}");
    }
}

#[test]
fn objax_needs_names_and_every_numbered_member() {
    let names = names_npy(&["(M).a", "(M).b"]);
    let ok = zip(
        &[
            ("names.npy", names.clone()),
            stored_npy("1.npy"),
            stored_npy("0.npy"),
        ],
        false,
    );
    let vars = npz::objax_from_slice(&ok, objax_kinds).expect("two variables");
    assert_eq!(vars.len(), 2);
    for (members, key, needle) in [
        (vec![stored_npy("0.npy")], "", "no member `names`"),
        (
            vec![("names.npy", names.clone()), stored_npy("0.npy")],
            "(M).b",
            "missing",
        ),
        (
            vec![
                ("names.npy", names.clone()),
                stored_npy("0.npy"),
                stored_npy("1.npy"),
                stored_npy("2.npy"),
            ],
            "2",
            "not a variable",
        ),
        (
            vec![
                ("names.npy", names.clone()),
                stored_npy("0.npy"),
                stored_npy("01.npy"),
            ],
            "01",
            "not a variable",
        ),
        (
            vec![
                ("names.npy", names_npy(&["(M).a", "(M).a"])),
                stored_npy("0.npy"),
                stored_npy("1.npy"),
            ],
            "(M).a",
            "twice",
        ),
        (
            vec![
                ("names.npy", names_npy(&["(M).a"])),
                ("0.npy", names_npy(&["x"])),
            ],
            "0",
            "strings",
        ),
    ] {
        let archive = zip(&members, false);
        let (_, _, k, reason) = legacy(npz::objax_from_slice(&archive, objax_kinds));
        assert_eq!(k, key, "{reason}");
        assert!(reason.contains(needle), "{reason}");
    }
    // No variables at all: numpy saves `np.array([])` as an empty float array.
    let empty = zip(
        &[("names.npy", npy_file(1, &dict("<f8", false, "(0,)"), &[]))],
        false,
    );
    assert!(
        npz::objax_from_slice(&empty, objax_kinds)
            .expect("empty")
            .is_empty()
    );
}

#[test]
fn a_member_that_inflates_past_its_declared_size_errors() {
    let npy = npy_file(1, &dict("<f4", false, "(4,)"), &[0; 16]);
    // The archive declares the npy's size, but the deflated data goes on for a megabyte.
    let mut long = npy.clone();
    long.resize(npy.len() + (1 << 20), 0);
    let crc = rawzip::crc32(&npy);
    let archive = zip_with(&[("a.npy", long)], true, |_| {
        DataDescriptorOutput::new(crc, npy.len() as u64)
    });
    let (format, _, key, reason) = legacy(npz::members_from_slice(&archive));
    assert_eq!((format, key.as_str()), ("npz", "a"));
    assert!(reason.contains("size"), "{reason}");
    // A declared size no deflate stream of that length can reach is refused before inflating.
    let archive = zip_with(&[("a.npy", npy.clone())], true, |written| {
        DataDescriptorOutput::new(written.crc(), 1 << 40)
    });
    let (_, _, _, reason) = legacy(npz::members_from_slice(&archive));
    assert!(reason.contains("can hold"), "{reason}");
    // A stored member whose declared size is not its data's.
    let archive = zip_with(&[("a.npy", npy.clone())], false, |written| {
        DataDescriptorOutput::new(written.crc(), written.uncompressed_size() + 1)
    });
    assert!(
        legacy(npz::members_from_slice(&archive))
            .3
            .contains("declares")
    );
    // A bad CRC.
    let archive = zip_with(&[("a.npy", npy)], true, |written| {
        DataDescriptorOutput::new(written.crc() ^ 1, written.uncompressed_size())
    });
    assert!(npz::members_from_slice(&archive).is_err());
}

#[test]
fn file_errors_name_the_path() {
    let err = npz::haiku_from_file(format!("{FIXTURES}/no-such.npz"), None);
    assert!(
        matches!(err, Err(Error::Io { action: "open", .. })),
        "{err:?}"
    );
    let (format, _, _, _) = legacy(npz::haiku_from_file(
        format!("{FIXTURES}/haiku_mlp.safetensors"),
        None,
    ));
    assert_eq!(format, "npz");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = npy::read(&bytes);
        let _ = npz::members_from_slice(&bytes);
        let mut npy_like = b"\x93NUMPY\x01\x00".to_vec();
        npy_like.extend(&bytes);
        let _ = npy::read(&npy_like);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        file in prop_oneof![Just("haiku_mlp_af.npz"), Just("objax_mlp.npz")],
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = fixture(file);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = npz::haiku_from_slice(&bytes, None);
        let _ = npz::objax_from_slice(&bytes, objax_kinds);
    }

    #[test]
    fn mutated_npy_headers_never_panic(
        edits in proptest::collection::vec((0usize..74, any::<u8>()), 1..6),
    ) {
        let mut bytes = npy_file(1, &dict("<f4", true, "(2, 3)"), &[0; 24]);
        for (at, value) in edits {
            bytes[at] = value;
        }
        let _ = npy::read(&bytes);
    }
}
