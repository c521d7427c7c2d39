//! Hostile input: every malformed file is an error that says what is wrong and where (the byte
//! offset, and the tensor when one is concerned), through the typed API and the tree API alike,
//! never a panic or an allocation sized by a length the file claims. Values that would write an
//! ambiguous or reserved key are refused before a byte is written.

mod common;

use common::{colliding_maps, tree_with};

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayD, array};
use safejax::{
    Error, FieldInfo, HaikuSep, KeyPath, Loader, Reader, SafeParams, Saver, Style, Tensor, Tree,
    Visitor, VisitorMut, flax, haiku, objax,
};

/// The system allocator, noting the largest request made by each thread.
struct LargestRequest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the thread may be tearing its locals down.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; noting a size touches only a const-initialized thread local, which
// does not allocate.
unsafe impl GlobalAlloc for LargestRequest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestRequest = LargestRequest;

/// The largest single allocation `f` makes on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    let value = f();
    (value, LARGEST.with(Cell::get))
}

/// More than any of the hostile files (a few KiB) can need, far less than their lying lengths.
const ALLOCATION_BOUND: usize = 1 << 20;

const FIXTURES: [&str; 4] = [
    "flax_mlp.safetensors",
    "haiku_bn.safetensors",
    "haiku_mlp.safetensors",
    "objax_mlp.safetensors",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// A file from its parts: the 8-byte little-endian header length, the header, the data.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    file_bytes(header.as_bytes(), data)
}

/// [`file`] with a header that need not be text.
fn file_bytes(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// A header length followed by arbitrary bytes.
fn raw(header_len: u64, rest: &[u8]) -> Vec<u8> {
    let mut out = header_len.to_le_bytes().to_vec();
    out.extend_from_slice(rest);
    out
}

/// The header text and the data of a fixture.
fn split(bytes: &[u8]) -> (String, &[u8]) {
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[..8]);
    let end = 8 + u64::from_le_bytes(len) as usize;
    let header = std::str::from_utf8(&bytes[8..end]).unwrap_or_else(|e| panic!("{e}"));
    (header.to_owned(), &bytes[end..])
}

/// `header` padded with spaces to a multiple of 8 bytes, as the writer pads it.
fn padded(header: &str) -> String {
    format!("{header:<width$}", width = header.len().next_multiple_of(8))
}

/// A fixture whose header text is rewritten by `edit`, the length recomputed and the data kept.
fn edited(name: &str, edit: impl FnOnce(&str) -> String) -> Vec<u8> {
    let bytes = fixture(name);
    let (header, data) = split(&bytes);
    let header = header.trim_end();
    let new = edit(header);
    assert_ne!(new, header, "the edit of {name} changed nothing");
    file(&padded(&new), data)
}

/// Where the data of `header` starts: after the length and the header.
fn data_start(header: &str) -> u64 {
    8 + header.len() as u64
}

type Read = fn(&[u8]) -> Result<(), Error>;

/// Every way to read bytes: typed values (no derive needed) and the three tree APIs.
const READERS: [(&str, Read); 6] = [
    ("Vec<Array2<f32>>", |b| {
        Vec::<Array2<f32>>::from_bytes(b).map(drop)
    }),
    ("BTreeMap<String, ArrayD<f32>>", |b| {
        BTreeMap::<String, ArrayD<f32>>::from_bytes(b).map(drop)
    }),
    ("Option<[Array1<f32>; 2]>", |b| {
        Option::<[Array1<f32>; 2]>::from_bytes(b).map(drop)
    }),
    ("flax::deserialize", |b| flax::deserialize(b).map(drop)),
    ("haiku::deserialize", |b| haiku::deserialize(b).map(drop)),
    ("objax::deserialize", |b| objax::deserialize(b).map(drop)),
];

/// One hostile file and the error every reader must give.
struct Case {
    what: &'static str,
    bytes: Vec<u8>,
    offset: u64,
    reason: String,
}

fn case(what: &'static str, bytes: Vec<u8>, offset: u64, reason: impl Into<String>) -> Case {
    Case {
        what,
        bytes,
        offset,
        reason: reason.into(),
    }
}

/// The byte offset in a file of the first `needle` in `header`.
fn at(header: &str, needle: &str) -> u64 {
    let i = header
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in `{header}`"));
    8 + i as u64
}

