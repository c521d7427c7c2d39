//! Flax msgpack checkpoints read into trees: the Python-made fixtures byte for byte, and
//! hostile or malformed input refused with an offset and a key, never a panic.
#![cfg(feature = "msgpack")]

use std::path::PathBuf;

use proptest::prelude::*;
use safejax_core::legacy::msgpack;
use safejax_core::{Dtype, Error, Tree, flax};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/legacy")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The tree read from `bytes`, or the test fails with the error.
fn tree(bytes: &[u8]) -> Tree {
    msgpack::from_slice(bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// The offset, key and reason of the `Error::Legacy` that reading `bytes` must give.
fn refused(bytes: &[u8]) -> (u64, String, String) {
    match msgpack::from_slice(bytes) {
        Err(Error::Legacy {
            format,
            offset,
            key,
            reason,
        }) => {
            assert_eq!(format, "msgpack");
            assert!(offset <= bytes.len() as u64, "offset {offset} past the end");
            (offset, key, reason)
        }
        Err(other) => panic!("not a msgpack error: {other:#?}"),
        Ok(tree) => panic!("read: {tree:?}"),
    }
}

/// Reads `msgpack_name` and serializes it as Python safejax did `safetensors_name`.
fn assert_converts(msgpack_name: &str, safetensors_name: &str) {
    let expected = read(safetensors_name);
    let (_, metadata) =
        flax::deserialize_with_metadata(&expected).unwrap_or_else(|e| panic!("{e}"));
    let metadata = (!metadata.is_empty()).then_some(&metadata);
    let from_slice = tree(&read(msgpack_name));
    let bytes = flax::serialize(&from_slice, metadata).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        bytes == expected,
        "{msgpack_name} does not give {safetensors_name}"
    );
    let from_file = msgpack::from_file(fixture(msgpack_name)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_file, from_slice);
}

#[test]
fn flax_mlp_converts_byte_for_byte() {
    assert_converts("flax_mlp.msgpack", "flax_mlp.safetensors");
}

#[test]
fn flax_chunked_converts_byte_for_byte() {
    assert_converts("flax_chunked.msgpack", "flax_chunked.safetensors");
    let variables = tree(&read("flax_chunked.msgpack"));
    let embedding = variables.tensor("params.embed.embedding");
    assert_eq!(embedding.map(|t| t.shape()), Some(&[32, 8][..]));
    let count = variables.tensor("batch_stats.count");
    assert_eq!(count.map(|t| t.dtype()), Some(Dtype::I32));
}

#[test]
fn every_truncation_is_refused() {
    for name in ["flax_mlp.msgpack", "flax_chunked.msgpack"] {
        let bytes = read(name);
        for len in 0..bytes.len() {
            refused(&bytes[..len]);
        }
    }
}

#[test]
fn missing_and_empty_files() {
    let missing = msgpack::from_file(fixture("no_such_file.msgpack"));
    assert!(matches!(missing, Err(Error::Io { .. })), "{missing:?}");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let empty = dir.path().join("empty.msgpack");
    std::fs::write(&empty, b"").unwrap_or_else(|e| panic!("{e}"));
    let result = msgpack::from_file(&empty);
    assert!(
        matches!(result, Err(Error::Legacy { offset: 0, .. })),
        "{result:?}"
    );
}

// Hand-written msgpack, enough to build hostile inputs.

fn map(len: usize) -> Vec<u8> {
    match len {
        0..16 => vec![0x80 | len as u8],
        _ => [&[0xde][..], &(len as u16).to_be_bytes()].concat(),
    }
}

fn array(len: usize) -> Vec<u8> {
    match len {
        0..16 => vec![0x90 | len as u8],
        _ => [&[0xdc][..], &(len as u16).to_be_bytes()].concat(),
    }
}

fn string(text: &str) -> Vec<u8> {
    assert!(text.len() < 256);
    [&[0xd9, text.len() as u8][..], text.as_bytes()].concat()
}

fn uint(n: u64) -> Vec<u8> {
    [&[0xcf][..], &n.to_be_bytes()].concat()
}

fn bin(data: &[u8]) -> Vec<u8> {
    [&[0xc6][..], &(data.len() as u32).to_be_bytes(), data].concat()
}

fn ext(typeid: i8, payload: &[u8]) -> Vec<u8> {
    [
        &[0xc9][..],
        &(payload.len() as u32).to_be_bytes(),
        &[typeid as u8],
        payload,
    ]
    .concat()
}

/// An array as Flax writes it: extension 1 holding `[shape, dtype, data]`.
fn ndarray(shape: &[u64], dtype: &str, data: &[u8]) -> Vec<u8> {
    ext(1, &payload(shape, dtype, data))
}

fn payload(shape: &[u64], dtype: &str, data: &[u8]) -> Vec<u8> {
    let mut out = array(3);
    out.extend(array(shape.len()));
    shape.iter().for_each(|&d| out.extend(uint(d)));
    out.extend(string(dtype));
    out.extend(bin(data));
    out
}

/// A map of `entries` (name, encoded value), in that order.
fn dict(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = map(entries.len());
    for (name, value) in entries {
        out.extend(string(name));
        out.extend(value);
    }
    out
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A chunked array of `shape` whose chunks are `chunks`, its entries in `order`.
fn chunked(shape: &[u64], chunks: &[Vec<u8>], order: [&str; 3]) -> Vec<u8> {
    let shape: Vec<(String, Vec<u8>)> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| (i.to_string(), uint(d)))
        .collect();
    let shape: Vec<(&str, Vec<u8>)> = shape.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let names: Vec<String> = (0..chunks.len()).map(|i| i.to_string()).collect();
    let chunks: Vec<(&str, Vec<u8>)> = names
        .iter()
        .map(String::as_str)
        .zip(chunks.iter().cloned())
        .collect();
    let entries: Vec<(&str, Vec<u8>)> = order
        .iter()
        .map(|&part| match part {
            "shape" => ("shape", dict(&shape)),
            "chunks" => ("chunks", dict(&chunks)),
            marker => (marker, vec![0xc3]),
        })
        .collect();
    dict(&entries)
}

const MARKER: &str = "__msgpack_chunked_array__";

fn chunk(values: &[f32]) -> Vec<u8> {
    ndarray(&[values.len() as u64], "float32", &f32s(values))
}

#[test]
fn arrays_scalars_lists_and_dtypes() {
    let bytes = dict(&[
        ("w", ndarray(&[2], "float32", &f32s(&[1.0, 2.0]))),
        (
            "scalar",
            ext(3, &payload(&[], "int64", &7i64.to_le_bytes())),
        ),
        ("half", ndarray(&[1], "bfloat16", &[0x80, 0x3f])),
        ("mask", ndarray(&[2], "bool", &[1, 0])),
        // A msgpack array: a list, keyed by index.
        (
            "layers",
            [array(2), dict(&[("b", chunk(&[3.0]))]), chunk(&[4.0])].concat(),
        ),
        // Empty dicts vanish, and so do dicts holding only empty dicts.
        ("empty", dict(&[("nothing", map(0))])),
    ]);
    let tree = tree(&bytes);
    let keys: Vec<String> = tree
        .flatten()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(
        keys,
        ["half", "layers.0.b", "layers.1", "mask", "scalar", "w"]
    );
    let scalar = tree.tensor("scalar").unwrap_or_else(|| panic!("no scalar"));
    assert_eq!((scalar.dtype(), scalar.shape()), (Dtype::I64, &[][..]));
    assert_eq!(tree.tensor("half").map(|t| t.dtype()), Some(Dtype::BF16));
}

#[test]
fn chunks_join_whatever_the_order_of_entries() {
    let chunks = [chunk(&[1.0, 2.0, 3.0, 4.0]), chunk(&[5.0, 6.0])];
    let flax_order = chunked(&[3, 2], &chunks, [MARKER, "shape", "chunks"]);
    let reversed = chunked(&[3, 2], &chunks, ["chunks", "shape", MARKER]);
    for bytes in [flax_order, reversed] {
        let tree = tree(&dict(&[("embedding", bytes)]));
        let tensor = tree
            .tensor("embedding")
            .unwrap_or_else(|| panic!("{tree:?}"));
        assert_eq!(tensor.shape(), &[3, 2]);
        assert_eq!(tensor.data(), f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    }
    // Without the marker, `shape` and `chunks` are entries like any other.
    let plain = dict(&[("shape", chunk(&[1.0])), ("chunks", chunk(&[2.0]))]);
    let tree = tree(&plain);
    assert!(tree.tensor("shape").is_some() && tree.tensor("chunks").is_some());
}

#[test]
fn chunks_that_do_not_fill_the_shape_are_refused() {
    let chunks = [chunk(&[1.0, 2.0, 3.0]), chunk(&[5.0, 6.0])];
    let bytes = dict(&[(
        "params",
        dict(&[(
            "embedding",
            chunked(&[3, 2], &chunks, [MARKER, "shape", "chunks"]),
        )]),
    )]);
    let (offset, key, reason) = refused(&bytes);
    assert_eq!(key, "params.embedding");
    assert!(reason.contains("the chunks hold 20 bytes"), "{reason}");
    assert!(reason.contains("needs 24"), "{reason}");
    // The offset of the marker key.
    assert_eq!(
        bytes.get(offset as usize + 2..offset as usize + 27),
        Some(MARKER.as_bytes())
    );
}

#[test]
fn malformed_chunked_arrays_are_refused() {
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            chunked(&[2], &[], [MARKER, "shape", "chunks"]),
            "x",
            "has no chunks",
        ),
        (
            dict(&[(MARKER, vec![0xc3]), ("shape", dict(&[("0", uint(2))]))]),
            "x",
            "has no `chunks`",
        ),
        (
            dict(&[
                (MARKER, vec![0xc3]),
                ("shape", dict(&[("0", uint(2))])),
                ("chunks", dict(&[("1", chunk(&[1.0, 2.0]))])),
            ]),
            "x.chunks",
            "its keys must be \"0\" to \"0\"",
        ),
        (
            dict(&[
                (MARKER, vec![0xc3]),
                ("shape", dict(&[("0", uint(2))])),
                (
                    "chunks",
                    dict(&[("0", chunk(&[1.0])), ("0", chunk(&[2.0]))]),
                ),
            ]),
            "x.chunks",
            "twice",
        ),
        (
            dict(&[
                (MARKER, vec![0xc3]),
                ("shape", dict(&[("0", uint(2))])),
                (
                    "chunks",
                    dict(&[("0", chunk(&[1.0])), ("1", ndarray(&[1], "int32", &[0; 4]))]),
                ),
            ]),
            "x",
            "chunk 1 is I32",
        ),
        (
            dict(&[
                (MARKER, vec![0xc3]),
                ("shape", dict(&[("0", uint(2))])),
                (
                    "chunks",
                    dict(&[("0", ndarray(&[1, 2], "float32", &f32s(&[1.0, 2.0])))]),
                ),
            ]),
            "x.chunks.0",
            "flat array",
        ),
        (
            dict(&[
                (MARKER, vec![0xc3]),
                ("shape", [array(1), uint(2)].concat()),
                ("chunks", dict(&[("0", chunk(&[1.0]))])),
            ]),
            "x.shape",
            "must be a map",
        ),
        (
            dict(&[
                (MARKER, vec![0xc3]),
                ("shape", dict(&[("0", uint(2))])),
                ("chunks", dict(&[("0", chunk(&[1.0, 2.0]))])),
                ("extra", chunk(&[1.0])),
            ]),
            "x",
            "has an entry `extra`",
        ),
        (
            [
                &map(2)[..],
                &string(MARKER),
                &[0xc3],
                &string(MARKER),
                &[0xc3],
            ]
            .concat(),
            "x",
            "twice",
        ),
    ];
    for (chunked, key, words) in cases {
        let (_, found_key, reason) = refused(&dict(&[("x", chunked)]));
        assert_eq!(found_key, key, "{reason}");
        assert!(reason.contains(words), "{reason}");
    }
}

