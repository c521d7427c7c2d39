//! Sharded checkpoints: tensors spread over several safetensors files, with an index that says
//! which file holds which key, in the Hugging Face convention.
//!
//! The index is `model.safetensors.index.json` beside its shards:
//!
//! ```json
//! {
//!   "metadata": {
//!     "total_size": 1024
//!   },
//!   "weight_map": {
//!     "params.Dense_0.bias": "model-00001-of-00002.safetensors",
//!     "params.Dense_0.kernel": "model-00002-of-00002.safetensors"
//!   }
//! }
//! ```
//!
//! Every load and save of a file accepts the path of an index instead ([`is_index`]): a load
//! reads each shard as one part of a multi-part load, each opened once, and checks the index
//! against the shards' real headers first; a save with a [`Saver::max_shard_size`] writes the
//! shards and then the index, never overwriting a shard that the index in place names, so that
//! a crash leaves the old checkpoint or the new one, whole. [`Sharded`] opens and checks an
//! index alone.
//!
//! ```
//! use ndarray::Array1;
//! use safejax_core::{SafeParams, Saver};
//! use safejax_core::shard::{Index, Sharded};
//!
//! let dir = tempfile::tempdir().map_err(safejax_core::Error::Write)?;
//! let path = dir.path().join("model.safetensors.index.json");
//! let layers = vec![Array1::<f32>::zeros(100); 3];
//! // 400 bytes of data per tensor, at most 800 per shard: two shards.
//! Saver::new().max_shard_size(800).save(&layers, &path)?;
//!
//! let index = Index::read(&path)?;
//! assert_eq!(index.shards(), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
//! assert_eq!(index.total_size, Some(1200));
//! assert_eq!(Sharded::open(&path)?.total_bytes(), 1200);
//! assert_eq!(Vec::<Array1<f32>>::load(&path)?, layers);
//! # Ok::<(), safejax_core::Error>(())
//! ```
//!
//! [`Saver::max_shard_size`]: crate::Saver::max_shard_size

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{self, ErrorKind, Write as _};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::atomic::{self, ReadOnly};
use crate::error::{Error, Result, ShardProblem};
use crate::format::{self, FileHeader, Layout, Metadata};
use crate::source::{self, Input};
use crate::tensor::Leaf;

/// The largest shard a save writes unless told otherwise: 5 GB, Hugging Face's default.
pub const DEFAULT_MAX_SHARD_SIZE: u64 = 5_000_000_000;

/// The end of an index's file name in the Hugging Face convention.
const INDEX_SUFFIX: &str = ".safetensors.index.json";

/// Whether `path` names the index of a sharded checkpoint: its file name ends with `.json`
/// (Hugging Face names it `model.safetensors.index.json`).
///
/// ```
/// use std::path::Path;
/// use safejax_core::shard::is_index;
///
/// assert!(is_index(Path::new("ckpt/model.safetensors.index.json")));
/// assert!(!is_index(Path::new("ckpt/model.safetensors")));
/// ```
pub fn is_index(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.as_encoded_bytes().ends_with(b".json"))
}

/// The index of a sharded checkpoint: which shard file holds each key.
///
/// ```
/// use safejax_core::shard::Index;
///
/// let json = br#"{"metadata": {"total_size": 8, "format": "pt"},
///                 "weight_map": {"b": "m-2.safetensors", "a": "m-1.safetensors"}}"#;
/// let index = Index::from_slice(json)?;
/// assert_eq!(index.total_size, Some(8));
/// assert_eq!(index.metadata["format"], "pt");
/// assert_eq!(index.shards(), ["m-1.safetensors", "m-2.safetensors"]);
/// assert_eq!(Index::from_slice(index.to_json().as_bytes())?, index);
/// # Ok::<(), safejax_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Index {
    /// `metadata.total_size`: the bytes of tensor data in all shards, as the index states it.
    pub total_size: Option<u64>,
    /// The whole `metadata` object, `total_size` included.
    pub metadata: Map<String, Value>,
    /// Each key, and the file name of the shard holding it.
    pub weight_map: BTreeMap<String, String>,
}

