//! The dynamic tree API: nested dicts of tensors of any dtype, mirroring Python safejax's
//! `safejax.flax`, `safejax.haiku` and `safejax.objax` modules.
//!
//! A [`Tree`] is the analog of a Flax `FrozenDict` or a Haiku params dict, a [`VarCollection`]
//! that of an Objax `VarCollection`. Leaves are [`Tensor`]s, which keep the file's dtype, shape
//! and bytes losslessly and convert to and from ndarray.

use std::fmt::{self, Write as _};
use std::mem;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, KeyError, KeyProblem, LoadReport, Result};
use crate::format::{self, Layout, Metadata, Parsed};
use crate::io::write_atomically;
use crate::shard::{self, Expanded};
use crate::source::{self, Input};
use crate::tensor::{Leaf, LeafMut, Tensor};

mod entries;

use entries::Entries;
pub use entries::Iter;

/// A node of a [`Tree`]: a tensor, or a nested dict.
// The derived impls only hand a nested dict to `Tree`'s own impls, which do not recurse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A tensor.
    Tensor(Tensor),
    /// A nested dict.
    Tree(Tree),
}

impl From<Tensor> for Node {
    fn from(tensor: Tensor) -> Self {
        Node::Tensor(tensor)
    }
}

impl From<Tree> for Node {
    fn from(tree: Tree) -> Self {
        Node::Tree(tree)
    }
}

/// A nested dict of named tensors: what Flax and Haiku parameters are in Python.
///
/// Flattening joins levels with `.`, so names may not contain `.` (nor be empty); Haiku module
/// names such as `mlp/~/linear_0` are fine.
///
/// ```
/// use ndarray::array;
/// use safejax_core::{Tensor, Tree};
///
/// let mut dense = Tree::new();
/// dense.insert("kernel", Tensor::from_array(&array![[1.0f32]]));
/// dense.insert("bias", Tensor::from_array(&array![0.0f32]));
/// let mut params = Tree::new();
/// params.insert("Dense_0", dense);
/// let keys: Vec<String> = params.flatten()?.into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys, ["Dense_0.bias", "Dense_0.kernel"]);
/// assert!(params.get_path("Dense_0.kernel").is_some());
/// # Ok::<(), safejax_core::Error>(())
/// ```
///
/// Depth is unbounded: a key of a million segments is a million nested dicts, and every
/// operation on a tree (drop, clone, `==`, `Debug`, [`flatten`](Tree::flatten), serializing,
/// deserializing) walks it with a loop and a stack of its own, never with recursion, so none of
/// them can overflow the thread's stack however deep the tree is. `{:#?}` lays out the first 32
/// levels one entry a line and deeper ones on one line, so its output stays proportional to the
/// depth.
///
/// ```
/// use ndarray::array;
/// use safejax_core::{Tensor, Tree};
///
/// let mut tree = Tree::new();
/// tree.insert("w", Tensor::from_array(&array![1.0f32]));
/// for _ in 1..100_000 {
///     let mut parent = Tree::new();
///     parent.insert("layer", tree);
///     tree = parent;
/// }
/// let copy = tree.clone();
/// assert!(copy == tree);
/// let key = "layer.".repeat(99_999) + "w";
/// assert_eq!(tree.flatten()?[0].0, key);
/// assert!(format!("{tree:?}").ends_with(&")} }".repeat(99_999)));
/// drop(tree);
/// # Ok::<(), safejax_core::Error>(())
/// ```
#[derive(Default)]
pub struct Tree {
    entries: Entries,
}

impl Tree {
    /// An empty dict.
    pub fn new() -> Self {
        Tree::default()
    }

    /// Inserts a tensor or a nested dict, returning what was there.
    pub fn insert(&mut self, name: impl Into<String>, node: impl Into<Node>) -> Option<Node> {
        self.entries.insert(name.into(), node.into())
    }