#[test]
fn complex_values_are_refused() {
    let complex = dict(&[("z", ext(2, &[0x92, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x00]))]);
    let (offset, key, reason) = refused(&complex);
    assert_eq!((offset, key.as_str()), (4, "z"));
    assert!(
        reason.contains("complex number (extension type 2)"),
        "{reason}"
    );

    let array = dict(&[("z", ndarray(&[1], "complex64", &[0; 8]))]);
    let (_, key, reason) = refused(&array);
    assert_eq!(key, "z");
    assert!(reason.contains("`complex64` is complex"), "{reason}");
}

#[test]
fn unknown_dtypes_and_extensions_are_refused() {
    let (_, key, reason) = refused(&dict(&[("s", ndarray(&[1], "<U3", &[0; 12]))]));
    assert_eq!(key, "s");
    assert!(
        reason.contains("the dtype `<U3` has no safetensors counterpart"),
        "{reason}"
    );
    let (_, key, reason) = refused(&dict(&[("e", ext(7, &[1, 2, 3]))]));
    assert_eq!(key, "e");
    assert!(reason.contains("unknown extension type 7"), "{reason}");
    let (_, _, reason) = refused(&dict(&[("e", ext(-1, &[0; 4]))]));
    assert!(reason.contains("unknown extension type -1"), "{reason}");
}