impl Index {
    /// Reads the index at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Index> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|e| Error::io("read", path, e))?;
        Index::from_slice(&bytes).map_err(|e| match e {
            Error::Index { reason, .. } => Error::Index {
                path: path.to_owned(),
                reason,
            },
            other => other,
        })
    }

    /// Parses an index: a JSON object with a `weight_map` object of key to shard file name, and
    /// an optional `metadata` object whose `total_size` is a byte count. A key twice in the
    /// `weight_map` is an error, as are other fields of the wrong type; fields besides these two
    /// are ignored.
    pub fn from_slice(bytes: &[u8]) -> Result<Index> {
        let invalid = |reason: String| Error::Index {
            path: PathBuf::new(),
            reason,
        };
        let raw = RawIndex::deserialize(&mut serde_json::Deserializer::from_slice(bytes))
            .map_err(|e| invalid(e.to_string()))?;
        let metadata = raw.metadata.unwrap_or_default();
        let total_size = match metadata.get("total_size") {
            None => None,
            Some(value) => Some(byte_count(value).ok_or_else(|| {
                invalid(format!(
                    "`metadata.total_size` is {value}, not a number of bytes"
                ))
            })?),
        };
        let weight_map = raw
            .weight_map
            .ok_or_else(|| invalid("it has no `weight_map`".to_owned()))?;
        Ok(Index {
            total_size,
            metadata,
            weight_map,
        })
    }

    /// Checks this index, read from `name` (a path or a URL, for errors), against its shards'
    /// headers, as a load of a local index checks them: `heads` holds each shard's first
    /// 8 + N bytes (header length and header; more may follow), in the order of
    /// [`Index::shards`]. A shard name that is not a plain file name, a key in two shards, a key
    /// the index names that its shard lacks or one a shard holds that the index does not name
    /// is an [`Error::Shard`]; returns the warnings (a `total_size` that does not match). What
    /// reads shards from elsewhere than a disk (object storage) checks them with this.
    ///
    /// ```
    /// use ndarray::array;
    /// use safejax_core::{SafeParams, shard::Index};
    ///
    /// let shard = vec![array![1.0f32]].to_bytes()?;
    /// let index = Index::from_slice(br#"{"weight_map": {"0": "m-1.safetensors"}}"#)?;
    /// assert!(index.check_heads("s3://b/m.index.json", &[&shard])?.is_empty());
    /// let wrong = Index::from_slice(br#"{"weight_map": {"1": "m-1.safetensors"}}"#)?;
    /// assert!(wrong.check_heads("s3://b/m.index.json", &[&shard]).is_err());
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn check_heads(&self, name: &str, heads: &[&[u8]]) -> Result<Vec<String>> {
        let opened = Opened::of(Path::new(name), self.clone())?;
        if heads.len() != opened.names.len() {
            let reason = format!(
                "it names {} shards, {} headers were given",
                opened.names.len(),
                heads.len()
            );
            return Err(Error::Index {
                path: name.into(),
                reason,
            });
        }
        let headers = heads
            .iter()
            .zip(&opened.names)
            .map(|(head, shard)| {
                source::header_of(head).map_err(|e| source::in_file(Path::new(shard), e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(opened.check(&headers)?.1)
    }

    /// The file names of the shards, each once, sorted.
    pub fn shards(&self) -> Vec<&str> {
        let names: BTreeSet<&str> = self.weight_map.values().map(String::as_str).collect();
        names.into_iter().collect()
    }

    /// The index as JSON, as Hugging Face writes it: indented by 2, keys sorted, a newline at
    /// the end. `total_size` is written into `metadata` from [`Index::total_size`] (and left out
    /// when that is `None`).
    pub fn to_json(&self) -> String {
        let mut metadata: BTreeMap<&str, &Value> =
            self.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let total = self.total_size.map(Value::from);
        match &total {
            Some(total) => metadata.insert("total_size", total),
            None => metadata.remove("total_size"),
        };
        let index = SortedIndex {
            metadata,
            weight_map: &self.weight_map,
        };
        // Maps of strings to JSON values always serialize.
        let mut json = serde_json::to_string_pretty(&index).unwrap_or_default();
        json.push('\n');
        json
    }
}

/// A byte count: a non-negative integer, or a float that is one (some writers produce those).
fn byte_count(value: &Value) -> Option<u64> {
    let number = value.as_number()?;
    number.as_u64().or_else(|| {
        let float = number.as_f64()?;
        let whole = float >= 0.0 && float.fract() == 0.0 && float < u64::MAX as f64;
        whole.then_some(float as u64)
    })
}

/// The index as it is written: fields and keys in sorted order, whatever map type
/// `serde_json` was built with.
struct SortedIndex<'i> {
    metadata: BTreeMap<&'i str, &'i Value>,
    weight_map: &'i BTreeMap<String, String>,
}

impl serde::Serialize for SortedIndex<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("metadata", &self.metadata)?;
        map.serialize_entry("weight_map", self.weight_map)?;
        map.end()
    }
}

