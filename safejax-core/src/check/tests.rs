//! The key tree, as const code follows it.

use super::path::Cursor;
use super::tree::{Text, build};

fn u32_at(tree: &[u8], at: usize) -> usize {
    u32::from_be_bytes(tree[at..at + 4].try_into().expect("four bytes")) as usize
}

/// The names whose text is `text`, as (id, collection number).
fn terms(tree: &[u8], text: &str) -> Vec<(usize, usize)> {
    let (at, count) = Cursor::ROOT.feed_str(tree, text).terms(tree);
    (0..count)
        .map(|i| (u32_at(tree, at + 8 * i), u32_at(tree, at + 8 * i + 4)))
        .collect()
}

#[test]
fn a_tree_finds_every_text_and_nothing_else() {
    let mut names = vec![
        "params.Dense_0.kernel",
        "params.Dense_0.bias",
        "params.Dense_1.kernel",
        "params.Dense_10.kernel",
        "batch_stats.BatchNorm_0.mean",
        "params.Dense_0.kernel",
        "x",
    ];
    // A node of many children, searched by halves.
    let wide: Vec<String> = (b'a'..=b'z')
        .map(|c| format!("params.{}", c as char))
        .collect();
    names.extend(wide.iter().map(String::as_str));
    let long = "a".repeat(700);
    names.push(&long);
    names.sort();
    let texts: Vec<Text<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_bytes(), i as u32, 0))
        .collect();
    let tree = build(&texts);
    for (i, name) in names.iter().enumerate() {
        let found = terms(&tree, name);
        assert!(found.contains(&(i, 0)), "{name}: {found:?}");
        assert!(found.iter().all(|(j, _)| names[*j] == *name), "{name}");
    }
    assert_eq!(terms(&tree, "params.Dense_0.kernel").len(), 2);
    for absent in [
        "",
        "params",
        "params.Dense_0.",
        "params.Dense_2.kernel",
        "xx",
        &long[1..],
    ] {
        assert!(terms(&tree, absent).is_empty(), "{absent:?}");
    }
    let under = |text: &str| !Cursor::ROOT.feed_str(&tree, text).is_dead();
    assert!(under("params.Dense_1"));
    assert!(under("batch_stats."));
    assert!(under(&long[..300]));
    assert!(!under("params.Dense_2"));
    assert!(!under("paramsx"));
    // Element 1 of `Dense`: `Dense_1.kernel` is there; and were it not, `Dense_10` is no
    // element 1.
    let element = |text: &str| {
        Cursor::ROOT
            .feed_str(&tree, text)
            .ends_or_goes_on_without_digit(&tree)
    };
    assert!(element("params.Dense_1"));
    assert!(element("x"));
    assert!(!element("params.Dense_"));
    let without_1: Vec<Text<'_>> = texts
        .iter()
        .copied()
        .filter(|t| t.0 != b"params.Dense_1.kernel")
        .collect();
    let tree = build(&without_1);
    let c = Cursor::ROOT.feed_str(&tree, "params.Dense_1");
    assert!(!c.is_dead());
    assert!(!c.ends_or_goes_on_without_digit(&tree));
}

#[test]
fn an_empty_tree_has_a_root_and_nothing_under_it() {
    let tree = build(&[]);
    assert!(terms(&tree, "").is_empty());
    assert!(Cursor::ROOT.feed(&tree, b'a').is_dead());
}

#[test]
fn dtype_numbers_are_places_in_the_list_the_derive_shares() {
    for (i, name) in super::tree::DTYPES.iter().enumerate() {
        let dtype = crate::format::parse_dtype(name).expect("a header's dtype");
        assert_eq!(usize::from(super::code(dtype)), i + 1, "{name}");
        assert_eq!(super::dtype_of(super::code(dtype)), dtype, "{name}");
    }
}

#[test]
fn a_part_reads_back_the_tensors_laid_out_for_it() {
    let shapes: [&[u64]; 3] = [&[], &[3, 1 << 40], &[7]];
    let list = [("a", 10u8), ("bc", 7), ("def", 1)];
    let laid_out = super::tree::tensors(
        list.iter()
            .zip(shapes)
            .map(|(&(name, code), shape)| (name, code, shape.iter().copied())),
    );
    let part = super::TablePart {
        collections: None,
        with_collection: true,
        len: 3,
        names: &laid_out.names,
        tensors: &laid_out.records,
        dims: &laid_out.dims,
        first: 0,
        file: "f",
    };
    let read: Vec<(&str, crate::Dtype, Vec<usize>)> = (0..3)
        .map(|e| (part.name(e), part.dtype(e), part.shape(e)))
        .collect();
    use crate::Dtype::{BF16, BOOL, F32};
    assert_eq!(
        read,
        [
            ("a", F32, vec![]),
            ("bc", BF16, vec![3, 1 << 40]),
            ("def", BOOL, vec![7])
        ]
    );
}
