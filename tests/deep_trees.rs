//! A tree of any depth drops, clones, compares, prints and serializes without recursion: a key of
//! 20,000 `.` segments (Flax or Haiku) and a tree inserted a million levels deep go through
//! every operation on a thread with std's default 2 MiB stack. A recursive derived type meets a
//! file 5,000 levels deep, in each style, with a report naming the key, and a value deeper than
//! `MAX_DEPTH` is refused before anything is written.
//!
//! A stack overflow aborts the whole process, so each deep case runs in a child process (this
//! test binary again, told the case by an environment variable). The parent asserts that the
//! child exited successfully and printed its marker: an overflow fails the parent test instead of
//! killing the test binary.

use std::process::Command;
use std::thread;

use ndarray::{Array1, array};
use safejax::key::MAX_DEPTH;
use safejax::{
    Error, KeyProblem, Loader, Metadata, Node, SafeParams, Saver, Style, Tensor, Tree, flax, haiku,
};

/// Set (to the name of a case) in the child process of the deep tests.
const CHILD_CASE: &str = "SAFEJAX_TEST_DEEP_TREE_CASE";
/// What the child prints, followed by the case's name, when the case passed.
const CHILD_MARKER: &str = "deep tree case passed: ";
/// The stack std gives a spawned thread by default.
const SMALL_STACK: usize = 2 << 20;

/// The one tensor of every deep tree: `[1.5f32]`.
fn leaf() -> Tensor {
    Tensor::from_array(&array![1.5f32])
}

/// How `{:?}` prints [`leaf`].
const LEAF_DEBUG: &str = "Tensor { dtype: F32, shape: [1], data: [0, 0, 192, 63] }";

/// A tree holding [`leaf`] at `dir.dir. ... .dir.name`: `segments` levels of dicts, built from
/// the inside out with `insert`.
fn chain(dir: &str, name: &str, segments: usize) -> Tree {
    let mut tree = Tree::new();
    tree.insert(name, leaf());
    for _ in 1..segments {
        let mut parent = Tree::new();
        parent.insert(dir, tree);
        tree = parent;
    }
    tree
}

/// The key of [`chain`]'s tensor.
fn chain_key(dir: &str, name: &str, segments: usize) -> String {
    let mut key = format!("{dir}.").repeat(segments - 1);
    key.push_str(name);
    key
}

/// `{:?}` of [`chain`], written out level by level.
fn chain_debug(dir: &str, name: &str, segments: usize) -> String {
    let mut text = format!("Tree {{ entries: {{{dir:?}: Tree(").repeat(segments - 1);
    text.push_str(&format!(
        "Tree {{ entries: {{{name:?}: Tensor({LEAF_DEBUG})}} }}"
    ));
    text.push_str(&")} }".repeat(segments - 1));
    text
}

/// A safetensors file holding [`leaf`] under `key`, written by hand the way Python's safetensors
/// writes it: length, JSON header padded with spaces to a multiple of 8, data.
fn file_with_one_key(key: &str) -> Vec<u8> {
    let mut header = format!(r#"{{"{key}":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#);
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&1.5f32.to_le_bytes());
    bytes
}

/// The dict API of one framework.
struct Api {
    serialize: fn(&Tree, Option<&Metadata>) -> safejax::Result<Vec<u8>>,
    deserialize: fn(&[u8]) -> safejax::Result<Tree>,
}

const FLAX: Api = Api {
    serialize: flax::serialize,
    deserialize: flax::deserialize,
};

const HAIKU: Api = Api {
    serialize: haiku::serialize,
    deserialize: haiku::deserialize,
};

/// The innermost dict of a chain: the one holding the tensor.
fn innermost(tree: &mut Tree) -> &mut Tree {
    let mut level = tree;
    loop {
        let Some(dir) = level
            .iter()
            .find(|(_, node)| matches!(node, Node::Tree(_)))
            .map(|(name, _)| name.clone())
        else {
            return level;
        };
        match level.get_mut(&dir) {
            Some(Node::Tree(next)) => level = next,
            _ => unreachable!("`{dir}` was just found to be a dict"),
        }
    }
}