/// The fields of an index, as parsed.
struct RawIndex {
    metadata: Option<Map<String, Value>>,
    weight_map: Option<BTreeMap<String, String>>,
}

impl<'de> Deserialize<'de> for RawIndex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawIndexVisitor)
    }
}

struct RawIndexVisitor;

impl<'de> Visitor<'de> for RawIndexVisitor {
    type Value = RawIndex;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an index object with a `weight_map`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawIndex, A::Error> {
        let mut raw = RawIndex {
            metadata: None,
            weight_map: None,
        };
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "metadata" if raw.metadata.is_some() => {
                    return Err(de::Error::custom("`metadata` appears twice"));
                }
                "metadata" => raw.metadata = Some(map.next_value()?),
                "weight_map" if raw.weight_map.is_some() => {
                    return Err(de::Error::custom("`weight_map` appears twice"));
                }
                "weight_map" => raw.weight_map = Some(map.next_value::<WeightMap>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

/// A `weight_map` in which a key given twice is an error rather than the last one winning.
struct WeightMap(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for WeightMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(WeightMapVisitor)
    }
}

struct WeightMapVisitor;

impl<'de> Visitor<'de> for WeightMapVisitor {
    type Value = WeightMap;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a `weight_map` object of keys to shard file names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WeightMap, A::Error> {
        let mut weights = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let shard: String = map.next_value()?;
            if let Some(first) = weights.get(&key) {
                return Err(de::Error::custom(format!(
                    "key `{key}` appears twice in `weight_map`, in shards `{first}` and `{shard}`"
                )));
            }
            weights.insert(key, shard);
        }
        Ok(WeightMap(weights))
    }
}

/// An index opened and checked against its shards' real headers.
///
/// [`Sharded::open`] reads the index and each shard's header once, and fails with an
/// [`Error::Shard`] naming the index, the shard and the key when they disagree: a key in two
/// shards, a key the index names that its shard lacks, a key a shard holds that the index does
/// not name, a shard file missing, a shard name that is not a plain file name. A `total_size`
/// that disagrees with the shards' tensor data, common in real indexes, is only a warning.
///
/// ```
/// use ndarray::array;
/// use safejax_core::{SafeParams, Saver};
/// use safejax_core::shard::Sharded;
///
/// let dir = tempfile::tempdir().map_err(safejax_core::Error::Write)?;
/// let path = dir.path().join("model.safetensors.index.json");
/// Saver::new().max_shard_size(8).save(&vec![array![1.0f32, 2.0], array![3.0f32]], &path)?;
/// let sharded = Sharded::open(&path)?;
/// assert_eq!(sharded.shard_paths().len(), 2);
/// assert_eq!(sharded.index().weight_map["1"], "model-00002-of-00002.safetensors");
/// assert_eq!(sharded.total_bytes(), 12);
/// assert!(sharded.warnings().is_empty());
/// # Ok::<(), safejax_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sharded {
    opened: Opened,
    total_bytes: u64,
    warnings: Vec<String>,
}

impl Sharded {
    /// Reads the index at `path` and the header of each of its shards, and checks them
    /// against each other.
    pub fn open(path: impl AsRef<Path>) -> Result<Sharded> {
        let opened = Opened::open(path.as_ref())?;
        let heads = opened
            .paths
            .iter()
            .map(|shard| source::read_header(shard).map_err(|e| opened.missing_shard(e)))
            .collect::<Result<Vec<_>>>()?;
        let headers = heads
            .iter()
            .zip(&opened.paths)
            .map(|(head, shard)| source::header_of(head).map_err(|e| source::in_file(shard, e)))
            .collect::<Result<Vec<_>>>()?;
        let (total_bytes, warnings) = opened.check(&headers)?;
        Ok(Sharded {
            opened,
            total_bytes,
            warnings,
        })
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.opened.index
    }

    /// The path of each shard, beside the index, in the order of [`Index::shards`].
    pub fn shard_paths(&self) -> Vec<PathBuf> {
        self.opened.paths.clone()
    }

    /// The bytes of tensor data the shards hold together.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// What is wrong with the index without keeping it from loading: a `total_size` that is not
    /// [`Sharded::total_bytes`].
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// An index read, its shard names checked and made into paths beside it; no shard opened yet.
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    path: PathBuf,
    index: Index,
    /// The shards' file names, as [`Index::shards`] orders them.
    names: Vec<String>,
    /// Their paths.
    paths: Vec<PathBuf>,
}

