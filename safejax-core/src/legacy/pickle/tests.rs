//! Pickles written byte by byte: arrays of every supported kind, and hostile programs.

use safetensors::Dtype;

use super::from_slice;
use crate::error::Error;
use crate::tree::{Node, Tree};

/// `SHORT_BINUNICODE` (or `BINUNICODE` when long) of `text`.
fn text(text: &str) -> Vec<u8> {
    let mut out = match u8::try_from(text.len()) {
        Ok(len) => vec![0x8c, len],
        Err(_) => {
            let mut out = vec![b'X'];
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out
        }
    };
    out.extend_from_slice(text.as_bytes());
    out
}

/// `BINBYTES` of `bytes`.
fn bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![b'B'];
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// `STACK_GLOBAL` of `module.name`.
fn global(module: &str, name: &str) -> Vec<u8> {
    [text(module), text(name), vec![0x93]].concat()
}

/// `TUPLE` of `items`.
fn tuple(items: &[Vec<u8>]) -> Vec<u8> {
    [vec![b'('], items.concat(), vec![b't']].concat()
}

fn int(n: u8) -> Vec<u8> {
    vec![b'K', n]
}

fn shape(dims: &[u8]) -> Vec<u8> {
    tuple(&dims.iter().map(|&d| int(d)).collect::<Vec<_>>())
}

/// `numpy.dtype(code, False, True)` with byte order `order` set by `BUILD`; `code` is the bytes
/// pushing the type code (a string, or an `ml_dtypes` global).
fn dtype(code: Vec<u8>, order: &str) -> Vec<u8> {
    let state = tuple(&[
        int(3),
        text(order),
        vec![b'N', b'N', b'N'],
        vec![b'J', 0xff, 0xff, 0xff, 0xff],
        vec![b'J', 0xff, 0xff, 0xff, 0xff],
        int(0),
    ]);
    [
        global("numpy", "dtype"),
        code,
        vec![0x89, 0x88, 0x87, b'R'],
        state,
        vec![b'b'],
    ]
    .concat()
}

/// `_reconstruct(ndarray, (0,), b'b')` given the state `(1, shape, dtype, fortran, data)`.
fn array(dtype: Vec<u8>, dims: &[u8], fortran: bool, data: Vec<u8>) -> Vec<u8> {
    let blank = [
        global("numpy.core.multiarray", "_reconstruct"),
        tuple(&[global("numpy", "ndarray"), shape(&[0]), bytes(b"b")]),
        vec![b'R'],
    ]
    .concat();
    let fortran = vec![if fortran { 0x88 } else { 0x89 }];
    let state = tuple(&[int(1), shape(dims), dtype, fortran, data]);
    [blank, state, vec![b'b']].concat()
}

/// A protocol 4 pickle of a dict of `entries`, each a key and the bytes pushing its value.
fn dict(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0x80, 4, b'}', b'('];
    for (key, value) in entries {
        out.extend(text(key));
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"u.");
    out
}

fn tensor<'t>(tree: &'t Tree, path: &str) -> &'t crate::Tensor {
    tree.tensor(path).expect(path)
}

/// The error of reading `pickle`, with its offset and key.
fn refusal(pickle: &[u8]) -> (u64, String, String) {
    match from_slice(pickle) {
        Err(Error::Legacy {
            format: "pickle",
            offset,
            key,
            reason,
        }) => (offset, key, reason),
        other => panic!("expected a pickle error, got {other:?}"),
    }
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn big_endian_data_is_swapped() {
    let data: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let pickle = dict(&[(
        "x",
        array(dtype(text("f4"), ">"), &[2], false, bytes(&data)),
    )]);
    let tree = from_slice(&pickle).expect("pickle");
    assert_eq!(tensor(&tree, "x").data(), f32s(&[1.5, -2.0]));
}

#[test]
fn complex_numbers_swap_each_half() {
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_be_bytes()).collect();
    let pickle = dict(&[(
        "z",
        array(dtype(text("c8"), ">"), &[1], false, bytes(&data)),
    )]);
    let tree = from_slice(&pickle).expect("pickle");
    let z = tensor(&tree, "z");
    assert_eq!((z.dtype(), z.data()), (Dtype::C64, &f32s(&[1.0, 2.0])[..]));
}