#[test]
fn shapes_must_match_their_data() {
    let (offset, key, reason) = refused(&dict(&[("w", ndarray(&[3], "float32", &[0; 8]))]));
    assert_eq!((offset, key.as_str()), (4, "w"));
    assert!(
        reason.contains("needs 12 bytes, its data has 8"),
        "{reason}"
    );
    let huge = 1u64 << 32;
    let (_, _, reason) = refused(&dict(&[(
        "w",
        ndarray(&[huge, huge, huge], "float32", &[]),
    )]));
    assert!(reason.contains("overflows"), "{reason}");
    let negative = [
        &array(3)[..],
        &array(1),
        &[0xff],
        &string("float32"),
        &bin(&[]),
    ]
    .concat();
    let (_, _, reason) = refused(&dict(&[("w", ext(1, &negative))]));
    assert!(reason.contains("negative"), "{reason}");
    let two = [&array(2)[..], &array(0), &string("float32")].concat();
    let (_, _, reason) = refused(&dict(&[("w", ext(1, &two))]));
    assert!(reason.contains("found one of 2 items"), "{reason}");
    let trailing = [payload(&[1], "uint8", &[5]), vec![0xc0]].concat();
    let (_, _, reason) = refused(&dict(&[("w", ext(1, &trailing))]));
    assert!(
        reason.contains("1 bytes follow the array's data"),
        "{reason}"
    );
}