impl Opened {
    fn open(path: &Path) -> Result<Opened> {
        Opened::of(path, Index::read(path)?)
    }

    /// `index`, read from `path`, its shard names checked.
    fn of(path: &Path, index: Index) -> Result<Opened> {
        let dir = parent(path);
        let names: Vec<String> = index.shards().into_iter().map(str::to_owned).collect();
        let mut paths = Vec::with_capacity(names.len());
        for name in &names {
            if !is_plain_name(name) {
                let key = first_key(&index, name);
                return Err(shard_error(path, name, key, ShardProblem::UnsafeName));
            }
            paths.push(dir.join(name));
        }
        Ok(Opened {
            path: path.to_owned(),
            index,
            names,
            paths,
        })
    }

    /// `error`, or the shard error it stands for: a shard file that is not there.
    fn missing_shard(&self, error: Error) -> Error {
        if let Error::Io { path, source, .. } = &error
            && source.kind() == ErrorKind::NotFound
            && let Some(at) = self.paths.iter().position(|p| p == path)
        {
            let name = &self.names[at];
            let key = first_key(&self.index, name);
            return shard_error(&self.path, name, key, ShardProblem::MissingShard);
        }
        error
    }

    /// Checks the shards' headers (in the order of `names`) against the index: every key in one
    /// shard only, the one the index names. Returns the shards' bytes of tensor data and the
    /// warnings.
    fn check(&self, headers: &[FileHeader<'_>]) -> Result<(u64, Vec<String>)> {
        let mut held: HashMap<&str, usize> =
            HashMap::with_capacity(headers.iter().map(FileHeader::len).sum());
        let mut total: u64 = 0;
        for (at, header) in headers.iter().enumerate() {
            for i in 0..header.len() {
                let (key, dtype, shape) = header.tensor(i);
                // Checked when the header was parsed: every tensor's size is known.
                let size = format::byte_size(dtype, shape).unwrap_or(0);
                total = total.saturating_add(size as u64);
                if let Some(first) = held.insert(key, at) {
                    let other = ShardProblem::TwoShards {
                        other: self.names[at].clone(),
                    };
                    return Err(shard_error(&self.path, &self.names[first], key, other));
                }
            }
        }
        for (key, name) in &self.index.weight_map {
            if held
                .get(key.as_str())
                .is_none_or(|&at| self.names[at] != *name)
            {
                return Err(shard_error(&self.path, name, key, ShardProblem::NotInShard));
            }
        }
        for (at, header) in headers.iter().enumerate() {
            for i in 0..header.len() {
                let key = header.tensor(i).0;
                if !self.index.weight_map.contains_key(key) {
                    let problem = ShardProblem::NotInIndex;
                    return Err(shard_error(&self.path, &self.names[at], key, problem));
                }
            }
        }
        let mut warnings = Vec::new();
        if let Some(stated) = self.index.total_size
            && stated != total
        {
            warnings.push(format!(
                "`{}` states a `total_size` of {stated} bytes, but its shards hold {total} bytes \
                 of tensor data",
                self.path.display()
            ));
        }
        Ok((total, warnings))
    }
}

/// The inputs of a load, each index among them replaced by its shards: what the load opens,
/// and what it checks the opened headers against.
pub(crate) struct Expanded<'a, S> {
    inputs: Vec<(S, Item<'a>)>,
    indexes: Vec<(Opened, Range<usize>)>,
}

/// One input of an [`Expanded`] load.
enum Item<'a> {
    Given(Input<'a>),
    Shard(PathBuf),
}

impl<'a, S: Clone> Expanded<'a, S> {
    /// Reads every index among `inputs` (each with what the load knows of it, `S`) and puts its
    /// shards in its place.
    pub(crate) fn new(inputs: impl IntoIterator<Item = (S, Input<'a>)>) -> Result<Self> {
        let mut expanded = Expanded {
            inputs: Vec::new(),
            indexes: Vec::new(),
        };
        for (spec, input) in inputs {
            match input {
                Input::Path(path) if is_index(path) => {
                    let opened = Opened::open(path)?;
                    let start = expanded.inputs.len();
                    for shard in &opened.paths {
                        expanded
                            .inputs
                            .push((spec.clone(), Item::Shard(shard.clone())));
                    }
                    let end = expanded.inputs.len();
                    expanded.indexes.push((opened, start..end));
                }
                input => expanded.inputs.push((spec, Item::Given(input))),
            }
        }
        Ok(expanded)
    }

    /// The inputs to open, in order.
    pub(crate) fn inputs(&self) -> impl Iterator<Item = (&S, Input<'_>)> + Clone {
        self.inputs.iter().map(|(spec, item)| {
            let input = match item {
                Item::Given(input) => *input,
                Item::Shard(path) => Input::Path(path),
            };
            (spec, input)
        })
    }

    /// `error` from opening the inputs, or the shard error it stands for.
    pub(crate) fn open_error(&self, error: Error) -> Error {
        self.indexes
            .iter()
            .fold(error, |error, (opened, _)| opened.missing_shard(error))
    }

    /// Checks the headers of the inputs (in the order of [`Expanded::inputs`]) against their
    /// indexes; returns the warnings.
    pub(crate) fn check(&self, headers: &[FileHeader<'_>]) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        for (opened, range) in &self.indexes {
            warnings.extend(opened.check(&headers[range.clone()])?.1);
        }
        Ok(warnings)
    }
}

/// Whether `name` is a file name that stays in its directory: not empty, not `.` or `..`,
/// without a separator, not absolute.
fn is_plain_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    let single = matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(only)), None) if only == name
    );
    single && !name.contains(['/', '\\'])
}