#[test]
fn fortran_order_is_transposed_to_c() {
    // [[1, 2, 3], [4, 5, 6]] as int16, stored column by column.
    let data: Vec<u8> = [1i16, 4, 2, 5, 3, 6]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let pickle = dict(&[(
        "m",
        array(dtype(text("i2"), "<"), &[2, 3], true, bytes(&data)),
    )]);
    let tree = from_slice(&pickle).expect("pickle");
    let m: ndarray::Array2<i16> = tensor(&tree, "m").to_array().expect("i16");
    assert_eq!(m, ndarray::array![[1, 2, 3], [4, 5, 6]]);
}

#[test]
fn protocol_5_arrays_in_fortran_order() {
    let data: Vec<u8> = [1u8, 3, 2, 4].to_vec();
    let frombuffer = [
        global("numpy._core.numeric", "_frombuffer"),
        tuple(&[
            bytes(&data),
            dtype(text("u1"), "|"),
            shape(&[2, 2]),
            text("F"),
        ]),
        vec![b'R'],
    ]
    .concat();
    let mut pickle = dict(&[("a", frombuffer)]);
    pickle[1] = 5;
    let tree = from_slice(&pickle).expect("pickle");
    assert_eq!(tensor(&tree, "a").data(), [1, 2, 3, 4]);
}

#[test]
fn ml_dtypes_bfloat16_by_its_name() {
    let values = [half::bf16::from_f32(1.0), half::bf16::from_f32(-0.5)];
    let data: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    let code = global("ml_dtypes", "bfloat16");
    let pickle = dict(&[("w", array(dtype(code, "<"), &[2], false, bytes(&data)))]);
    let tree = from_slice(&pickle).expect("pickle");
    let w = tensor(&tree, "w");
    assert_eq!((w.dtype(), w.data()), (Dtype::BF16, &data[..]));

    let code = global("ml_dtypes", "float8_e4m3fn");
    let pickle = dict(&[(
        "f8",
        array(dtype(code, "|"), &[3], false, bytes(&[1, 2, 3])),
    )]);
    assert_eq!(
        tensor(&from_slice(&pickle).expect("f8"), "f8").dtype(),
        Dtype::F8_E4M3
    );
}

#[test]
fn protocol_2_data_goes_through_latin1() {
    let data = f32s(&[1.0]);
    let latin1: String = data.iter().map(|&b| char::from(b)).collect();
    let encoded = [
        global("_codecs", "encode"),
        tuple(&[text(&latin1), text("latin1")]),
        vec![b'R'],
    ]
    .concat();
    let pickle = dict(&[("x", array(dtype(text("f4"), "<"), &[], false, encoded))]);
    let tree = from_slice(&pickle).expect("pickle");
    assert_eq!(tensor(&tree, "x").data(), data);

    // One string encoded again and again.
    let mut again = vec![0x80, 4, b']', b'('];
    again.extend(global("_codecs", "encode"));
    again.extend_from_slice(b"q\x00");
    again.extend(tuple(&[text(&"a".repeat(1000)), text("latin1")]));
    again.extend_from_slice(b"q\x01R");
    for _ in 0..10 {
        again.extend_from_slice(b"h\x00h\x01R");
    }
    again.extend_from_slice(b"e.");
    let (_, _, reason) = refusal(&again);
    assert_eq!(
        reason,
        "`_codecs.encode` would make more bytes than the pickle has"
    );

    let utf8 = [
        global("_codecs", "encode"),
        tuple(&[text("abcd"), text("utf8")]),
        vec![b'R'],
    ]
    .concat();
    let (_, _, reason) = refusal(&dict(&[("x", utf8)]));
    assert_eq!(
        reason,
        "`_codecs.encode` with encoding `utf8` is not allowed (only `latin1`)"
    );
}

#[test]
fn lists_and_tuples_are_numbered_none_is_skipped() {
    let scalar = || array(dtype(text("i4"), "<"), &[], false, bytes(&[7, 0, 0, 0]));
    let list = [vec![b']', b'('], scalar(), scalar(), vec![b'e']].concat();
    let ordered = [
        global("collections", "OrderedDict"),
        vec![b')', b'R', b'('],
        text("k"),
        scalar(),
        text("nothing"),
        vec![b'N', b'u'],
    ]
    .concat();
    let pickle = dict(&[
        ("list", list),
        ("tuple", tuple(&[scalar()])),
        ("ordered", ordered),
        ("none", vec![b'N']),
    ]);
    let tree = from_slice(&pickle).expect("pickle");
    let keys: Vec<String> = tree
        .flatten()
        .expect("flat")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["list.0", "list.1", "ordered.k", "tuple.0"]);
    assert!(matches!(tree.get("ordered"), Some(Node::Tree(_))));
}