    /// The entry `name` of this level.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.entries.get(name)
    }

    /// The entry `name` of this level, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.entries.get_mut(name)
    }

    /// Removes and returns the entry `name` of this level.
    pub fn remove(&mut self, name: &str) -> Option<Node> {
        self.entries.remove(name)
    }

    /// Follows a `.`-joined path (`params.Dense_0.kernel`).
    pub fn get_path(&self, path: &str) -> Option<&Node> {
        let mut parts = path.split('.');
        let mut node = self.entries.get(parts.next()?)?;
        for part in parts {
            match node {
                Node::Tree(tree) => node = tree.entries.get(part)?,
                Node::Tensor(_) => return None,
            }
        }
        Some(node)
    }

    /// The tensor at a `.`-joined path.
    pub fn tensor(&self, path: &str) -> Option<&Tensor> {
        match self.get_path(path)? {
            Node::Tensor(tensor) => Some(tensor),
            Node::Tree(_) => None,
        }
    }

    /// The entries of this level, sorted by name.
    pub fn iter(&self) -> Iter<'_> {
        self.entries.iter()
    }

    /// The number of entries of this level.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether this level has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every tensor with its `.`-joined key, sorted. Empty dicts vanish, as in Python.
    pub fn flatten(&self) -> Result<Vec<(String, &Tensor)>> {
        // Grown as it goes: counting first would walk the tree twice, which measured slower.
        let mut out = Vec::new();
        self.each(|key, tensor| out.push((key.to_owned(), tensor)))?;
        Ok(out)
    }

    /// Calls `f` with every tensor and its `.`-joined key, in key order; an error names the dict
    /// of the first bad name.
    fn each<'a>(&'a self, mut f: impl FnMut(&str, &'a Tensor)) -> Result<()> {
        // The key of the dict being walked; each parent waits with its entries left and the
        // length of its own key.
        let mut prefix = String::new();
        let mut parents: Vec<(Iter<'a>, usize)> = Vec::new();
        let mut entries = self.entries.iter();
        loop {
            let Some((name, node)) = entries.next() else {
                let Some((rest, len)) = parents.pop() else {
                    return Ok(());
                };
                entries = rest;
                prefix.truncate(len);
                continue;
            };
            if name.is_empty() || name.contains('.') {
                return Err(Error::Invalid {
                    key: prefix,
                    reason: format!("has entry `{name}`: names must be non-empty and free of `.`"),
                });
            }
            let len = prefix.len();
            // Names are non-empty, so only the root's key is.
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(name);
            match node {
                Node::Tensor(tensor) => {
                    f(&prefix, tensor);
                    prefix.truncate(len);
                }
                Node::Tree(tree) => {
                    parents.push((mem::replace(&mut entries, tree.entries.iter()), len));
                }
            }
        }
    }

    /// Builds a tree from `.`-joined keys. A key that is both a tensor and a dict is an error.
    pub fn unflatten(flat: impl IntoIterator<Item = (String, Tensor)>) -> Result<Tree> {
        let mut root = Tree::new();
        for (key, tensor) in flat {
            root.insert_key(&key, tensor)?;
        }
        Ok(root)
    }

    /// Inserts `tensor` at the `.`-joined `key`, making the dicts on the way.
    fn insert_key(&mut self, key: &str, tensor: Tensor) -> Result<()> {
        if key.split('.').any(str::is_empty) {
            return Err(KeyError::new(key, "has an empty segment").into());
        }
        let (dirs, leaf) = key.rsplit_once('.').unwrap_or(("", key));
        let mut level = self;
        for dir in dirs.split('.').filter(|_| !dirs.is_empty()) {
            let entry = level
                .entries
                .get_or_insert_with(dir, || Node::Tree(Tree::new()));
            level = match entry {
                Node::Tree(tree) => tree,
                Node::Tensor(_) => return Err(conflict(key)),
            };
        }
        if level.entries.contains_key(leaf) {
            return Err(conflict(key));
        }
        level.entries.insert(leaf.to_owned(), Node::Tensor(tensor));
        Ok(())
    }
}

fn conflict(key: &str) -> Error {
    KeyError::new(key, "is both a tensor and a dict of tensors").into()
}

impl Drop for Tree {
    /// Takes the nested dicts out of their parents onto a stack before they drop, so each one
    /// drops with no dict left inside it.
    fn drop(&mut self) {
        let mut waiting: Vec<Tree> = Vec::new();
        let mut entries = mem::take(&mut self.entries);
        loop {
            for node in entries.into_values() {
                if let Node::Tree(tree) = node {
                    waiting.push(tree);
                }
            }
            let Some(mut tree) = waiting.pop() else {
                return;
            };
            entries = mem::take(&mut tree.entries);
        }
    }
}

impl Clone for Tree {
    fn clone(&self) -> Self {
        /// A dict being copied: its entries left to copy, and the copies made so far.
        struct Copying<'t> {
            left: Iter<'t>,
            done: Vec<(String, Node)>,
        }

        fn start(tree: &Tree) -> Copying<'_> {
            Copying {
                left: tree.entries.iter(),
                done: Vec::with_capacity(tree.len()),
            }
        }

        // Each parent waits with the name of the dict being copied inside it.
        let mut parents: Vec<(Copying<'_>, &String)> = Vec::new();
        let mut level = start(self);
        loop {
            match level.left.next() {
                Some((name, Node::Tensor(tensor))) => {
                    level
                        .done
                        .push((name.clone(), Node::Tensor(tensor.clone())));
                }
                Some((name, Node::Tree(tree))) => {
                    parents.push((mem::replace(&mut level, start(tree)), name));
                }
                None => {
                    let copy = Tree {
                        entries: Entries::from_sorted(mem::take(&mut level.done)),
                    };
                    let Some((parent, name)) = parents.pop() else {
                        return copy;
                    };
                    level = parent;
                    level.done.push((name.clone(), Node::Tree(copy)));
                }
            }
        }
    }
}

impl PartialEq for Tree {
    fn eq(&self, other: &Tree) -> bool {
        let mut pairs = vec![(self, other)];
        while let Some((left, right)) = pairs.pop() {
            if left.len() != right.len() {
                return false;
            }
            for ((left_name, left), (right_name, right)) in left.iter().zip(right) {
                if left_name != right_name {
                    return false;
                }
                match (left, right) {
                    (Node::Tensor(left), Node::Tensor(right)) if left == right => {}
                    (Node::Tree(left), Node::Tree(right)) => pairs.push((left, right)),
                    _ => return false,
                }
            }
        }
        true
    }
}

impl Eq for Tree {}

/// How many levels of a tree `{:#?}` lays out one entry a line.
const PRETTY_LEVELS: usize = 32;