/// The first key the index maps to `shard`.
fn first_key<'i>(index: &'i Index, shard: &str) -> &'i str {
    index
        .weight_map
        .iter()
        .find(|(_, name)| *name == shard)
        .map_or("", |(key, _)| key.as_str())
}

fn shard_error(index: &Path, shard: &str, key: &str, problem: ShardProblem) -> Error {
    Error::Shard {
        index: index.to_owned(),
        shard: shard.to_owned(),
        key: key.to_owned(),
        problem,
    }
}

/// The directory of `path`: its parent, or `.`.
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

thread_local! {
    /// The step after which a sharded save on this thread stops as if the process died.
    static STOP_AFTER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Makes the sharded saves of this thread stop after step `step` (the `k`-th shard written is
/// step `k`; the index, step `n + 1` of `n` shards), leaving the files as a crash would, or
/// lets them run again (`None`).
pub(crate) fn stop_saves_after(step: Option<usize>) {
    STOP_AFTER.with(|stop| stop.set(step));
}

/// Stops the save here if it was asked to, without cleaning anything up.
fn step_done(step: usize, index: &Path) -> Result<()> {
    if STOP_AFTER.with(Cell::get) == Some(step) {
        let stopped = io::Error::other(format!("the save was stopped after step {step}"));
        return Err(Error::io("save", index, stopped));
    }
    Ok(())
}

/// One shard about to be written.
struct Planned<'a> {
    name: String,
    leaves: Vec<(String, &'a dyn Leaf)>,
    layout: Layout,
}

/// Saves `leaves` as a sharded checkpoint whose index is `index`: shards of at most
/// `max_shard_size` bytes of data (but for a tensor larger than that, alone in its shard)
/// written under names the index in place does not name, then the index, then the shards the
/// new index does not name removed. Everything is checked before anything is written.
pub(crate) fn save(
    leaves: &[(String, &dyn Leaf)],
    metadata: &Metadata,
    max_shard_size: u64,
    read_only: ReadOnly,
    index: &Path,
) -> Result<()> {
    format::check_names(leaves.iter().map(|(key, _)| key.as_str()))?;
    let stem = stem(index)?;
    let live = live_shards(index)?;
    refuse_read_only(index, read_only)?;
    let (planned, new_index) = plan(leaves, metadata, max_shard_size, stem, &live)?;
    let dir = parent(index);
    write_shards(dir, &planned, read_only, index)?;
    let json = new_index.to_json();
    atomic::replace(index, read_only, |file| {
        file.write_all(json.as_bytes()).map_err(Error::Write)
    })?;
    step_done(planned.len() + 1, index)?;
    let new_names: HashSet<&str> = planned.iter().map(|shard| shard.name.as_str()).collect();
    remove_stale(dir, stem, &live, &new_names);
    Ok(())
}

/// The shards of `leaves`, each named and laid out, and the index naming them.
fn plan<'a>(
    leaves: &[(String, &'a dyn Leaf)],
    metadata: &Metadata,
    max_shard_size: u64,
    stem: &str,
    live: &[String],
) -> Result<(Vec<Planned<'a>>, Index)> {
    let groups = split(leaves, max_shard_size);
    let count = groups.len();
    let live: HashSet<&str> = live.iter().map(String::as_str).collect();
    let mut planned = Vec::with_capacity(count);
    let mut index = Index::default();
    let mut total: u64 = 0;
    for (k, group) in groups.into_iter().enumerate() {
        let name = free_name(stem, k + 1, count, &live);
        let shard: Vec<(String, &dyn Leaf)> = group
            .iter()
            .map(|&i| (leaves[i].0.clone(), leaves[i].1))
            .collect();
        let layout = Layout::new(&shard, metadata)?;
        for (key, leaf) in &shard {
            total = total.saturating_add(leaf.data_len() as u64);
            index.weight_map.insert(key.clone(), name.clone());
        }
        planned.push(Planned {
            name,
            leaves: shard,
            layout,
        });
    }
    index.total_size = Some(total);
    index
        .metadata
        .insert("total_size".to_owned(), Value::from(total));
    Ok((planned, index))
}

/// A sharded checkpoint laid out and checked, nothing written yet: for writers to other
/// places than a directory (object storage), which write each [`Shard`], then the index, then
/// remove the [`Plan::stale`] shards, as [`Saver::save`](crate::Saver::save) does for files.
///
/// ```
/// use ndarray::array;
/// use safejax_core::Saver;
/// use safejax_core::shard::Index;
///
/// let weights = vec![array![1.0f32, 2.0], array![3.0f32, 4.0]];
/// let old = ["model-00001-of-00002.safetensors".to_owned()];
/// let plan = Saver::new().max_shard_size(8).plan_shards(&weights, "model.safetensors.index.json", &old)?;
/// let names: Vec<&str> = plan.shards().map(|shard| shard.name()).collect();
/// // A name the index in place holds is not taken.
/// assert_eq!(names, ["model-00001-of-00002.1.safetensors", "model-00002-of-00002.safetensors"]);
/// let mut first = Vec::new();
/// plan.shards().next().expect("two shards").write_to(&mut first)?;
/// assert_eq!(first, Saver::new().to_bytes(&vec![array![1.0f32, 2.0]])?);
/// assert_eq!(plan.index().total_size, Some(16));
/// assert_eq!(Index::from_slice(plan.index().to_json().as_bytes())?, *plan.index());
/// assert_eq!(plan.stale(&old, []), old);
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub struct Plan<'a> {
    stem: String,
    planned: Vec<Planned<'a>>,
    index: Index,
}

impl fmt::Debug for Plan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field(
                "shards",
                &self.shards().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field("index", &self.index)
            .finish()
    }
}

/// One shard of a [`Plan`].
#[derive(Clone, Copy)]
pub struct Shard<'p, 'a> {
    planned: &'p Planned<'a>,
}

impl fmt::Debug for Shard<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("name", &self.name())
            .field("file_len", &self.file_len())
            .finish()
    }
}