#[test]
fn scalars_and_bad_keys_are_refused_with_their_key() {
    let inner = |value: Vec<u8>| [vec![b'}', b'('], text("b"), value, vec![b'u']].concat();
    let pickle = dict(&[("a", inner(int(3)))]);
    let (at, key, reason) = refusal(&pickle);
    assert_eq!(
        (key.as_str(), reason.as_str()),
        (
            "a.b",
            "a value is an int (3): only arrays, dicts, lists, tuples and None are read"
        )
    );
    assert_eq!(pickle.get(at as usize), Some(&b'K'));

    let (_, key, reason) = refusal(&dict(&[("a.b", vec![b'N'])]));
    assert_eq!(key, "");
    assert_eq!(
        reason,
        "has key `a.b`: keys must be non-empty and free of `.`"
    );

    let int_key = [vec![0x80, 4, b'}', b'(', b'K', 1, b'N', b'u', b'.']].concat();
    let (_, _, reason) = refusal(&int_key);
    assert_eq!(reason, "has a key that is an int (1): keys must be strings");

    let (at, _, reason) = refusal(&[0x80, 4, b']', b'.']);
    assert_eq!(
        (at, reason.as_str()),
        (2, "the pickle is a list, not a dict")
    );

    let blank = [
        global("numpy.core.multiarray", "_reconstruct"),
        tuple(&[global("numpy", "ndarray"), shape(&[0]), bytes(b"b")]),
        vec![b'R'],
    ]
    .concat();
    let (_, key, reason) = refusal(&dict(&[("x", blank)]));
    assert_eq!(key, "x");
    assert!(
        reason.contains("an ndarray whose state was never set"),
        "{reason}"
    );
}

#[test]
fn arrays_must_match_their_data() {
    let short = array(dtype(text("f4"), "<"), &[2], false, bytes(&[0; 7]));
    let (_, _, reason) = refusal(&dict(&[("x", short)]));
    assert_eq!(
        reason,
        "an array's data has 7 bytes, but a F32 array of shape [2] has 8"
    );

    let unset = [
        global("numpy", "dtype"),
        text("f4"),
        vec![0x89, 0x88, 0x87, b'R'],
    ]
    .concat();
    let (_, _, reason) = refusal(&dict(&[("x", array(unset, &[1], false, bytes(&[0; 4])))]));
    assert!(reason.contains("has no byte order"), "{reason}");

    let (_, _, reason) = refusal(&dict(&[("x", dtype(text("O8"), "|"))]));
    assert!(
        reason.contains("numpy dtype `O8` is not supported"),
        "{reason}"
    );

    let bools = array(dtype(text("b1"), "|"), &[2], false, bytes(&[1, 2]));
    let (_, key, reason) = refusal(&dict(&[("m", bools)]));
    assert_eq!(
        (key.as_str(), reason.as_str()),
        ("m", "bool element 1 is neither 0 nor 1")
    );

    let deep = array(dtype(text("u1"), "|"), &[1; 65], false, bytes(&[0]));
    let (_, _, reason) = refusal(&dict(&[("x", deep)]));
    assert_eq!(
        reason,
        "an ndarray's shape is not a tuple of at most 64 non-negative ints"
    );

    let objects = array(dtype(text("f4"), "<"), &[1], false, vec![b']']);
    let (_, _, reason) = refusal(&dict(&[("x", objects)]));
    assert!(reason.contains("not bytes (object arrays"), "{reason}");
}