impl fmt::Debug for Tree {
    /// Prints what `#[derive(Debug)]` would print (`Tree { entries: {..} }`), without recursion.
    ///
    /// `{:#?}` lays out the first 32 levels one entry a line, as derived impls do, and deeper
    /// dicts on one line in the `{:?}` form: each laid-out level indents by 12 more spaces, so
    /// the output grows with the depth and not with its square. In the laid-out levels, tensors
    /// are printed with `{:#?}` and none of the formatter's other flags.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alternate = f.alternate();
        let mut out = Indented {
            f,
            depth: 0,
            line_start: false,
        };
        let mut parents: Vec<Printing<'_>> = Vec::new();
        let mut level = Printing::open(self, alternate, &mut out)?;
        loop {
            match level.left.next() {
                Some((name, Node::Tensor(tensor))) => {
                    level.entry(&mut out, name, "Tensor")?;
                    if level.pretty {
                        write!(out, "{tensor:#?}")?;
                    } else if alternate {
                        write!(out, "{tensor:?}")?;
                    } else {
                        fmt::Debug::fmt(tensor, out.f)?;
                    }
                    level.end_entry(&mut out)?;
                }
                Some((name, Node::Tree(tree))) => {
                    level.entry(&mut out, name, "Tree")?;
                    let pretty = level.pretty && parents.len() + 1 < PRETTY_LEVELS;
                    let child = Printing::open(tree, pretty, &mut out)?;
                    parents.push(mem::replace(&mut level, child));
                }
                None => {
                    level.close(&mut out)?;
                    let Some(parent) = parents.pop() else {
                        return Ok(());
                    };
                    level = parent;
                    level.end_entry(&mut out)?;
                }
            }
        }
    }
}

/// One dict being printed by `Tree`'s `Debug`: its entries left, and its layout.
struct Printing<'t> {
    left: Iter<'t>,
    /// One entry a line (`{:#?}`), or all on one line (`{:?}`).
    pretty: bool,
    /// Whether no entry has been printed yet.
    first: bool,
}

impl<'t> Printing<'t> {
    /// Prints the start of `tree`, up to its first entry.
    fn open(tree: &'t Tree, pretty: bool, out: &mut Indented<'_, '_>) -> Result<Self, fmt::Error> {
        if pretty {
            out.write_str("Tree {\n")?;
            out.depth += 1;
            out.write_str("entries: {")?;
            if !tree.is_empty() {
                out.write_str("\n")?;
                out.depth += 1;
            }
        } else {
            out.write_str("Tree { entries: {")?;
        }
        Ok(Printing {
            left: tree.entries.iter(),
            pretty,
            first: true,
        })
    }

    /// Prints the end of the dict, after its last entry.
    fn close(&self, out: &mut Indented<'_, '_>) -> fmt::Result {
        if !self.pretty {
            return out.write_str("} }");
        }
        if !self.first {
            out.depth -= 1;
        }
        out.write_str("},\n")?;
        out.depth -= 1;
        out.write_str("}")
    }

    /// Prints the start of an entry, up to its value: `"name": Variant(`.
    fn entry(&mut self, out: &mut Indented<'_, '_>, name: &str, variant: &str) -> fmt::Result {
        if !self.pretty && !self.first {
            out.write_str(", ")?;
        }
        self.first = false;
        write!(out, "{name:?}: {variant}(")?;
        if self.pretty {
            out.write_str("\n")?;
            out.depth += 1;
        }
        Ok(())
    }

    /// Prints the end of an entry, after its value.
    fn end_entry(&self, out: &mut Indented<'_, '_>) -> fmt::Result {
        if !self.pretty {
            return out.write_str(")");
        }
        out.write_str(",\n")?;
        out.depth -= 1;
        out.write_str("),\n")
    }
}

/// A formatter's output that starts every line but the first with `depth` levels of four
/// spaces, as `{:#?}` nests values.
struct Indented<'a, 'f> {
    f: &'a mut fmt::Formatter<'f>,
    depth: usize,
    line_start: bool,
}