impl<'a> Plan<'a> {
    /// Lays out `tensors` as the shards of the index named `index_name` (its file name, as
    /// `model.safetensors.index.json`): at most `max_shard_size` bytes of data each (but for a
    /// tensor larger than that, alone in its shard), each with `metadata`, under names that
    /// `taken` (the shards of the index in place) does not hold. Bad names are refused here.
    pub fn new(
        tensors: &[(String, &'a dyn Leaf)],
        metadata: &Metadata,
        max_shard_size: u64,
        index_name: &str,
        taken: &[String],
    ) -> Result<Self> {
        format::check_names(tensors.iter().map(|(key, _)| key.as_str()))?;
        let stem = stem(Path::new(index_name))?.to_owned();
        let (planned, index) = plan(tensors, metadata, max_shard_size, &stem, taken)?;
        Ok(Plan {
            stem,
            planned,
            index,
        })
    }

    /// The shards, in the order of their names.
    pub fn shards(&self) -> impl ExactSizeIterator<Item = Shard<'_, 'a>> + '_ {
        self.planned.iter().map(|planned| Shard { planned })
    }

    /// The index naming the shards, to be written after them.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The shards to remove once the index is written: those of `taken` (the old index's,
    /// as given to [`Plan::new`]) and those of `present` (the files beside the index) named as
    /// this index's shards are, which the new index does not name. Only plain file names,
    /// never a path out of the index's directory.
    pub fn stale<'n>(
        &self,
        taken: &[String],
        present: impl IntoIterator<Item = &'n str>,
    ) -> Vec<String> {
        let new_names: HashSet<&str> = self.planned.iter().map(|s| s.name.as_str()).collect();
        stale(&self.stem, taken, &new_names, present)
    }
}