#[test]
fn globals_outside_the_allowlist_are_refused_where_named() {
    // GLOBAL, then the REDUCE that would call it.
    let mut pickle = vec![0x80, 2, b'}', b'('];
    pickle.extend(text("x"));
    let at = pickle.len() as u64;
    pickle.extend_from_slice(b"cos\nsystem\n");
    pickle.extend(tuple(&[text("touch /tmp/x")]));
    pickle.extend_from_slice(b"Ru.");
    assert_eq!(
        refusal(&pickle),
        (
            at,
            String::new(),
            "global `os.system` is not allowed".into()
        )
    );

    let (at, _, reason) = refusal(&dict(&[("x", global("numpy", "load"))]));
    assert_eq!(reason, "global `numpy.load` is not allowed");
    assert_eq!(at, 2 + 1 + 1 + 3 + 7 + 6);

    let ndarray_call = [global("numpy", "ndarray"), vec![b')', b'R']].concat();
    let (_, _, reason) = refusal(&dict(&[("x", ndarray_call)]));
    assert_eq!(
        reason,
        "global `numpy.ndarray` is not interpreted as a call"
    );

    let string_call = [text("eval"), vec![b')', b'R']].concat();
    let (_, _, reason) = refusal(&dict(&[("x", string_call)]));
    assert_eq!(
        reason,
        "REDUCE calls a str; only allowed globals are interpreted"
    );

    let long_args = [
        global("numpy", "dtype"),
        tuple(&vec![int(0); 5]),
        vec![b'R'],
    ]
    .concat();
    let (_, _, reason) = refusal(&dict(&[("x", long_args)]));
    assert_eq!(reason, "REDUCE of `numpy.dtype` with 5 arguments");

    let not_strings = [int(1), int(2), vec![0x93]].concat();
    let (_, _, reason) = refusal(&dict(&[("x", not_strings)]));
    assert_eq!(
        reason,
        "STACK_GLOBAL needs two strings, found an int (1) and an int (2)"
    );

    let jax = [
        global("jax._src.array", "_reconstruct_array"),
        tuple(&[global("numpy", "dtype"), tuple(&[]), tuple(&[]), vec![b'}']]),
        vec![b'R'],
    ]
    .concat();
    let (_, _, reason) = refusal(&dict(&[("x", jax)]));
    assert!(reason.contains("not numpy's `_reconstruct`"), "{reason}");
}

#[test]
fn refused_opcodes_are_named() {
    let cases: [(&[u8], &str); 7] = [
        (
            b"\x80\x04}(\x8c\x01x\x8c\x011Qu.",
            "opcode BINPERSID is refused: persistent ids load objects from outside the pickle",
        ),
        (
            b"\x80\x04}(\x8c\x01xP1\nu.",
            "opcode PERSID is refused: persistent ids load objects from outside the pickle",
        ),
        (
            b"\x80\x05}(\x8c\x01x\x97u.",
            "opcode NEXT_BUFFER is refused: it takes an out-of-band buffer, and none are supplied",
        ),
        (b"\x80\x04}\x81.", "opcode NEWOBJ is not supported"),
        (b"\x80\x04}(i\n", "opcode INST is not supported"),
        (b"\x80\x04}\xff.", "byte 0xff is not a pickle opcode"),
        (
            b"\x80\x06}.",
            "pickle protocol 6 is not supported (2 to 5 are)",
        ),
    ];
    for (pickle, expected) in cases {
        let (_, _, reason) = refusal(pickle);
        assert_eq!(reason, expected);
    }
}

#[test]
fn sizes_are_checked_before_anything_is_allocated() {
    let mut pickle = vec![0x80, 4, 0x8e];
    pickle.extend_from_slice(&(1u64 << 60).to_le_bytes());
    pickle.extend_from_slice(b"abc.");
    assert_eq!(
        refusal(&pickle),
        (
            2,
            String::new(),
            "BINBYTES8 declares 1152921504606846976 bytes, but only 4 are left".into()
        )
    );
    let mut frame = vec![0x80, 4, 0x95];
    frame.extend_from_slice(&u64::MAX.to_le_bytes());
    let (_, _, reason) = refusal(&frame);
    assert!(
        reason.starts_with("FRAME declares 18446744073709551615 bytes"),
        "{reason}"
    );

    let long = [vec![0x80, 4, 0x8a, 9], vec![1; 9], b"."[..].to_vec()].concat();
    let (_, _, reason) = refusal(&long);
    assert_eq!(
        reason,
        "an integer of 9 bytes is too large (at most 8 are supported)"
    );
}

#[test]
fn stack_and_memo_misuse_are_errors() {
    let cases: [(&[u8], &str); 7] = [
        (b"\x80\x04}", "the pickle ends without a STOP opcode"),
        (
            b"\x80\x04}h\x05.",
            "BINGET of memo entry 5, which was never stored",
        ),
        (
            b"\x80\x04}j\x00\x00\x00\x01.",
            "LONG_BINGET of memo entry 16777216, which was never stored",
        ),
        (
            b"\x80\x04.",
            "STOP needs more values than the stack holds above its mark",
        ),
        (
            b"\x80\x04}(s.",
            "SETITEM needs more values than the stack holds above its mark",
        ),
        (b"\x80\x04}t.", "TUPLE without a MARK"),
        (b"\x80\x04](K\x01K\x02u.", "SETITEMS on a list, not a dict"),
    ];
    for (pickle, expected) in cases {
        let (_, _, reason) = refusal(pickle);
        assert_eq!(reason, expected);
    }
    // POP, POP_MARK and DUP within their bounds.
    let tree = from_slice(b"\x80\x04}(K\x01K\x021N02.").expect("pop");
    assert!(tree.is_empty());
}