/// The byte offset in a file of data offset `offset`.
fn data_at(header: &str, offset: u64) -> u64 {
    data_start(header) + offset
}

/// The same header with its first `from` replaced by `to`.
fn with(header: &str, from: &str, to: &str) -> String {
    assert!(header.contains(from), "`{from}` not in `{header}`");
    header.replacen(from, to, 1)
}

/// The hand-made files, built from a valid header `w` (one F32 `[1]` tensor) or two tensors.
fn handmade() -> Vec<Case> {
    let w = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let ab = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    let cut = &w[..20];
    let bad_dtype = with(w, "F32", "F33");
    let lower_dtype = with(w, "F32", "float32");
    let int_dtype = with(w, r#""F32""#, "7");
    let no_offsets = with(w, r#","data_offsets":[0,4]"#, "");
    let negative = with(w, "[1]", "[-1]");
    let three = with(w, "[0,4]", "[0,4,8]");
    let one = with(w, "[0,4]", "[0]");
    let past_end = with(&with(w, "[1]", "[100]"), "[0,4]", "[0,400]");
    let huge_end = with(w, "[0,4]", "[0,18446744073709551615]");
    let backwards = with(
        ab,
        r#""shape":[1],"data_offsets":[4,8]"#,
        r#""shape":[0],"data_offsets":[4,0]"#,
    );
    let overlap = with(&with(ab, "[1]", "[2]"), "[0,4]", "[0,8]");
    let gap = with(ab, "[4,8]", "[8,12]");
    let late = with(w, "[0,4]", "[4,8]");
    let short = with(w, "[1]", "[2]");
    let long = with(&with(w, "F32", "I64"), "[1]", "[2,3]");
    let overflow = with(w, "[1]", "[4294967296,4294967296,2]");
    let zero_overflow = with(
        &with(w, "[1]", "[0,4294967296,4294967296]"),
        "[0,4]",
        "[0,0]",
    );
    let bytes_overflow = with(&with(w, "F32", "F64"), "[1]", "[4611686018427387903]");
    let nibbles = with(&with(w, "F32", "F4"), "[1]", "[3]");
    let duplicate = with(ab, r#""b""#, r#""a""#);
    let metadata_tensor = with(w, r#""w""#, r#""__metadata__""#);
    let metadata_int = r#"{"__metadata__":{"epoch":3}}"#;
    let metadata_list = r#"{"__metadata__":["a"]}"#;
    let metadata_twice = r#"{"__metadata__":{},"__metadata__":{}}"#;
    let entry_string = r#"{"w":"F32"}"#;
    vec![
        case(
            "empty input",
            Vec::new(),
            0,
            "0 bytes are too few for the 8-byte header length",
        ),
        case(
            "fewer than 8 bytes",
            vec![8, 0, 0, 0, 0, 0, 0],
            0,
            "7 bytes are too few for the 8-byte header length",
        ),
        case(
            "header length beyond the file",
            raw(100, b"{}"),
            0,
            "header length 100 runs past the end of the data (2 bytes follow it)",
        ),
        case(
            "header length u64::MAX",
            raw(u64::MAX, b"{}"),
            0,
            "header length 18446744073709551615 exceeds the limit of 100000000 bytes",
        ),
        case(
            "header length u64::MAX - 7 (8 + length wraps)",
            raw(u64::MAX - 7, b"{}"),
            0,
            "header length 18446744073709551608 exceeds the limit of 100000000 bytes",
        ),
        case(
            "header length just over the limit",
            raw(100_000_001, &[b' '; 64]),
            0,
            "header length 100000001 exceeds the limit of 100000000 bytes",
        ),
        case(
            "header length at the limit, file short",
            raw(100_000_000, b"{}"),
            0,
            "header length 100000000 runs past the end of the data (2 bytes follow it)",
        ),
        case(
            "empty header",
            file("", &[]),
            8,
            "header is not a valid safetensors header: EOF while parsing a value",
        ),
        case(
            "header not JSON",
            file("hello, world", &[]),
            8,
            "header is not a valid safetensors header: expected value",
        ),
        case(
            "header JSON but not an object",
            file("[1, 2]", &[]),
            8,
            "header is not a valid safetensors header: invalid type: sequence, expected a JSON object of tensor entries",
        ),
        case(
            "header cut inside the JSON",
            file(cut, &[]),
            8 + cut.len() as u64 - 1,
            "header is not a valid safetensors header: tensor `w`: EOF while parsing a value",
        ),
        case(
            "header not UTF-8",
            file_bytes(b"{\"w\xff\":{}}", &[]),
            8 + 3,
            "header is not valid UTF-8",
        ),
        case(
            "unknown dtype",
            file(&bad_dtype, &[0; 4]),
            data_at(&bad_dtype, 0),
            "tensor `w` has unknown dtype `F33`",
        ),
        case(
            "dtype in lower case",
            file(&lower_dtype, &[0; 4]),
            data_at(&lower_dtype, 0),
            "tensor `w` has unknown dtype `float32`",
        ),
        case(
            "dtype not a string",
            file(&int_dtype, &[0; 4]),
            at(&int_dtype, "7"),
            "header is not a valid safetensors header: tensor `w`: invalid type: integer `7`, expected a string",
        ),
        case(
            "missing data_offsets",
            file(&no_offsets, &[0; 4]),
            at(&no_offsets, "}}"),
            "header is not a valid safetensors header: tensor `w`: missing field `data_offsets`",
        ),
        case(
            "negative dimension",
            file(&negative, &[0; 4]),
            at(&negative, "1]"),
            "header is not a valid safetensors header: tensor `w`: invalid value: integer `-1`, expected usize",
        ),
        case(
            "three data offsets",
            file(&three, &[0; 4]),
            at(&three, "]}"),
            "header is not a valid safetensors header: tensor `w`: `data_offsets` holds more than two offsets",
        ),
        case(
            "one data offset",
            file(&one, &[0; 4]),
            at(&one, "]}"),
            "header is not a valid safetensors header: tensor `w`: invalid length 1, expected two data offsets [start, end]",
        ),
        case(
            "offsets past the end of the data",
            file(&past_end, &[0; 4]),
            data_at(&past_end, 0),
            "tensor `w` ends at data offset 400, past the end of the data (4 bytes)",
        ),
        case(
            "offsets near usize::MAX",
            file(&huge_end, &[0; 4]),
            data_at(&huge_end, 0),
            "tensor `w` of shape [1] and dtype F32 needs 4 bytes, its offsets span 18446744073709551615",
        ),
        case(
            "offsets that end before they start",
            file(&backwards, &[0; 4]),
            data_at(&backwards, 4),
            "tensor `b` ends at 0, before its start 4",
        ),
        case(
            "overlapping tensors",
            file(&overlap, &[0; 12]),
            data_at(&overlap, 4),
            "tensor `b` starts at data offset 4, which overlaps the previous tensor ending at 8",
        ),
        case(
            "a gap between tensors",
            file(&gap, &[0; 12]),
            data_at(&gap, 8),
            "tensor `b` starts at data offset 8, which leaves a gap after the previous tensor ending at 4",
        ),
        case(
            "a gap before the first tensor",
            file(&late, &[0; 8]),
            data_at(&late, 4),
            "tensor `w` starts at data offset 4, which leaves a gap after the previous tensor ending at 0",
        ),
        case(
            "bytes after the last tensor",
            file(w, &[0; 7]),
            data_at(w, 4),
            "3 bytes after the last tensor belong to no tensor",
        ),
        case(
            "offsets span less than shape x dtype",
            file(&short, &[0; 4]),
            data_at(&short, 0),
            "tensor `w` of shape [2] and dtype F32 needs 8 bytes, its offsets span 4",
        ),
        case(
            "offsets span less than shape x dtype, 2-d",
            file(&long, &[0; 4]),
            data_at(&long, 0),
            "tensor `w` of shape [2, 3] and dtype I64 needs 48 bytes, its offsets span 4",
        ),
        case(
            "shape product overflow",
            file(&overflow, &[0; 4]),
            data_at(&overflow, 0),
            "tensor `w` of shape [4294967296, 4294967296, 2] and dtype F32 is too large: the product of its dimensions overflows",
        ),
        case(
            "shape product overflow behind a zero dimension",
            file(&zero_overflow, &[]),
            data_at(&zero_overflow, 0),
            "tensor `w` of shape [0, 4294967296, 4294967296] and dtype F32 is too large: the product of its dimensions overflows",
        ),
        case(
            "byte size overflow",
            file(&bytes_overflow, &[0; 4]),
            data_at(&bytes_overflow, 0),
            "tensor `w` of shape [4611686018427387903] and dtype F64 is too large: the product of its dimensions overflows",
        ),
        case(
            "sub-byte dtype filling no whole byte",
            file(&nibbles, &[0; 4]),
            data_at(&nibbles, 0),
            "tensor `w` of shape [3] and dtype F4 does not fill a whole number of bytes",
        ),
        case(
            "duplicate tensor names",
            file(&duplicate, &[0; 8]),
            at(
                &duplicate,
                r#"":{"dtype":"F32","shape":[1],"data_offsets":[4,8]"#,
            ),
            "header is not a valid safetensors header: duplicate entry `a`",
        ),
        case(
            "a tensor named __metadata__",
            file(&metadata_tensor, &[0; 4]),
            8 + metadata_tensor.len() as u64 - 1,
            "header is not a valid safetensors header: `__metadata__` is reserved for the metadata map and cannot name a tensor",
        ),
        case(
            "metadata that is not a string map",
            file(metadata_int, &[]),
            8 + metadata_int.len() as u64 - 1,
            "header is not a valid safetensors header: `__metadata__` must map strings to strings, but `epoch` maps to 3",
        ),
        case(
            "metadata that is a list",
            file(metadata_list, &[]),
            at(metadata_list, ":["),
            "header is not a valid safetensors header: `__metadata__` must map strings to strings: invalid type: sequence, expected a map",
        ),
        case(
            "metadata twice",
            file(metadata_twice, &[]),
            at(metadata_twice, r#"":{}}"#),
            "header is not a valid safetensors header: duplicate entry `__metadata__`",
        ),
        case(
            "a tensor entry that is a string",
            file(entry_string, &[]),
            at(entry_string, r#""F32""#) + 4,
            "header is not a valid safetensors header: tensor `w`: invalid type: string \"F32\", expected a tensor entry {\"dtype\", \"shape\", \"data_offsets\"}",
        ),
    ]
}

/// The real fixtures, each with one thing broken.
fn mutated_fixtures() -> Vec<Case> {
    let flax = fixture("flax_mlp.safetensors");
    let (flax_header, _) = split(&flax);
    let (mlp_header, _) = split(&fixture("haiku_mlp.safetensors"));
    let (objax_header, _) = split(&fixture("objax_mlp.safetensors"));
    let mut length_too_long = flax.clone();
    length_too_long[..8].copy_from_slice(&(flax.len() as u64).to_le_bytes());
    let mut length_huge = fixture("haiku_mlp.safetensors");
    length_huge[7] = 0xff;
    let huge = u64::from_le_bytes(length_huge[..8].try_into().unwrap_or_default());
    let mut not_utf8 = fixture("objax_mlp.safetensors");
    not_utf8[9] = 0xc3;
    let mut truncated = flax.clone();
    truncated.pop();
    let mut cut_header = fixture("haiku_bn.safetensors");
    cut_header.truncate(100);
    let mut extra = fixture("haiku_mlp.safetensors");
    extra.extend_from_slice(&[0; 4]);
    // A header length 8 bytes short cuts the JSON inside the last entry.
    let mut short_length = flax.clone();
    short_length[..8].copy_from_slice(&(flax_header.len() as u64 - 8).to_le_bytes());
    let unknown = edited("flax_mlp.safetensors", |h| with(h, "F32", "F31"));
    let reshaped = edited("flax_mlp.safetensors", |h| with(h, "[8,16]", "[8,17]"));
    let overlap = edited("flax_mlp.safetensors", |h| {
        with(h, "[576,592]", "[560,592]")
    });
    let gap = edited("flax_mlp.safetensors", |h| {
        with(h, "[592,848]", "[596,852]")
    });
    let out_of_range = edited("haiku_bn.safetensors", |h| {
        with(
            &with(h, "[1236,1240]", "[1236,1244]"),
            r#""shape":[],"data_offsets":[1236"#,
            r#""shape":[2],"data_offsets":[1236"#,
        )
    });
    let overflow = edited("haiku_bn.safetensors", |h| {
        with(h, "[8,16]", "[8,16,9223372036854775807]")
    });
    let duplicate = edited("haiku_bn.safetensors", |h| {
        with(
            h,
            "state.batch_norm/~/var_ema.counter",
            "state.batch_norm/~/mean_ema.counter",
        )
    });
    let metadata = edited("objax_mlp.safetensors", |h| {
        with(
            h,
            "(OMLP).layers(Sequential)[0](Linear).b::TrainVar",
            "__metadata__",
        )
    });
    let wider = edited("objax_mlp.safetensors", |h| with(h, "F32", "F64"));
    let not_json = edited("flax_mlp.safetensors", |h| with(h, "{", "<"));
    let header_of = |bytes: &[u8]| split(bytes).0;
    vec![
        case(
            "flax_mlp: header length covering the whole file",
            length_too_long,
            0,
            format!(
                "header length {} runs past the end of the data ({} bytes follow it)",
                flax.len(),
                flax.len() - 8
            ),
        ),
        case(
            "haiku_mlp: header length with its top byte set",
            length_huge,
            0,
            format!("header length {huge} exceeds the limit of 100000000 bytes"),
        ),
        case(
            "objax_mlp: a header byte that is not UTF-8",
            not_utf8,
            9,
            "header is not valid UTF-8",
        ),
        case(
            "flax_mlp: last byte cut off",
            truncated,
            data_at(&flax_header, 592),
            "tensor `params.Dense_1.kernel` ends at data offset 848, past the end of the data (847 bytes)",
        ),
        case(
            "haiku_bn: cut inside the header",
            cut_header,
            0,
            "header length 1024 runs past the end of the data (92 bytes follow it)",
        ),
        case(
            "haiku_mlp: 4 bytes appended",
            extra,
            data_at(&mlp_header, 848),
            "4 bytes after the last tensor belong to no tensor",
        ),
        case(
            "flax_mlp: header length 8 bytes short",
            short_length,
            8 + flax_header.len() as u64 - 9,
            "header is not a valid safetensors header: tensor `params.Dense_1.kernel`: EOF while parsing a list",
        ),
        case(
            "flax_mlp: header not JSON",
            not_json,
            8,
            "header is not a valid safetensors header: expected value",
        ),
        case(
            "flax_mlp: unknown dtype",
            unknown.clone(),
            data_at(&header_of(&unknown), 0),
            "tensor `params.Dense_0.bias` has unknown dtype `F31`",
        ),
        case(
            "flax_mlp: a shape that does not match the offsets",
            reshaped.clone(),
            data_at(&header_of(&reshaped), 64),
            "tensor `params.Dense_0.kernel` of shape [8, 17] and dtype F32 needs 544 bytes, its offsets span 512",
        ),
        case(
            "flax_mlp: overlapping offsets",
            overlap.clone(),
            data_at(&header_of(&overlap), 560),
            "tensor `params.Dense_1.bias` starts at data offset 560, which overlaps the previous tensor ending at 576",
        ),
        case(
            "flax_mlp: a gap between tensors",
            gap.clone(),
            data_at(&header_of(&gap), 596),
            "tensor `params.Dense_1.kernel` starts at data offset 596, which leaves a gap after the previous tensor ending at 592",
        ),
        case(
            "haiku_bn: offsets out of range",
            out_of_range.clone(),
            data_at(&header_of(&out_of_range), 1236),
            "tensor `state.batch_norm/~/var_ema.counter` ends at data offset 1244, past the end of the data (1240 bytes)",
        ),
        case(
            "haiku_bn: shape product overflow",
            overflow.clone(),
            data_at(&header_of(&overflow), 192),
            "tensor `params.linear.w` of shape [8, 16, 9223372036854775807] and dtype F32 is too large: the product of its dimensions overflows",
        ),
        case(
            "haiku_bn: duplicate tensor names",
            duplicate.clone(),
            at(
                &header_of(&duplicate),
                r#"":{"dtype":"I32","shape":[],"data_offsets":[1236"#,
            ),
            "header is not a valid safetensors header: duplicate entry `state.batch_norm/~/mean_ema.counter`",
        ),
        case(
            "objax_mlp: a tensor renamed __metadata__",
            metadata.clone(),
            at(
                &header_of(&metadata),
                r#","(OMLP).layers(Sequential)[0](Linear).w"#,
            ) - 1,
            "header is not a valid safetensors header: `__metadata__` is reserved for the metadata map and cannot name a tensor",
        ),
        case(
            "objax_mlp: a dtype of another size",
            wider,
            data_start(&objax_header),
            "tensor `(OMLP).layers(Sequential)[0](Linear).b::TrainVar` of shape [16] and dtype F64 needs 128 bytes, its offsets span 64",
        ),
    ]
}

/// Reads `case` through every reader; returns what went differently than expected.
fn check(case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    for (reader, read) in READERS {
        let context = format!("{} through {reader}", case.what);
        let (result, largest) = largest_allocation(|| read(&case.bytes));
        if largest > ALLOCATION_BOUND {
            failures.push(format!("{context}: allocated {largest} bytes at once"));
        }
        let err = match result {
            Ok(()) => {
                failures.push(format!("{context}: read without error"));
                continue;
            }
            Err(err) => err,
        };
        let text = err.to_string();
        let expected = format!(
            "invalid safetensors data at byte {}: {}",
            case.offset, case.reason
        );
        let is_format = matches!(&err, Error::Format { offset, .. } if *offset == case.offset);
        if !is_format || !text.starts_with(&expected) {
            failures.push(format!(
                "{context}:\n  expected `{expected}`\n  found    `{text}`"
            ));
        }
    }
    failures
}

fn check_all(cases: &[Case]) {
    let failures: Vec<String> = cases.iter().flat_map(check).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn handmade_files_are_refused_with_reason_and_offset() {
    check_all(&handmade());
}

#[test]
fn mutated_fixtures_are_refused_with_reason_and_offset() {
    check_all(&mutated_fixtures());
}

#[test]
fn errors_of_files_on_disk_name_the_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("broken.safetensors");
    std::fs::write(&path, raw(u64::MAX, b"{}")).unwrap_or_else(|e| panic!("{e}"));
    let typed = Vec::<Array1<f32>>::load(&path).map(drop);
    let tree = flax::deserialize_file(&path).map(drop);
    let vars = objax::deserialize_file(&path).map(drop);
    for result in [typed, tree, vars] {
        let text = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("at byte 0: header length"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}

/// A file of `len` bytes (sparse: its data is never written) whose first bytes are `head`.
fn sparse_file(dir: &Path, name: &str, head: &[u8], len: u64) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    (&file).write_all(head).unwrap_or_else(|e| panic!("{e}"));
    file.set_len(len).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// A load from a path reads and checks the header before the data: a large file whose header
/// length or header is bad costs no allocation of its size, in the typed loaders and the tree
/// API alike.
#[test]
fn bad_headers_of_large_files_are_refused_before_their_data_is_read() {
    const LEN: u64 = 64 << 20;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let long = sparse_file(dir.path(), "long.safetensors", &raw(LEN, b"{}"), LEN);
    let not_json = sparse_file(
        dir.path(),
        "not_json.safetensors",
        &raw(8, b"{\"w\":[ }"),
        LEN,
    );
    let cases = [
        (
            &long,
            format!(
                "at byte 0: header length {LEN} runs past the end of the data ({} bytes follow it)",
                LEN - 8
            ),
        ),
        (
            &not_json,
            "at byte 15: header is not a valid safetensors header: tensor `w`: expected value"
                .to_owned(),
        ),
    ];
    for (path, expected) in cases {
        for how in ["typed", "memory-mapped", "flax", "objax"] {
            let (err, largest) = largest_allocation(|| load_error(how, path));
            assert!(err.contains(&expected), "{how}: {err}");
            assert!(err.contains(&path.display().to_string()), "{how}: {err}");
            assert!(
                largest <= ALLOCATION_BOUND,
                "{how}: {largest} bytes allocated at once for a bad {LEN}-byte file"
            );
        }
    }
}

/// The error of loading `path` in one of the ways files are loaded.
fn load_error(how: &str, path: &Path) -> String {
    let err = match how {
        "typed" => Vec::<Array1<f32>>::load(path).map(drop),
        "memory-mapped" => Loader::new()
            .memory_map()
            .load::<Vec<Array1<f32>>>(path)
            .map(drop),
        "flax" => flax::deserialize_file(path).map(drop),
        _ => objax::deserialize_file(path).map(drop),
    };
    err.err().map(|e| e.to_string()).unwrap_or_default()
}

/// The categories of error a prefix of a valid file can give, by where it is cut.
fn check_prefix(name: &str, bytes: &[u8], cut: usize) {
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[..8]);
    let header_end = 8 + u64::from_le_bytes(len) as usize;
    let prefix = &bytes[..cut];
    for (reader, read) in READERS {
        let (result, largest) = largest_allocation(|| read(prefix));
        assert!(
            largest <= ALLOCATION_BOUND,
            "{name} cut to {cut} bytes through {reader}: allocated {largest} bytes at once"
        );
        let err = match result {
            Ok(()) => panic!("{name} cut to {cut} bytes read without error through {reader}"),
            Err(err) => err,
        };
        let text = err.to_string();
        let expected = if cut < 8 {
            "bytes are too few for the 8-byte header length"
        } else if cut < header_end {
            "runs past the end of the data"
        } else {
            "past the end of the data"
        };
        assert!(
            matches!(err, Error::Format { .. }) && text.contains(expected),
            "{name} cut to {cut} bytes through {reader}: {text}"
        );
        if cut >= header_end {
            assert!(text.contains("tensor `"), "{text}");
        }
    }
}

#[test]
fn every_prefix_of_every_fixture_is_an_error() {
    for name in FIXTURES {
        let bytes = fixture(name);
        for cut in 0..bytes.len() {
            check_prefix(name, &bytes, cut);
        }
    }
}

#[test]
fn the_fixtures_themselves_read() {
    for name in FIXTURES {
        let bytes = fixture(name);
        assert!(flax::deserialize(&bytes).is_ok(), "{name}");
        assert!(haiku::deserialize(&bytes).is_ok(), "{name}");
        assert!(objax::deserialize(&bytes).is_ok(), "{name}");
    }
}

/// Valid safetensors files that are not valid trees: the tree API names the key.
#[test]
fn files_that_are_no_tree_name_the_key() {
    let tensor = |name: &str, start: usize| {
        format!(
            r#""{name}":{{"dtype":"F32","shape":[1],"data_offsets":[{start},{}]}}"#,
            start + 4
        )
    };
    let both = file(
        &format!("{{{},{}}}", tensor("a", 0), tensor("a.b", 4)),
        &[0; 8],
    );
    let empty_segment = file(&format!("{{{}}}", tensor("a..b", 0)), &[0; 4]);
    let empty_name = file(&format!("{{{}}}", tensor("", 0)), &[0; 4]);
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "a tensor that is also a dict",
            &both,
            "key `a.b` is both a tensor and a dict of tensors",
        ),
        (
            "an empty segment",
            &empty_segment,
            "key `a..b` has an empty segment",
        ),
        ("an empty name", &empty_name, "key `` has an empty segment"),
    ];
    for (what, bytes, expected) in cases {
        for (api, result) in [
            ("flax", flax::deserialize(bytes).map(drop)),
            ("haiku", haiku::deserialize(bytes).map(drop)),
        ] {
            let text = result.err().map(|e| e.to_string()).unwrap_or_default();
            assert_eq!(text, expected, "{what} through {api}");
        }
    }
    // Objax keys are never split on `.`; the same variable under two kinds is refused.
    assert!(objax::deserialize(&both).is_ok());
    let two_kinds = file(
        &format!(
            "{{{},{}}}",
            tensor("(M).w::TrainVar", 0),
            tensor("(M).w::StateVar", 4)
        ),
        &[0; 8],
    );
    let text = objax::deserialize(&two_kinds)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        text,
        "`(M).w` appears twice in the file, as `(M).w::TrainVar` and `(M).w::StateVar`"
    );
}

/// What `#[derive(SafeParams)]` writes for `struct Stack { blocks: Vec<Array1<f32>>,
/// blocks_0: Array1<f32> }`: the two fields have different names, so nothing can refuse them at
/// compile time, but with one block `blocks` renders `blocks_0` in Flax and Haiku.
struct Stack {
    blocks: Vec<Array1<f32>>,
    blocks_0: Array1<f32>,
}

const BLOCKS: FieldInfo = field("blocks", 0);
const BLOCKS_0: FieldInfo = field("blocks_0", 1);

const fn field(name: &'static str, position: usize) -> FieldInfo {
    FieldInfo {
        name: Some(name),
        position,
        class: None,
        collection: None,
        sep: HaikuSep::Constructor,
        numbering: safejax::Numbering::Index,
    }
}

impl SafeParams for Stack {
    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        let saved = path.enter_field(&BLOCKS);
        self.blocks.visit(path, visitor);
        path.leave_field(saved);
        let saved = path.enter_field(&BLOCKS_0);
        self.blocks_0.visit(path, visitor);
        path.leave_field(saved);
    }

    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        let saved = path.enter_field(&BLOCKS);
        self.blocks.visit_mut(path, visitor);
        path.leave_field(saved);
        let saved = path.enter_field(&BLOCKS_0);
        self.blocks_0.visit_mut(path, visitor);
        path.leave_field(saved);
    }

    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        let saved = path.enter_field(&BLOCKS);
        let blocks = Vec::read(path, reader);
        path.leave_field(saved);
        let saved = path.enter_field(&BLOCKS_0);
        let blocks_0 = Array1::read(path, reader);
        path.leave_field(saved);
        Some(Stack {
            blocks: blocks?,
            blocks_0: blocks_0?,
        })
    }
}

/// Everything refused on save, and the error it gives; nothing is written.
#[test]
fn ambiguous_and_reserved_keys_are_refused_before_writing() {
    let stack = Stack {
        blocks: vec![array![1.0f32]],
        blocks_0: array![2.0f32],
    };
    let reserved = BTreeMap::from([("__metadata__".to_owned(), array![1u8])]);
    let dotted = BTreeMap::from([(
        "enc".to_owned(),
        BTreeMap::from([("a.b".to_owned(), array![1u8])]),
    )]);
    let nul = BTreeMap::from([("a\0b".to_owned(), array![1u8])]);
    let mut root_reserved = Tree::new();
    root_reserved.insert("__metadata__", Tensor::from_array(&array![1u8]));
    let cases: [(&str, safejax::Result<Vec<u8>>, &str); 9] = [
        (
            "a Vec field next to a field named like its first element",
            stack.to_bytes(),
            "key `blocks_0` is produced twice; rename one of the fields or map entries",
        ),
        (
            "the same, in Haiku",
            Saver::new().style(Style::Haiku).to_bytes(&stack),
            "key `blocks_0` is produced twice",
        ),
        (
            "nested map entries rendering alike",
            colliding_maps().to_bytes(),
            "key `a_b_c` is produced twice",
        ),
        (
            "a map entry named __metadata__",
            reserved.to_bytes(),
            "key `__metadata__` is reserved and cannot name a tensor",
        ),
        (
            "a map key with a separator",
            dotted.to_bytes(),
            "`enc` has map key `a.b` that contains `.`",
        ),
        (
            "a map key with NUL, which no key could be read back with",
            nul.to_bytes(),
            "the root has map key `a\0b` that contains a NUL character",
        ),
        (
            "a tree name with `.`",
            flax::serialize(&tree_with("a.b"), None),
            "`Dense_0` has entry `a.b`: names must be non-empty and free of `.`",
        ),
        (
            "an empty tree name",
            haiku::serialize(&tree_with(""), None),
            "`Dense_0` has entry ``: names must be non-empty and free of `.`",
        ),
        (
            "a tree entry named __metadata__",
            flax::serialize(&root_reserved, None),
            "key `__metadata__` is reserved and cannot name a tensor",
        ),
    ];
    for (what, result, expected) in cases {
        let text = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with(expected), "{what}: `{text}`");
    }
    // A writer sees nothing of a refused value.
    let mut written = Vec::new();
    assert!(Saver::new().to_writer(&stack, &mut written).is_err());
    assert!(
        Saver::new()
            .to_writer(&colliding_maps(), &mut written)
            .is_err()
    );
    assert!(Saver::new().to_writer(&reserved, &mut written).is_err());
    assert!(Saver::new().to_writer(&nul, &mut written).is_err());
    assert!(written.is_empty(), "bytes were written");
    // Objax writes each step in its own brackets, so the same values are unambiguous there.
    let keys = Saver::new()
        .style(Style::Objax)
        .keys(&colliding_maps())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        keys,
        [
            "(ModuleDict)[a](ModuleDict)[b_c]::TrainVar",
            "(ModuleDict)[a_b](ModuleDict)[c]::TrainVar"
        ]
    );
    assert!(Saver::new().style(Style::Objax).to_bytes(&stack).is_ok());
    let keys = Saver::new().keys(&stack).err().map(|e| e.to_string());
    assert!(keys.is_some_and(|k| k.contains("`blocks_0` is produced twice")));
}