impl fmt::Write for Indented<'_, '_> {
    fn write_str(&mut self, mut text: &str) -> fmt::Result {
        while !text.is_empty() {
            if self.line_start {
                for _ in 0..self.depth {
                    self.f.write_str("    ")?;
                }
            }
            let end = text.find('\n').map_or(text.len(), |i| i + 1);
            let (line, rest) = text.split_at(end);
            self.f.write_str(line)?;
            self.line_start = line.ends_with('\n');
            text = rest;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Tree {
    type Item = (&'a String, &'a Node);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl FromIterator<(String, Node)> for Tree {
    fn from_iter<I: IntoIterator<Item = (String, Node)>>(iter: I) -> Self {
        Tree {
            entries: Entries::from_unsorted(iter.into_iter().collect()),
        }
    }
}

fn write_flat(flat: &[(String, &dyn Leaf)], metadata: Option<&Metadata>) -> Result<Vec<u8>> {
    Layout::new(flat, metadata.unwrap_or(&Metadata::new()))?.to_vec(flat)
}

/// Saves `flat` to the file at `path`, or as a sharded checkpoint (shards of at most
/// [`shard::DEFAULT_MAX_SHARD_SIZE`]) when `path` is an index.
fn save_flat(flat: &[(String, &dyn Leaf)], path: &Path, metadata: Option<&Metadata>) -> Result<()> {
    let empty = Metadata::new();
    let metadata = metadata.unwrap_or(&empty);
    if shard::is_index(path) {
        let max = shard::DEFAULT_MAX_SHARD_SIZE;
        return shard::save(flat, metadata, max, Default::default(), path);
    }
    let layout = Layout::new(flat, metadata)?;
    write_atomically(path, |file| layout.write(flat, file))
}

/// Reads the file at `path` with `read`, or the shards of the index at `path`, each opened
/// once, every header checked (and the index against them) before any data is read.
fn from_file<T>(path: &Path, read: impl FnOnce(Vec<Parsed<'_>>) -> Result<T>) -> Result<T> {
    if !shard::is_index(path) {
        return source::with_file(Input::Path(path), false, |parsed| read(vec![parsed]));
    }
    let expanded = Expanded::new([((), Input::Path(path))])?;
    let inputs = expanded.inputs().map(|(_, input)| input);
    let check = |headers: &[format::FileHeader<'_>]| expanded.check(headers);
    source::with_checked_files(inputs, false, check, |_, files| read(files))
        .map_err(|e| expanded.open_error(e))
}

/// Reads the files of `inputs` with `read`, every header checked before any data is read: one
/// file, or the shards of one checkpoint, already found and checked against their index.
fn from_inputs<T>(
    inputs: &[Input<'_>],
    read: impl FnOnce(Vec<Parsed<'_>>) -> Result<T>,
) -> Result<T> {
    source::with_checked_files(
        inputs.iter().copied(),
        false,
        |_| Ok(()),
        |(), files| read(files),
    )
}

/// The `__metadata__` maps of `files`, merged: the first file's entry wins on a clash.
fn merged_metadata(files: &mut [Parsed<'_>]) -> Metadata {
    let mut merged = Metadata::new();
    for file in files {
        for (k, v) in std::mem::take(&mut file.metadata) {
            merged.entry(k).or_insert(v);
        }
    }
    merged
}

fn tree_leaves(tree: &Tree) -> Result<Vec<(String, &dyn Leaf)>> {
    let mut out = Vec::new();
    tree.each(|key, tensor| out.push((key.to_owned(), tensor as &dyn Leaf)))?;
    Ok(out)
}

/// Serializes a nested dict (Flax or Haiku parameters) to safetensors bytes.
pub(crate) fn serialize_tree(tree: &Tree, metadata: Option<&Metadata>) -> Result<Vec<u8>> {
    write_flat(&tree_leaves(tree)?, metadata)
}

pub(crate) fn serialize_tree_to_file(
    tree: &Tree,
    path: &Path,
    metadata: Option<&Metadata>,
) -> Result<()> {
    save_flat(&tree_leaves(tree)?, path, metadata)
}

pub(crate) fn deserialize_tree(bytes: &[u8]) -> Result<(Tree, Metadata)> {
    tree_of(vec![format::parse(bytes)?])
}

/// The tree of the tensors of `files` (one file, or the shards of a checkpoint, whose keys are
/// distinct), with their merged metadata.
pub(crate) fn tree_of(mut files: Vec<Parsed<'_>>) -> Result<(Tree, Metadata)> {
    let metadata = merged_metadata(&mut files);
    if let Some(tree) = bulk_tree(&files) {
        return Ok((tree, metadata));
    }
    // Deep or bad keys, or an unreadable tensor: one key at a time, so that the error is about
    // the first bad key in the file, and depth costs no stack.
    let mut tree = Tree::new();
    for (name, tensor) in files.iter().flat_map(Parsed::iter) {
        tree.insert_key(name, Tensor::from_ref(&tensor)?)?;
    }
    Ok((tree, metadata))
}

/// The most segments of a key [`bulk_tree`] takes: it builds a dict a call deep.
const BULK_DEPTH: usize = 64;

/// The tree of a file's tensors built dict by dict from its keys sorted, each dict's entries
/// in bulk (a sorted list made into a map in one pass, not inserted one at a time); `None`
/// when a key is deep or not a good one, or a tensor cannot be read, for [`tree_of`] to find
/// the first problem key by key.
fn bulk_tree(files: &[Parsed<'_>]) -> Option<Tree> {
    let mut flat: Vec<(&str, Option<Tensor>)> =
        Vec::with_capacity(files.iter().map(Parsed::len).sum());
    for (name, tensor) in files.iter().flat_map(Parsed::iter) {
        let segments = name.split('.');
        if segments.clone().any(str::is_empty) || segments.count() > BULK_DEPTH {
            return None;
        }
        flat.push((name, Some(Tensor::from_ref(&tensor).ok()?)));
    }
    flat.sort_unstable_by(|a, b| a.0.cmp(b.0));
    bulk_level(&mut flat, 0)
}

/// The dict of `items` (sorted keys, all the same up to byte `at`) below that prefix; `None`
/// where a name is both a tensor and a dict.
fn bulk_level(items: &mut [(&str, Option<Tensor>)], at: usize) -> Option<Tree> {
    let mut entries: Vec<(String, Node)> = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let key = items[i].0;
        let rest = &key[at..];
        match rest.find('.') {
            None => {
                entries.push((rest.to_owned(), Node::Tensor(items[i].1.take()?)));
                i += 1;
            }
            Some(dot) => {
                // The keys of this dict: those that start with its prefix and its `.`, found
                // by a scan, not a binary search, which would read keys from all over the
                // header for every small dict.
                let prefix = &key[..at + dot + 1];
                let mut end = i + 1;
                while end < items.len() && items[end].0.starts_with(prefix) {
                    end += 1;
                }
                let dict = bulk_level(&mut items[i..end], prefix.len())?;
                entries.push((rest[..dot].to_owned(), Node::Tree(dict)));
                i = end;
            }
        }
    }
    // In key order, names come sorted but for a name beside its own dict (`a`, `a-b`, `a.c`).
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    if entries.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    Some(Tree {
        entries: Entries::from_sorted(entries),
    })
}

macro_rules! dict_api {
    ($framework:literal, $module:literal, $example_key:literal) => {
        use std::path::Path;

        use crate::error::Result;
        use crate::format::Metadata;
        use crate::source::Input;
        use crate::tree::{Tree, deserialize_tree, from_file, from_inputs, serialize_tree, serialize_tree_to_file, tree_of};

        #[doc = concat!("Serializes ", $framework, " parameters (a nested dict) to safetensors bytes; keys are")]
        #[doc = concat!("the levels joined with `.` (`", $example_key, "`).")]
        pub fn serialize(params: &Tree, metadata: Option<&Metadata>) -> Result<Vec<u8>> {
            serialize_tree(params, metadata)
        }

        #[doc = concat!("Saves ", $framework, " parameters to a file, atomically; to the path of an index")]
        /// (`model.safetensors.index.json`), as a sharded checkpoint with shards of at most 5 GB,
        /// as [`crate::Saver::save`] writes one.
        pub fn serialize_to_file(params: &Tree, path: impl AsRef<Path>, metadata: Option<&Metadata>) -> Result<()> {
            serialize_tree_to_file(params, path.as_ref(), metadata)
        }

        #[doc = concat!("Deserializes ", $framework, " parameters: every key split on `.` into nested dicts.")]
        pub fn deserialize(bytes: &[u8]) -> Result<Tree> {
            deserialize_tree(bytes).map(|(tree, _)| tree)
        }

        /// Like [`deserialize`], also returning the `__metadata__` map.
        pub fn deserialize_with_metadata(bytes: &[u8]) -> Result<(Tree, Metadata)> {
            deserialize_tree(bytes)
        }

        /// Like [`deserialize`], from a file, or from the shards of a sharded checkpoint
        /// given the path of its index (see [`crate::shard`]), checked against the index; a
        /// `total_size` that does not match is not reported here ([`crate::shard::Sharded`]
        /// has it).
        pub fn deserialize_file(path: impl AsRef<Path>) -> Result<Tree> {
            deserialize_file_with_metadata(path).map(|(tree, _)| tree)
        }

        /// Like [`deserialize_with_metadata`], from a file or a sharded checkpoint (the
        /// shards' metadata merged, the first shard's entry winning on a clash).
        pub fn deserialize_file_with_metadata(path: impl AsRef<Path>) -> Result<(Tree, Metadata)> {
            let path = path.as_ref();
            from_file(path, tree_of)
        }

        /// Like [`deserialize_with_metadata`], from inputs already opened or fetched (a
        /// [`Fetched`](crate::fetched::Fetched) file of object storage): one file, or the shards
        /// of one checkpoint (their metadata merged, the first input's entry winning on a clash).
        ///
        /// ```
        #[doc = concat!("use safejax_core::{Input, ", $module, "};")]
        /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/flax_mlp.safetensors");
        #[doc = concat!("let (tree, _) = ", $module, "::read(&[Input::Path(path.as_ref())])?;")]
        #[doc = concat!("assert_eq!(tree, ", $module, "::deserialize_file(path)?);")]
        /// # Ok::<(), safejax_core::Error>(())
        /// ```
        pub fn read(inputs: &[Input<'_>]) -> Result<(Tree, Metadata)> {
            from_inputs(inputs, tree_of)
        }
    };
}

/// `safejax.flax`: Flax `FrozenDict` / dict parameters.
///
/// ```
/// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/flax_mlp.safetensors"))?;
/// let variables = safejax_core::flax::deserialize(&bytes)?;
/// let kernel = variables.tensor("params.Dense_0.kernel").expect("present");
/// assert_eq!(kernel.shape(), &[8, 16]);
/// assert_eq!(safejax_core::flax::serialize(&variables, None)?, bytes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod flax {
    dict_api!("Flax", "flax", "params.Dense_0.kernel");
}

/// `safejax.haiku`: Haiku parameter (and state) dicts.
///
/// ```
/// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/haiku_mlp.safetensors"))?;
/// let params = safejax_core::haiku::deserialize(&bytes)?;
/// // Two levels: module path, then parameter name.
/// assert!(params.tensor("mlp/~/linear_0.w").is_some());
/// assert_eq!(safejax_core::haiku::serialize(&params, None)?, bytes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod haiku {
    dict_api!("Haiku", "haiku", "mlp/~/linear_0.w");
}

/// The kind of an Objax variable, written after `::` in its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VarKind {
    /// `TrainVar`: trainable.
    TrainVar,
    /// `StateVar`: state such as BatchNorm statistics.
    StateVar,
    /// `RandomState`.
    RandomState,
    /// `TrainRef`.
    TrainRef,
    /// Any other kind name.
    Other(String),
}

impl VarKind {
    /// The name as written in keys.
    pub fn as_str(&self) -> &str {
        match self {
            VarKind::TrainVar => "TrainVar",
            VarKind::StateVar => "StateVar",
            VarKind::RandomState => "RandomState",
            VarKind::TrainRef => "TrainRef",
            VarKind::Other(name) => name,
        }
    }
}

impl fmt::Display for VarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VarKind {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "TrainVar" => VarKind::TrainVar,
            "StateVar" => VarKind::StateVar,
            "RandomState" => VarKind::RandomState,
            "TrainRef" => VarKind::TrainRef,
            other => VarKind::Other(other.to_owned()),
        })
    }
}

/// An Objax variable: its kind and its tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    /// `TrainVar`, `StateVar`, ...
    pub kind: VarKind,
    /// The value.
    pub tensor: Tensor,
}

/// An Objax `VarCollection`: full variable paths (`(MLP).layers(Sequential)[0](Linear).w`) to
/// variables, sorted.
pub type VarCollection = std::collections::BTreeMap<String, Var>;

/// `safejax.objax`: Objax `VarCollection`s, keys suffixed with `::VarKind`.
///
/// ```
/// use safejax_core::objax;
/// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/objax_mlp.safetensors"))?;
/// let mut vars = objax::deserialize(&bytes)?;
/// let w = &vars["(OMLP).layers(Sequential)[0](Linear).w"];
/// assert_eq!(w.kind, objax::VarKind::TrainVar);
/// assert_eq!(objax::serialize(&vars, None)?, bytes);
/// // Assign into an existing collection: every file key must be one of its variables.
/// objax::deserialize_with_assignment(&bytes, &mut vars)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod objax {
    use std::path::Path;

    use super::{
        Error, Input, KeyProblem, Leaf, LeafMut, LoadReport, Metadata, Parsed, Result, format,
        from_file, from_inputs, save_flat, write_flat,
    };
    pub use super::{Var, VarCollection, VarKind};
    use crate::dtype::DtypePolicy;
    use crate::tensor::Tensor;

    /// Every variable's tensor under its key in the file: its path, `::` and its kind, as
    /// [`serialize`] writes them; for [`Saver::save_tensors`](crate::Saver::save_tensors) and
    /// other writers of named tensors.
    ///
    /// ```
    /// use ndarray::array;
    /// use safejax_core::{Saver, Tensor, objax::{self, Var, VarCollection, VarKind}};
    ///
    /// let mut vars = VarCollection::new();
    /// let tensor = Tensor::from_array(&array![1.0f32]);
    /// vars.insert("(Linear).b".to_owned(), Var { kind: VarKind::TrainVar, tensor });
    /// let tensors = objax::tensors(&vars);
    /// assert_eq!(tensors[0].0, "(Linear).b::TrainVar");
    /// assert_eq!(Saver::new().tensors_to_bytes(&tensors)?, objax::serialize(&vars, None)?);
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn tensors(vars: &VarCollection) -> Vec<(String, &dyn Leaf)> {
        vars.iter()
            .map(|(name, var)| (format!("{name}::{}", var.kind), &var.tensor as &dyn Leaf))
            .collect()
    }

    /// The variable path and kind of a key in the file: `path::Kind`, or a path alone (as
    /// Objax itself writes them) for a `TrainVar`.
    ///
    /// ```
    /// use safejax_core::objax::{self, VarKind};
    /// assert_eq!(objax::split_key("(BN).running_mean::StateVar"), ("(BN).running_mean", VarKind::StateVar));
    /// assert_eq!(objax::split_key("(Linear).w"), ("(Linear).w", VarKind::TrainVar));
    /// ```
    pub fn split_key(key: &str) -> (&str, VarKind) {
        match key.rsplit_once("::") {
            Some((name, kind)) => (name, kind.parse().unwrap_or(VarKind::TrainVar)),
            // Keys written by Objax itself carry no kind.
            None => (key, VarKind::TrainVar),
        }
    }

    /// Serializes a `VarCollection`; each key is the variable's path, `::` and its kind.
    pub fn serialize(vars: &VarCollection, metadata: Option<&Metadata>) -> Result<Vec<u8>> {
        write_flat(&tensors(vars), metadata)
    }

    /// Saves a `VarCollection` to a file, atomically; to the path of an index, as a sharded
    /// checkpoint (as [`crate::Saver::save`] writes one, shards of at most 5 GB).
    pub fn serialize_to_file(
        vars: &VarCollection,
        path: impl AsRef<Path>,
        metadata: Option<&Metadata>,
    ) -> Result<()> {
        save_flat(&tensors(vars), path.as_ref(), metadata)
    }

    /// Deserializes a `VarCollection`, splitting the `::VarKind` suffix off each key (a key
    /// without one is a `TrainVar`). Keys are never split on `.`.
    pub fn deserialize(bytes: &[u8]) -> Result<VarCollection> {
        deserialize_with_metadata(bytes).map(|(vars, _)| vars)
    }

    /// Like [`deserialize`], also returning the `__metadata__` map.
    pub fn deserialize_with_metadata(bytes: &[u8]) -> Result<(VarCollection, Metadata)> {
        vars_of(vec![format::parse(bytes)?])
    }

    fn vars_of(mut files: Vec<Parsed<'_>>) -> Result<(VarCollection, Metadata)> {
        let metadata = super::merged_metadata(&mut files);
        let mut vars = VarCollection::new();
        for (key, tensor) in files.iter().flat_map(Parsed::iter) {
            let (name, kind) = split_key(key);
            let var = super::Var {
                kind,
                tensor: Tensor::from_ref(&tensor)?,
            };
            if let Some(first) = vars.insert(name.to_owned(), var) {
                return Err(Error::Invalid {
                    key: name.to_owned(),
                    reason: format!(
                        "appears twice in the file, as `{name}::{}` and `{key}`",
                        first.kind
                    ),
                });
            }
        }
        Ok((vars, metadata))
    }

    /// Like [`deserialize`], from a file, or from the shards of a sharded checkpoint given the
    /// path of its index (see [`crate::shard`]).
    pub fn deserialize_file(path: impl AsRef<Path>) -> Result<VarCollection> {
        let path = path.as_ref();
        from_file(path, vars_of).map(|(vars, _)| vars)
    }

    /// Assigns every tensor of the file into the variable of the same path in `vars`, like
    /// Python's `deserialize_with_assignment(file, model.vars())`.
    ///
    /// Every file key must name a variable of `vars` with the same kind, dtype and shape;
    /// variables the file does not name keep their values. All problems are reported at once
    /// and, if there is any, nothing is assigned.
    pub fn deserialize_with_assignment(bytes: &[u8], vars: &mut VarCollection) -> Result<()> {
        assign(&[format::parse(bytes)?], vars)
    }

    fn assign(files: &[Parsed<'_>], vars: &mut VarCollection) -> Result<()> {
        let mut report = LoadReport::default();
        // Every tensor is read before any is assigned: a failed read changes nothing.
        let mut staged = Vec::new();
        for (key, tensor) in files.iter().flat_map(Parsed::iter) {
            let (name, kind) = split_key(key);
            match vars.get(name) {
                None => report.unexpected.push(key.to_owned()),
                Some(var) if var.kind != kind => report.invalid.push(KeyProblem {
                    key: key.to_owned(),
                    reason: format!(
                        "is a {kind} in the file but a {} in the collection",
                        var.kind
                    ),
                }),
                Some(var) => {
                    let tensor = tensor.staged()?;
                    match tensor.with_view(|view| var.tensor.check(view, DtypePolicy::Exact)) {
                        Ok(()) => staged.push((name, tensor)),
                        Err(problem) => report.record(key.to_owned(), problem),
                    }
                }
            }
        }
        if !report.is_empty() {
            return Err(Error::Load(Box::new(report)));
        }
        for (name, tensor) in staged {
            if let Some(var) = vars.get_mut(name) {
                tensor.with_view(|view| var.tensor.assign(view, DtypePolicy::Exact));
            }
        }
        Ok(())
    }

    /// Like [`deserialize_with_metadata`], from inputs already opened or fetched (a
    /// [`Fetched`](crate::fetched::Fetched) file of object storage): one file, or the shards of
    /// one checkpoint.
    ///
    /// ```
    /// use safejax_core::{Input, objax};
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/objax_mlp.safetensors");
    /// let (vars, _) = objax::read(&[Input::Path(path.as_ref())])?;
    /// assert_eq!(vars, objax::deserialize_file(path)?);
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn read(inputs: &[Input<'_>]) -> Result<(VarCollection, Metadata)> {
        from_inputs(inputs, vars_of)
    }

    /// Like [`deserialize_with_assignment`], from inputs already opened or fetched, returning
    /// their merged metadata: only the tensors of the variables of `vars` (of the kind the key
    /// says) are read.
    ///
    /// ```
    /// use safejax_core::{Input, objax};
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/objax_mlp.safetensors");
    /// let mut vars = objax::deserialize_file(path)?;
    /// let (_, var) = vars.iter_mut().next().expect("a variable");
    /// var.kind = objax::VarKind::StateVar;
    /// let err = objax::read_with_assignment(&[Input::Path(path.as_ref())], &mut vars).unwrap_err();
    /// assert!(err.to_string().contains("is a TrainVar in the file but a StateVar"), "{err}");
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn read_with_assignment(
        inputs: &[Input<'_>],
        vars: &mut VarCollection,
    ) -> Result<Metadata> {
        from_inputs(inputs, |mut files| {
            let metadata = super::merged_metadata(&mut files);
            assign(&files, vars)?;
            Ok(metadata)
        })
    }

    /// Like [`deserialize_with_assignment`], from a file or a sharded checkpoint's index.
    pub fn deserialize_file_with_assignment(
        path: impl AsRef<Path>,
        vars: &mut VarCollection,
    ) -> Result<()> {
        let path = path.as_ref();
        from_file(path, |files| assign(&files, vars))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ndarray::array;

    use super::{Node, PRETTY_LEVELS, Tree};
    use crate::tensor::Tensor;

    /// The types as they were, with derived `Debug`, to compare the hand-written impl against.
    #[allow(dead_code)] // the fields are read by `Debug` only
    mod derived {
        use std::collections::BTreeMap;

        use crate::tensor::Tensor;

        #[derive(Debug)]
        pub struct Tree {
            pub entries: BTreeMap<String, Node>,
        }

        #[derive(Debug)]
        pub enum Node {
            Tensor(Tensor),
            Tree(Tree),
        }
    }

    /// The derived twin of a (shallow) tree.
    fn derived(tree: &Tree) -> derived::Tree {
        let entries: BTreeMap<String, derived::Node> = tree
            .iter()
            .map(|(name, node)| {
                let node = match node {
                    Node::Tensor(tensor) => derived::Node::Tensor(tensor.clone()),
                    Node::Tree(tree) => derived::Node::Tree(derived(tree)),
                };
                (name.clone(), node)
            })
            .collect();
        derived::Tree { entries }
    }

    /// `depth` levels above an empty dict, each holding two tensors, an empty dict and the next
    /// level: `depth + 1` levels of dicts.
    fn bushy(depth: usize) -> Tree {
        let mut tree = Tree::new();
        for level in 0..depth {
            let mut parent = Tree::new();
            parent.insert("a", Tensor::from_array(&array![[level as i32, 2], [3, 4]]));
            parent.insert("empty", Tree::new());
            parent.insert("next", tree);
            parent.insert("z", Tensor::from_array(&array![true]));
            tree = parent;
        }
        tree
    }

    #[test]
    fn debug_prints_what_derive_prints() {
        for depth in 0..PRETTY_LEVELS {
            let (tree, twin) = (bushy(depth), derived(&bushy(depth)));
            assert_eq!(format!("{tree:?}"), format!("{twin:?}"), "depth {depth}");
            assert_eq!(format!("{tree:#?}"), format!("{twin:#?}"), "depth {depth}");
            assert_eq!(format!("{tree:x?}"), format!("{twin:x?}"), "depth {depth}");
            let (node, twin) = (Node::Tree(tree), derived::Node::Tree(twin));
            assert_eq!(format!("{node:#?}"), format!("{twin:#?}"), "depth {depth}");
        }
    }

    #[test]
    fn pretty_debug_prints_deeper_levels_on_one_line() {
        let tree = bushy(PRETTY_LEVELS + 10);
        let pretty = format!("{tree:#?}");
        let mut deepest_laid_out = &tree;
        for _ in 1..PRETTY_LEVELS {
            match deepest_laid_out.get("next") {
                Some(Node::Tree(next)) => deepest_laid_out = next,
                _ => unreachable!("`bushy` nests under `next`"),
            }
        }
        let Some(Node::Tree(first_on_one_line)) = deepest_laid_out.get("next") else {
            unreachable!("`bushy` nests under `next`")
        };
        // Each laid-out level indents by 3 steps of four spaces: `Tree {`, `entries: {`, `Tree(`.
        let indent = " ".repeat(4 * 3 * PRETTY_LEVELS);
        let line = format!("\n{indent}{first_on_one_line:?},\n");
        assert!(pretty.contains(&line), "{pretty}");
        // The widest other line is a field of a tensor in the last laid-out level, 3 * (32 - 1) + 4
        // steps in.
        let widest = pretty
            .lines()
            .filter(|line| !line.trim_start().starts_with("Tree { entries"))
            .map(str::len)
            .max();
        assert_eq!(
            widest,
            Some(4 * (3 * PRETTY_LEVELS + 1) + "dtype: BOOL,".len())
        );
    }

    #[test]
    fn flatten_reports_a_bad_name_with_the_key_of_its_dict() {
        let mut inner = Tree::new();
        inner.insert("b.c", Tensor::from_array(&array![1u8]));
        let mut tree = Tree::new();
        tree.insert("a", inner);
        let err = tree.flatten().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("`a` has entry `b.c`: names must be non-empty and free of `.`")
        );
        let mut root = Tree::new();
        root.insert("", Tensor::from_array(&array![1u8]));
        let err = root.flatten().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("the root has entry ``: names must be non-empty and free of `.`")
        );
    }

    /// A file's tree, built in bulk, is the tree its keys make one at a time, and refuses what
    /// they refuse, deep keys included.
    #[test]
    fn a_file_makes_the_tree_its_keys_make_one_at_a_time() {
        let deep = vec!["d"; super::BULK_DEPTH + 6].join(".");
        let keys = [
            "params.b.w",
            "params.a",
            "params.a-x",
            "params.b_1.w",
            "params.b.v",
            "z",
            deep.as_str(),
        ];
        let tensor = |i: u8| Tensor::from_array(&array![i, i + 1]);
        let leaves: Vec<(String, Tensor)> = keys
            .iter()
            .zip(0..)
            .map(|(k, i)| (k.to_string(), tensor(i)))
            .collect();
        let file = |leaves: &[(String, Tensor)]| {
            let flat: Vec<(String, &dyn crate::Leaf)> = leaves
                .iter()
                .map(|(k, t)| (k.clone(), t as &dyn crate::Leaf))
                .collect();
            super::write_flat(&flat, None).expect("a flat file")
        };
        for n in [keys.len() - 1, keys.len()] {
            let bytes = file(&leaves[..n]);
            let (tree, _) = super::deserialize_tree(&bytes).expect("a tree");
            let one_at_a_time = Tree::unflatten(leaves[..n].iter().cloned()).expect("a tree");
            assert_eq!(tree, one_at_a_time, "{n} keys");
        }
        // `a` beside its own dict, with a name between them in key order.
        let both: Vec<(String, Tensor)> = ["a", "a-b", "a.c"]
            .iter()
            .zip(0..)
            .map(|(k, i)| (k.to_string(), tensor(i)))
            .collect();
        let err = super::deserialize_tree(&file(&both))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("key `a.c` is both a tensor and a dict of tensors")
        );
    }
}
