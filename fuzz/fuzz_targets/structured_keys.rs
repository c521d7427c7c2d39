//! Valid files whose keys are built from a recipe: a few keys, each a run of pieces drawn from
//! the characters keys are made of (and some longer pieces the three styles write), a piece
//! repeated up to 10,000 times, a key possibly with all its shorter ladders (one key per level,
//! as `w`, `n.w`, `n.n.w`, ... for a recursive type). Every file loads, or is refused, without a
//! panic or a stack overflow through the typed API (recursive and nested types, every style) and
//! the tree API, and whatever loads writes back and loads again to the same value.

#![no_main]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use safejax::{Tree, VarCollection, flax, haiku, objax};

/// Single characters of keys, then pieces of the keys `Chain`, `Node`, maps and lists write
/// (whole levels among them, so that a ladder of rungs names one tensor per level).
#[rustfmt::skip]
const PIECES: &[&str] = &[
    "a", "_", ".", "/", "~", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "n", "w", "(",
    ")", "[", "]", ":",
    "n.", "n/~/", "/~/", ".w", "a_", "_0", "children_", "children_a_", "children_a.",
    "(Chain)", "(Chain).", "n(Chain).", "(Node)", ".children(ModuleDict)[a](Node)",
    ".children(ModuleDict)[", "](Node)", "(ModuleDict)[", "(ModuleList)[", "::TrainVar",
    "::StateVar",
];

/// Shapes of the tensors: scalars for the maps, rank 1 for `Chain` and `Node`.
const SHAPES: &[&[usize]] = &[&[], &[1], &[2], &[1, 2]];

/// The most times a piece repeats.
const MAX_REPEAT: u32 = 10_000;

/// Keys stop growing past this many bytes: enough for ladders past `MAX_DEPTH` levels (about
/// 250 levels of `n.`, 100 of `children_a.`), few enough for several runs a second.
const MAX_KEYS_LEN: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = recipe(&mut Unstructured::new(data)) else {
        return;
    };
    safejax_fuzz::load_nested(&file);
    if let Ok(tree) = flax::deserialize(&file) {
        check_tree(&tree, flax::serialize, flax::deserialize);
    }
    if let Ok(tree) = haiku::deserialize(&file) {
        check_tree(&tree, haiku::serialize, haiku::deserialize);
    }
    if let Ok(vars) = objax::deserialize(&file) {
        check_vars(&vars);
    }
});

/// A safetensors file of `F32` tensors named by keys the recipe builds. A key is an optional
/// head piece, a rung piece repeated, then a tail of pieces; one key in four comes with all its
/// shorter ladders (the same head and tail around fewer rungs), the way a recursive type names
/// one tensor per level.
fn recipe(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut keys = BTreeMap::new();
    let mut total = 0;
    for _ in 0..u.int_in_range(1..=4)? {
        let head = if u.ratio(1, 2)? {
            *u.choose(PIECES)?
        } else {
            ""
        };
        let rung = *u.choose(PIECES)?;
        let rungs = repeat(u)?;
        let mut tail = String::new();
        for _ in 0..u.int_in_range(0..=7)? {
            let piece = *u.choose(PIECES)?;
            let times = repeat(u)? as usize;
            let room = MAX_KEYS_LEN.saturating_sub(total + tail.len()) / piece.len();
            tail.push_str(&piece.repeat(times.min(room)));
        }
        let shape = *u.choose(SHAPES)?;
        let lowest = if u.ratio(1, 4)? { 0 } else { rungs };
        for count in lowest..=rungs {
            let key = format!("{head}{}{tail}", rung.repeat(count as usize));
            if total + key.len() > MAX_KEYS_LEN {
                break;
            }
            total += key.len();
            keys.insert(key, shape);
        }
    }
    Ok(file(&keys))
}

/// How many times a piece repeats: a few times, or one time in eight up to [`MAX_REPEAT`].
fn repeat(u: &mut Unstructured<'_>) -> Result<u32> {
    if u.ratio(1, 8)? {
        u.int_in_range(1..=MAX_REPEAT)
    } else {
        u.int_in_range(1..=4)
    }
}

/// The bytes of a file holding one tensor per key, its values counting up from 0.
fn file(keys: &BTreeMap<String, &[usize]>) -> Vec<u8> {
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (i, (key, shape)) in keys.iter().enumerate() {
        let begin = data.len();
        for value in 0..shape.iter().product::<usize>() {
            data.extend_from_slice(&(value as f32).to_le_bytes());
        }
        let shape: Vec<String> = shape.iter().map(usize::to_string).collect();
        let comma = if i == 0 { "" } else { "," };
        // The pieces hold no `"` or `\`, so a key is its own JSON string.
        let _ = write!(
            header,
            r#"{comma}"{key}":{{"dtype":"F32","shape":[{}],"data_offsets":[{begin},{}]}}"#,
            shape.join(","),
            data.len(),
        );
    }
    header.push('}');
    let padded = header.len().next_multiple_of(8);
    let mut out = (padded as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(8 + padded, b' ');
    out.extend_from_slice(&data);
    out
}

/// A tree read from a file clones, equals its clone, prints, writes, and reads again the same.
fn check_tree(
    tree: &Tree,
    serialize: fn(&Tree, Option<&safejax::Metadata>) -> safejax::Result<Vec<u8>>,
    deserialize: fn(&[u8]) -> safejax::Result<Tree>,
) {
    let copy = tree.clone();
    assert!(copy == *tree, "a tree differs from its clone");
    let _ = format!("{tree:?}");
    let bytes = serialize(tree, None)
        .unwrap_or_else(|e| panic!("a tree read from a file does not write: {e}"));
    let again = deserialize(&bytes).unwrap_or_else(|e| panic!("a written tree does not read: {e}"));
    assert!(again == *tree, "a tree reads back different");
}

/// As [`check_tree`], for an Objax collection.
fn check_vars(vars: &VarCollection) {
    let copy = vars.clone();
    assert_eq!(copy, *vars);
    let _ = format!("{vars:?}");
    let bytes = objax::serialize(vars, None)
        .unwrap_or_else(|e| panic!("a collection read from a file does not write: {e}"));
    let again = objax::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("a written collection does not read: {e}"));
    assert_eq!(again, *vars);
}