/// Whether every opening bracket of `text` is closed, by kind.
fn balanced(text: &str) -> bool {
    [('{', '}'), ('(', ')'), ('[', ']')]
        .iter()
        .all(|&(open, close)| text.matches(open).count() == text.matches(close).count())
}

/// Reads the file of a chain `segments` deep, then puts the tree through every operation that
/// walks it. Checks with `assert!` rather than `assert_eq!`, whose message would print the trees.
fn exercise(api: &Api, dir: &str, name: &str, segments: usize) {
    let key = chain_key(dir, name, segments);
    let bytes = file_with_one_key(&key);
    let tree = (api.deserialize)(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        tree.tensor(&key) == Some(&leaf()),
        "the tensor is not at its key"
    );
    assert!(
        matches!(tree.get(dir), Some(Node::Tree(_))),
        "the first level is not a dict named `{dir}`"
    );
    let built = chain(dir, name, segments);
    assert!(
        tree == built,
        "the file's tree differs from the inserted one"
    );
    // At most two trees live at a time: a million levels take about a gigabyte each.
    drop(built);

    let mut copy = tree.clone();
    assert!(copy == tree, "the clone differs from the original");
    innermost(&mut copy).insert(name, Tensor::from_array(&array![2.5f32]));
    assert!(copy != tree, "a different innermost tensor compares equal");
    innermost(&mut copy).insert("extra", leaf());
    assert!(copy != tree, "an extra innermost entry compares equal");
    drop(copy);

    let compact = format!("{tree:?}");
    assert!(
        compact == chain_debug(dir, name, segments),
        "`{{:?}}` differs from the derived form"
    );
    let pretty = format!("{tree:#?}");
    let top = format!(
        "Tree {{\n    entries: {{\n        {dir:?}: Tree(\n            Tree {{\n                entries: {{\n"
    );
    assert!(pretty.starts_with(&top), "`{{:#?}}` starts differently");
    assert!(pretty.ends_with("},\n}"), "`{{:#?}}` ends differently");
    assert!(balanced(&pretty), "`{{:#?}}` leaves a bracket open");
    assert_eq!(pretty.matches("Tree(").count(), segments - 1);
    assert_eq!(
        pretty.matches(LEAF_DEBUG).count(),
        1,
        "the tensor in `{{:#?}}`"
    );
    assert!(
        pretty.len() < 2 * compact.len(),
        "`{{:#?}}` takes {} bytes where `{{:?}}` takes {}: it grows faster than the depth",
        pretty.len(),
        compact.len()
    );

    let flat = tree.flatten().unwrap_or_else(|e| panic!("{e}"));
    assert!(flat.len() == 1 && flat[0].0 == key, "flatten lost the key");
    drop(flat);
    let written = (api.serialize)(&tree, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(written == bytes, "serializing changed the bytes");
    let again = (api.deserialize)(&written).unwrap_or_else(|e| panic!("{e}"));
    assert!(again == tree, "the serialized tree reads back differently");

    drop(again);
    drop(tree);
}

fn flax_key_of_20000_segments() {
    exercise(&FLAX, "a", "kernel", 20_000);
}

fn haiku_key_of_20000_segments() {
    // Haiku splits on `.` too: each module path is one level.
    exercise(&HAIKU, "mlp/~/linear_0", "w", 20_000);
}

fn inserted_tree_of_a_million_levels() {
    // The file has one key of 2 MB; the tree is built by `insert`, then read back from the file.
    exercise(&FLAX, "a", "w", 1_000_000);
}

/// A recursive derived type: a tensor, and maybe another of itself.
#[derive(SafeParams, Debug, PartialEq)]
struct Chain {
    w: Array1<f32>,
    n: Option<Box<Chain>>,
}

/// A chain whose innermost `w` is `links` steps of `n` down.
fn chain_value(links: usize) -> Chain {
    let mut chain = Chain {
        w: array![1.5f32],
        n: None,
    };
    for _ in 0..links {
        chain = Chain {
            w: array![0.5f32],
            n: Some(Box::new(chain)),
        };
    }
    chain
}

/// The key of the `w` that is `links` steps of `n` down, and of the `links`-deep `n` itself.
fn chain_keys(style: Style, links: usize) -> (String, String) {
    let deep = |links: usize, leaf: &str| match style {
        Style::Flax => format!("{}{leaf}", "n.".repeat(links)),
        Style::Haiku => format!("{}.{leaf}", vec!["n"; links].join("/~/")),
        Style::Objax => format!("(Chain){}.{leaf}::TrainVar", ".n(Chain)".repeat(links)),
    };
    let n_key = match style {
        Style::Objax => format!("(Chain){}.n::TrainVar", ".n(Chain)".repeat(links - 1)),
        _ => deep(links - 1, "n"),
    };
    (deep(links, "w"), n_key)
}

/// A file 5,000 links deep is read down to the limit and reported there, in each style.
fn recursive_type_meets_a_file_5000_levels_deep() {
    for style in Style::ALL {
        let (key, _) = chain_keys(style, 5_000);
        let bytes = file_with_one_key(&key);
        let err = Loader::new()
            .style(style)
            .from_bytes::<Chain>(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{style}: a 5,000-level file loaded"));
        let report = err.report().unwrap_or_else(|| panic!("{style}: {err}"));
        let (_, too_deep) = chain_keys(style, MAX_DEPTH + 1);
        assert_eq!(
            report.invalid,
            [KeyProblem {
                key: too_deep,
                reason: format!(
                    "is nested deeper than {MAX_DEPTH} levels, the most safejax reads or writes"
                ),
            }],
            "{style}"
        );
        assert_eq!(report.unexpected, [key], "{style}");
        // Every `w` down to the limit, none deeper.
        assert_eq!(report.missing.len(), MAX_DEPTH + 1, "{style}");
        assert!(
            err.to_string().len() < 1 << 20,
            "{style}: the report is huge"
        );
    }
}

/// The deepest chain that fits round-trips; one link more is refused on save and on load.
fn recursive_values_at_the_limit() {
    let fits = chain_value(MAX_DEPTH - 1);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for style in Style::ALL {
        let bytes = Saver::new()
            .style(style)
            .to_bytes(&fits)
            .unwrap_or_else(|e| panic!("{style}: {e}"));
        let back = Loader::new()
            .style(style)
            .from_bytes::<Chain>(&bytes)
            .unwrap_or_else(|e| panic!("{style}: {e}"));
        assert!(back.value == fits, "{style}: not the same chain");
        let too_deep = chain_value(MAX_DEPTH);
        let path = dir.path().join(format!("{style}.safetensors"));
        let err = Saver::new().style(style).save(&too_deep, &path).err();
        let (key, _) = chain_keys(style, MAX_DEPTH);
        assert!(
            matches!(&err, Some(Error::Invalid { key: k, reason }) if *k == key && reason.contains("deeper than 128")),
            "{style}: {err:?}"
        );
        assert!(!path.exists(), "{style}: a refused save wrote a file");
        // A file holding what the save refused is refused on load.
        let err = Loader::new()
            .style(style)
            .from_bytes::<Chain>(&file_with_one_key(&key))
            .err()
            .unwrap_or_else(|| panic!("{style}: loaded"));
        let report = err.report().unwrap_or_else(|| panic!("{style}: {err}"));
        assert_eq!(report.invalid.len(), 1, "{style}: {report}");
        assert_eq!(report.invalid[0].key, key, "{style}");
        assert_eq!(report.unexpected, [key], "{style}");
    }
}

/// The deep cases, by the name the parent gives the child.
fn case(name: &str) -> Option<fn()> {
    match name {
        "recursive_type_meets_a_file_5000_levels_deep" => {
            Some(recursive_type_meets_a_file_5000_levels_deep)
        }
        "recursive_values_at_the_limit" => Some(recursive_values_at_the_limit),
        "flax_key_of_20000_segments" => Some(flax_key_of_20000_segments),
        "haiku_key_of_20000_segments" => Some(haiku_key_of_20000_segments),
        "inserted_tree_of_a_million_levels" => Some(inserted_tree_of_a_million_levels),
        _ => None,
    }
}

/// Runs the case `name` in a child process and asserts that it passed there.
fn in_child(name: &str) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(exe)
        .args([
            "child_runs_one_deep_case",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_CASE, name)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the child: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("{CHILD_MARKER}{name}")),
        "case `{name}` failed in the child ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
fn flax_key_of_20000_segments_on_a_2_mib_stack() {
    in_child("flax_key_of_20000_segments");
}

#[test]
fn haiku_key_of_20000_segments_on_a_2_mib_stack() {
    in_child("haiku_key_of_20000_segments");
}

#[test]
fn inserted_tree_of_a_million_levels_on_a_2_mib_stack() {
    in_child("inserted_tree_of_a_million_levels");
}

#[test]
fn recursive_type_meets_a_file_5000_levels_deep_on_a_2_mib_stack() {
    in_child("recursive_type_meets_a_file_5000_levels_deep");
}

#[test]
fn recursive_values_at_the_limit_on_a_2_mib_stack() {
    in_child("recursive_values_at_the_limit");
}

/// The child half of the tests above: runs the case named by [`CHILD_CASE`] on a thread with a
/// 2 MiB stack. Does nothing in a normal run.
#[test]
fn child_runs_one_deep_case() {
    let Ok(name) = std::env::var(CHILD_CASE) else {
        return;
    };
    let run = case(&name).unwrap_or_else(|| panic!("no deep case named `{name}`"));
    let thread = thread::Builder::new()
        .name(name.clone())
        .stack_size(SMALL_STACK)
        .spawn(run)
        .unwrap_or_else(|e| panic!("cannot spawn the case's thread: {e}"));
    if thread.join().is_err() {
        panic!("case `{name}` panicked");
    }
    println!("{CHILD_MARKER}{name}");
}

/// A small tree: a tensor, an empty dict, one level of nesting.
fn small_tree() -> Tree {
    let mut dense = Tree::new();
    dense.insert("bias", leaf());
    dense.insert("cache", Tree::new());
    let mut tree = Tree::new();
    tree.insert("Dense_0", dense);
    tree
}

#[test]
fn debug_prints_a_small_tree_as_derived_debug_does() {
    let tree = small_tree();
    assert_eq!(
        format!("{tree:?}"),
        "Tree { entries: {\"Dense_0\": Tree(Tree { entries: {\"bias\": Tensor(Tensor { dtype: \
         F32, shape: [1], data: [0, 0, 192, 63] }), \"cache\": Tree(Tree { entries: {} })} })} }"
    );
    assert_eq!(
        format!("{tree:#?}"),
        r#"Tree {
    entries: {
        "Dense_0": Tree(
            Tree {
                entries: {
                    "bias": Tensor(
                        Tensor {
                            dtype: F32,
                            shape: [
                                1,
                            ],
                            data: [
                                0,
                                0,
                                192,
                                63,
                            ],
                        },
                    ),
                    "cache": Tree(
                        Tree {
                            entries: {},
                        },
                    ),
                },
            },
        ),
    },
}"#
    );
    // Formatting flags reach the tensors, as with a derived impl.
    assert_eq!(
        format!("{:x?}", tree.get_path("Dense_0.cache")),
        "Some(Tree(Tree { entries: {} }))"
    );
    assert!(format!("{tree:x?}").contains("data: [0, 0, c0, 3f]"));
}

#[test]
fn debug_indents_a_tree_nested_in_another_value() {
    let tree = small_tree();
    assert_eq!(
        format!("{:#?}", tree.get("Dense_0")),
        r#"Some(
    Tree(
        Tree {
            entries: {
                "bias": Tensor(
                    Tensor {
                        dtype: F32,
                        shape: [
                            1,
                        ],
                        data: [
                            0,
                            0,
                            192,
                            63,
                        ],
                    },
                ),
                "cache": Tree(
                    Tree {
                        entries: {},
                    },
                ),
            },
        },
    ),
)"#
    );
    assert_eq!(format!("{:#?}", Tree::new()), "Tree {\n    entries: {},\n}");
    assert_eq!(format!("{:?}", Tree::new()), "Tree { entries: {} }");
}