impl<'p> Shard<'p, '_> {
    /// The shard's file name.
    pub fn name(&self) -> &'p str {
        &self.planned.name
    }

    /// The size of the shard's file in bytes.
    pub fn file_len(&self) -> u64 {
        self.planned.layout.file_len() as u64
    }

    /// Writes the shard's file to `writer`, streaming its tensors' data.
    pub fn write_to(&self, writer: impl io::Write) -> Result<()> {
        self.planned.layout.write(&self.planned.leaves, writer)
    }
}

/// Whether `name` is one a save gives the shards of the index named `index_name`:
/// `{stem}-{k}-of-{n}.safetensors` or `{stem}-{k}-of-{n}.{i}.safetensors`.
///
/// ```
/// use safejax_core::shard::is_shard_of;
/// assert!(is_shard_of("model.safetensors.index.json", "model-00001-of-00002.safetensors"));
/// assert!(!is_shard_of("model.safetensors.index.json", "model.safetensors"));
/// ```
pub fn is_shard_of(index_name: &str, name: &str) -> bool {
    stem(Path::new(index_name)).is_ok_and(|stem| is_shard_name(stem, name))
}

/// Writes each shard atomically. If one cannot be written, those written before it are
/// removed: no index names them.
fn write_shards(
    dir: &Path,
    planned: &[Planned<'_>],
    read_only: ReadOnly,
    index: &Path,
) -> Result<()> {
    for (k, shard) in planned.iter().enumerate() {
        let path = dir.join(&shard.name);
        let written = atomic::replace(&path, read_only, |file| {
            shard.layout.write(&shard.leaves, file)
        });
        if let Err(error) = written {
            for earlier in &planned[..k] {
                let _ = fs::remove_file(dir.join(&earlier.name));
            }
            return Err(error);
        }
        step_done(k + 1, index)?;
    }
    Ok(())
}

/// Removes the shards the new index does not name: those the old index named, and those named
/// as this index's shards are (left by a save stopped after it replaced the index). A failure
/// to remove one leaves only garbage, which no index names.
fn remove_stale(dir: &Path, stem: &str, live: &[String], new_names: &HashSet<&str>) {
    let present: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    for name in stale(stem, live, new_names, present.iter().map(String::as_str)) {
        let _ = fs::remove_file(dir.join(name));
    }
}

/// The shards of `live` and of `present` named like those of `stem` that `new_names` does not
/// hold, sorted, each once.
fn stale<'n>(
    stem: &str,
    live: &[String],
    new_names: &HashSet<&str>,
    present: impl IntoIterator<Item = &'n str>,
) -> Vec<String> {
    // Never a path out of the directory, whatever the old index says.
    let old = live.iter().filter(|name| is_plain_name(name)).cloned();
    let named_like_ours = present
        .into_iter()
        .filter(|name| is_shard_name(stem, name))
        .map(str::to_owned);
    let stale: BTreeSet<String> = old.chain(named_like_ours).collect();
    stale
        .into_iter()
        .filter(|name| !new_names.contains(name.as_str()))
        .collect()
}

/// Whether `name` is one a save gives the shards of the index of `stem`:
/// `{stem}-{k}-of-{n}.safetensors` or `{stem}-{k}-of-{n}.{i}.safetensors`, `k` and `n` of five
/// digits or more.
fn is_shard_name(stem: &str, name: &str) -> bool {
    /// What follows the digits that `text` starts with, if there are at least `least`.
    fn digits(text: &str, least: usize) -> Option<&str> {
        let end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        (end >= least).then(|| &text[end..])
    }
    let Some(rest) = name
        .strip_prefix(stem)
        .and_then(|rest| rest.strip_prefix('-'))
    else {
        return false;
    };
    let Some(rest) = digits(rest, 5).and_then(|rest| rest.strip_prefix("-of-")) else {
        return false;
    };
    let Some(rest) = digits(rest, 5) else {
        return false;
    };
    match rest.strip_prefix('.').and_then(|rest| digits(rest, 1)) {
        Some(after) => after == ".safetensors",
        None => rest == ".safetensors",
    }
}

/// The indices of `leaves` in key order, cut into shards as Hugging Face cuts them: a new
/// shard when the next tensor would take the current one past `max` bytes of data.
fn split(leaves: &[(String, &dyn Leaf)], max: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..leaves.len()).collect();
    order.sort_by(|&a, &b| leaves[a].0.cmp(&leaves[b].0));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut size: u64 = 0;
    for i in order {
        let bytes = leaves[i].1.data_len() as u64;
        match groups.last_mut() {
            Some(group) if size.saturating_add(bytes) <= max => {
                group.push(i);
                size += bytes;
            }
            _ => {
                groups.push(vec![i]);
                size = bytes;
            }
        }
    }
    groups
}