#[test]
fn a_million_nested_lists_are_an_error() {
    const N: usize = 1_000_000;
    // All the lists on the stack, then appended into each other.
    let mut pickle = vec![0x80, 4, b'}'];
    pickle.extend(text("a"));
    pickle.extend(std::iter::repeat_n(b']', N));
    pickle.extend(std::iter::repeat_n(b'a', N - 1));
    pickle.extend_from_slice(b"s.");
    let (_, key, reason) = refusal(&pickle);
    assert_eq!(reason, "the tree is deeper than 1024 levels");
    assert!(key.starts_with("a.0.0."), "{key}");

    // One list at a time through the memo, the stack staying short.
    let mut pickle = vec![0x80, 4, b'}'];
    pickle.extend(text("a"));
    pickle.extend_from_slice(b"]r\x00\x00\x00\x00");
    for i in 0..N as u32 {
        pickle.push(b'j');
        pickle.extend_from_slice(&i.to_le_bytes());
        pickle.extend_from_slice(b"]r");
        pickle.extend_from_slice(&(i + 1).to_le_bytes());
        pickle.extend_from_slice(b"a0");
    }
    pickle.extend_from_slice(b"s.");
    let (_, _, reason) = refusal(&pickle);
    assert_eq!(reason, "the tree is deeper than 1024 levels");

    // More values than the stack may hold.
    let mut pickle = vec![0x80, 4];
    pickle.extend(std::iter::repeat_n(b'N', 2 * N));
    let (at, _, reason) = refusal(&pickle);
    assert_eq!(
        (at, reason.as_str()),
        (2 + (1 << 20), "the stack holds more than 1048576 values")
    );
}

#[test]
fn cycles_and_shared_containers_are_bounded() {
    // A list that holds itself.
    let cycle = b"\x80\x04}\x94\x8c\x01a]\x94h\x01as.";
    let (at, key, reason) = refusal(cycle);
    assert_eq!(
        (at, key.as_str(), reason.as_str()),
        (7, "a.0", "a list holds itself")
    );

    // Each list holds the one before twice: 2^40 entries from a few hundred bytes.
    let mut pickle = vec![0x80, 4, b'}'];
    pickle.extend(text("a"));
    pickle.extend_from_slice(b"]q\x000");
    for i in 0..40u8 {
        pickle.extend_from_slice(&[b']', b'(', b'h', i, b'h', i, b'e', b'q', i + 1, b'0']);
    }
    pickle.extend_from_slice(b"h\x28s.");
    let (_, _, reason) = refusal(&pickle);
    assert!(
        reason.starts_with("the tree's tensors and names would hold more than"),
        "{reason}"
    );

    // One long name for every level of a deep tree.
    let mut pickle = vec![0x80, 4, b'}'];
    pickle.extend(text(&"n".repeat(100_000)));
    pickle.extend_from_slice(b"q\x00");
    for _ in 0..1000 {
        pickle.extend_from_slice(b"}h\x00");
    }
    pickle.push(b'N');
    pickle.extend(std::iter::repeat_n(b's', 1001));
    pickle.push(b'.');
    let (_, key, reason) = refusal(&pickle);
    assert_eq!(key.len(), 4 * 100_001 - 1);
    assert!(
        reason.starts_with("the tree's tensors and names would hold more than"),
        "{reason}"
    );

    // One array of 255 bytes shared under many keys.
    let data = vec![0u8; 1024];
    let mut pickle = vec![0x80, 4, b'}', b'('];
    pickle.extend(text("x0"));
    pickle.extend(array(dtype(text("u1"), "|"), &[4, 0], false, bytes(&[])));
    pickle.extend(text("x1"));
    let mut shaped = array(dtype(text("u1"), "|"), &[255], false, bytes(&data[..255]));
    shaped.extend_from_slice(b"q\x00");
    pickle.extend(shaped);
    for i in 2..200 {
        pickle.extend(text(&format!("x{i}")));
        pickle.extend_from_slice(b"h\x00");
    }
    pickle.extend_from_slice(b"u.");
    let (_, key, reason) = refusal(&pickle);
    assert_eq!(key, "x32");
    assert!(
        reason.starts_with("the tree's tensors and names would hold more than 4 times"),
        "{reason}"
    );
}