#[test]
fn declared_lengths_beyond_the_input_are_refused() {
    // A binary length of 4 GiB inside an extension of a few bytes.
    let inner = [
        &array(3)[..],
        &array(0),
        &string("uint8"),
        &[0xc6, 0xff, 0xff, 0xff, 0xff],
    ]
    .concat();
    let (_, key, reason) = refused(&dict(&[("w", ext(1, &inner))]));
    assert_eq!(key, "w");
    assert!(
        reason.contains("declares a length of 4294967295"),
        "{reason}"
    );
    // An extension longer than the file.
    let (offset, _, reason) = refused(&dict(&[("w", vec![0xc9, 0xff, 0xff, 0xff, 0xff, 1])]));
    assert_eq!(offset, 4);
    assert!(reason.contains("declares 4294967295 bytes"), "{reason}");
    // A map of 4 billion entries, a string key longer than the file.
    let (offset, _, reason) = refused(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'a']);
    assert_eq!(offset, 0);
    assert!(reason.contains("more than the 2 bytes left"), "{reason}");
    let (_, _, reason) = refused(&[0x81, 0xdb, 0xff, 0xff, 0xff, 0xff]);
    assert!(reason.contains("a map key declares"), "{reason}");
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    for open in [string("a"), vec![]] {
        let mut bytes = Vec::new();
        for _ in 0..100_000 {
            if open.is_empty() {
                bytes.extend(array(1));
            } else {
                bytes.extend(map(1));
                bytes.extend(&open);
            }
        }
        bytes.extend(chunk(&[1.0]));
        let (_, key, reason) = refused(&bytes);
        assert!(reason.contains("nested deeper than 128 levels"), "{reason}");
        assert_eq!(key.split('.').count(), 128);
    }
    // The same depth inside an entry that is skipped first (`shape` of a would-be chunked
    // array) costs a loop, not the stack.
    let mut deep = vec![0x91; 100_000];
    deep.push(0xc0);
    let bytes = dict(&[("x", dict(&[("shape", deep)]))]);
    let (_, key, reason) = refused(&bytes);
    assert!(key.starts_with("x.shape.0.0"), "{key}");
    assert!(reason.contains("nested deeper"), "{reason}");
    // 128 levels are fine.
    let mut bytes = Vec::new();
    for _ in 0..128 {
        bytes.extend(map(1));
        bytes.extend(string("a"));
    }
    bytes.extend(chunk(&[1.0]));
    assert_eq!(tree(&bytes).flatten().map(|f| f.len()).ok(), Some(1));
}