/// The file name of an index up to `.safetensors.index.json` (or `.json`): what its shards'
/// names start with.
fn stem(index: &Path) -> Result<&str> {
    let name = index
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| Error::Index {
            path: index.to_owned(),
            reason: "its file name is not UTF-8, so it cannot name its shards".to_owned(),
        })?;
    Ok(name
        .strip_suffix(INDEX_SUFFIX)
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(name))
}

/// The name of shard `k` of `count`: Hugging Face's `{stem}-0000k-of-0000n.safetensors`, or if
/// the index in place names that, the first of `{stem}-0000k-of-0000n.1.safetensors`, `.2`, ...
/// that it does not.
fn free_name(stem: &str, k: usize, count: usize, live: &HashSet<&str>) -> String {
    let base = format!("{stem}-{k:05}-of-{count:05}");
    let mut name = format!("{base}.safetensors");
    let mut n = 0;
    while live.contains(name.as_str()) {
        n += 1;
        name = format!("{base}.{n}.safetensors");
    }
    name
}

/// The shards the index at `path` names now. An index that is not there, or that cannot be
/// read as one, names none: its checkpoint does not load anyway.
fn live_shards(path: &Path) -> Result<Vec<String>> {
    match Index::read(path) {
        Ok(index) => Ok(index.shards().into_iter().map(str::to_owned).collect()),
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(Error::Index { .. }) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// Refuses, before any shard is written, an index that the save could not replace.
fn refuse_read_only(path: &Path, read_only: ReadOnly) -> Result<()> {
    if read_only == ReadOnly::Overwrite {
        return Ok(());
    }
    match fs::metadata(path) {
        Ok(meta) if meta.permissions().readonly() => Err(Error::ReadOnly {
            path: path.to_owned(),
            mode: mode(&meta),
        }),
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    meta.mode() & 0o7777
}

#[cfg(not(unix))]
fn mode(_meta: &fs::Metadata) -> u32 {
    0o444
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_in_their_directory() {
        for name in ["model-00001-of-00002.safetensors", "a b", "..x", "x.."] {
            assert!(is_plain_name(name), "{name}");
        }
        for name in ["", ".", "..", "../x", "/x", "a/b", "a\\b", "x/", "./x"] {
            assert!(!is_plain_name(name), "{name}");
        }
    }

    #[test]
    fn stems_drop_the_index_suffix() {
        let stem_of = |name: &str| stem(Path::new(name)).map(str::to_owned).ok();
        assert_eq!(
            stem_of("d/model.safetensors.index.json").as_deref(),
            Some("model")
        );
        assert_eq!(stem_of("weights.json").as_deref(), Some("weights"));
    }

    #[test]
    fn a_name_the_live_index_holds_is_not_taken() {
        let live: HashSet<&str> = [
            "m-00001-of-00002.safetensors",
            "m-00001-of-00002.1.safetensors",
        ]
        .into_iter()
        .collect();
        assert_eq!(
            free_name("m", 1, 2, &live),
            "m-00001-of-00002.2.safetensors"
        );
        assert_eq!(free_name("m", 2, 2, &live), "m-00002-of-00002.safetensors");
    }

    #[test]
    fn shard_names_are_told_from_others() {
        for name in [
            "m-00001-of-00002.safetensors",
            "m-00001-of-00002.3.safetensors",
            "m-123456-of-123456.safetensors",
        ] {
            assert!(is_shard_name("m", name), "{name}");
        }
        for name in [
            "m.safetensors",
            "m-0001-of-00002.safetensors",
            "m-00001-of-00002.safetensors.bak",
            "m-00001-of-00002..safetensors",
            "m-00001-of-00002.x.safetensors",
            "n-00001-of-00002.safetensors",
            "mm-00001-of-00002.safetensors",
        ] {
            assert!(!is_shard_name("m", name), "{name}");
        }
    }

    #[test]
    fn byte_counts_may_be_whole_floats() {
        assert_eq!(byte_count(&serde_json::json!(12)), Some(12));
        assert_eq!(byte_count(&serde_json::json!(12.0)), Some(12));
        assert_eq!(byte_count(&serde_json::json!(12.5)), None);
        assert_eq!(byte_count(&serde_json::json!(-1)), None);
        assert_eq!(byte_count(&serde_json::json!("12")), None);
    }
}