#[test]
fn keys_must_be_names() {
    let (offset, key, reason) = refused(&[&map(1)[..], &uint(1), &chunk(&[1.0])].concat());
    assert_eq!((offset, key.as_str()), (1, ""));
    assert!(
        reason.contains("a map key is an integer, not a string"),
        "{reason}"
    );
    let (_, key, reason) = refused(&dict(&[("a", dict(&[("b.c", chunk(&[1.0]))]))]));
    assert_eq!(key, "a");
    assert!(reason.contains("`b.c` cannot name an entry"), "{reason}");
    let (_, _, reason) = refused(&dict(&[("", chunk(&[1.0]))]));
    assert!(reason.contains("names must be non-empty"), "{reason}");
    let (_, _, reason) = refused(&[0x81, 0xa1, 0xff, 0xc0]);
    assert!(reason.contains("not valid UTF-8"), "{reason}");
    let (_, key, reason) = refused(&dict(&[("w", chunk(&[1.0])), ("w", chunk(&[2.0]))]));
    assert_eq!(key, "");
    assert!(reason.contains("`w` is in this map twice"), "{reason}");
}

#[test]
fn plain_values_are_refused_naming_their_key() {
    let plain: [Vec<u8>; 6] = [
        uint(3),
        vec![0xc0],
        vec![0xc3],
        vec![0xcb, 0, 0, 0, 0, 0, 0, 0, 0],
        string("adam"),
        bin(&[1, 2]),
    ];
    for (value, kind) in plain
        .into_iter()
        .zip(["integer", "nil", "boolean", "float", "string", "binary"])
    {
        let bytes = dict(&[("opt", dict(&[("step", value)]))]);
        let (offset, key, reason) = refused(&bytes);
        assert_eq!((offset, key.as_str()), (13, "opt.step"));
        assert!(
            reason.contains(kind) && reason.contains("neither an array nor a dict"),
            "{reason}"
        );
    }
}

#[test]
fn roots_and_trailing_bytes() {
    let (offset, _, reason) = refused(&chunk(&[1.0]));
    assert_eq!(offset, 0);
    assert!(reason.contains("the root is an array"), "{reason}");
    let bytes = [dict(&[("w", chunk(&[1.0]))]), vec![0xc0, 0xc0]].concat();
    let (offset, _, reason) = refused(&bytes);
    assert_eq!(offset as usize, bytes.len() - 2);
    assert!(reason.contains("2 bytes follow"), "{reason}");
    assert!(tree(&map(0)).is_empty());
    let (_, _, reason) = refused(&[0xc1]);
    assert!(reason.contains("reserved byte"), "{reason}");
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = msgpack::from_slice(&bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..2usize,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let name = ["flax_mlp.msgpack", "flax_chunked.msgpack"][which];
        let mut bytes = read(name);
        for (at, byte) in edits {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        if let Err(error) = msgpack::from_slice(&bytes) {
            prop_assert!(matches!(error, Error::Legacy { .. }), "{error:#?}");
        }
    }
}
