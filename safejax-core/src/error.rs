//! The error type, and the load report that gathers every problem of one load.

use std::fmt;
use std::io;
use std::path::PathBuf;

use safetensors::Dtype;

/// Everything that can go wrong in safejax.
///
/// Every variant that concerns a tensor names its key; file errors name the path; errors in the
/// bytes of a file name the byte offset.
///
/// `{:?}` prints the message, as `{}` does, so that `fn main() -> Result<(), safejax::Error>`
/// shows a failed load as the readable report; `{:#?}` prints the structure.
///
/// ```
/// use ndarray::Array1;
/// use safejax_core::{Error, SafeParams};
///
/// let bytes = vec![Array1::<f32>::zeros(2)].to_bytes()?;
/// let err: Error = Vec::<ndarray::Array2<f32>>::from_bytes(&bytes).unwrap_err();
/// assert_eq!(format!("{err:?}"), err.to_string());
/// assert!(format!("{err:#?}").starts_with("Load("));
/// # Ok::<(), Error>(())
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("cannot {action} `{path}`: {source}", path = path.display())]
    Io {
        /// What was being done: `read`, `write`, `replace`, ...
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A save would replace a file that has no write permission bit (mode `0o444`): someone
    /// meant to keep it. Refused whoever saves, root included, unless the save asks for
    /// [`Saver::overwrite_read_only`](crate::Saver::overwrite_read_only).
    #[error(
        "`{path}` is read-only (mode {mode:04o}); make it writable, or save with `Saver::overwrite_read_only` to replace it",
        path = path.display()
    )]
    ReadOnly {
        /// The file asked for.
        path: PathBuf,
        /// Its permission bits (those of a symlink's target).
        mode: u32,
    },
    /// Writing to a caller's writer failed.
    #[error("cannot write safetensors data: {0}")]
    Write(#[source] io::Error),
    /// The bytes are not a valid safetensors file.
    #[error("invalid safetensors data at byte {offset}: {reason}")]
    Format {
        /// Where in the file the problem is.
        offset: u64,
        /// What is wrong there (names the tensor when one is concerned).
        reason: String,
    },
    /// The file is valid, but does not fit the value being loaded. Holds every problem found.
    #[error("{0}")]
    Load(Box<LoadReport>),
    /// Two leaves render to the same key, so one would overwrite the other.
    #[error("key `{key}` is produced twice; rename one of the fields or map entries")]
    DuplicateKey {
        /// The key produced twice.
        key: String,
    },
    /// A key that safetensors reserves, or an empty one.
    #[error("{}", reserved(key))]
    ReservedKey {
        /// The offending key.
        key: String,
    },
    /// A part of a value that cannot be written or loaded: a map key or tree name that would
    /// make keys ambiguous, a shared `Arc` loaded in place.
    #[error("{} {reason}", at_key(key))]
    Invalid {
        /// The key of the part concerned (of the map, for a map key).
        key: String,
        /// Why it is refused, naming the offending name.
        reason: String,
    },
    /// A key that does not follow the style it is read in.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A checkpoint in another format (Flax msgpack, a pickle, an npz archive) that cannot be
    /// read: malformed, or holding something that is refused (a pickle's global that is not
    /// allowed, a complex array).
    #[error(
        "invalid {format} data at byte {offset}{}: {reason}",
        if key.is_empty() { String::new() } else { format!(", at `{key}`") }
    )]
    Legacy {
        /// The format: `msgpack`, `pickle`, `npz`, `npy`.
        format: &'static str,
        /// Where in the file (for an npz, in the archive member) the problem is.
        offset: u64,
        /// The key path of the value concerned (`params.Dense_0.kernel`), or empty.
        key: String,
        /// What is wrong, naming what was found.
        reason: String,
    },
    /// A tensor does not have the dtype or shape it is converted to.
    #[error("tensor{}: {problem}", if key.is_empty() { String::new() } else { format!(" `{key}`") })]
    Tensor {
        /// The tensor's key.
        key: String,
        /// What does not match.
        problem: LeafProblem,
    },
    /// The index of a sharded checkpoint is not one: not JSON, no `weight_map`, a key twice in
    /// it, a `total_size` that is not a number of bytes.
    #[error("invalid index{}: {reason}", in_index(path))]
    Index {
        /// The index file (empty when parsed from bytes).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The index of a sharded checkpoint does not match its shards.
    #[error("{}", shard_message(index, shard, key, problem))]
    Shard {
        /// The index file.
        index: PathBuf,
        /// The shard's file name, as the index gives it.
        shard: String,
        /// The key concerned.
        key: String,
        /// What does not match.
        problem: ShardProblem,
    },
}

/// How the index of a sharded checkpoint and one of its shards disagree about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardProblem {
    /// The shard holds the key, and so does `other`.
    TwoShards {
        /// The other shard's file name.
        other: String,
    },
    /// The index maps the key to the shard, whose header does not hold it.
    NotInShard,
    /// The shard holds the key, which the index does not name.
    NotInIndex,
    /// The index maps the key to the shard, and there is no such file beside the index.
    MissingShard,
    /// The index maps the key to a name that is not a plain file name (absolute, `..`, with a
    /// path separator): shards are files beside their index.
    UnsafeName,
}

fn in_index(path: &std::path::Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!(" `{}`", path.display())
    }
}

fn shard_message(
    index: &std::path::Path,
    shard: &str,
    key: &str,
    problem: &ShardProblem,
) -> String {
    let index = index.display();
    match problem {
        ShardProblem::TwoShards { other } => {
            format!("key `{key}` is in two shards of `{index}`: `{shard}` and `{other}`")
        }
        ShardProblem::NotInShard => {
            format!("`{index}` maps key `{key}` to shard `{shard}`, which does not hold it")
        }
        ShardProblem::NotInIndex => {
            format!("shard `{shard}` of `{index}` holds key `{key}`, which the index does not name")
        }
        ShardProblem::MissingShard => {
            format!("`{index}` maps key `{key}` to shard `{shard}`, which does not exist")
        }
        ShardProblem::UnsafeName => format!(
            "`{index}` maps key `{key}` to `{shard}`, which is not a plain file name: shards are files beside their index"
        ),
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        match self {
            Error::Io {
                action,
                path,
                source,
            } => f
                .debug_struct("Io")
                .field("action", action)
                .field("path", path)
                .field("source", source)
                .finish(),
            Error::ReadOnly { path, mode } => f
                .debug_struct("ReadOnly")
                .field("path", path)
                .field("mode", mode)
                .finish(),
            Error::Write(source) => f.debug_tuple("Write").field(source).finish(),
            Error::Format { offset, reason } => f
                .debug_struct("Format")
                .field("offset", offset)
                .field("reason", reason)
                .finish(),
            Error::Load(report) => f.debug_tuple("Load").field(report).finish(),
            Error::DuplicateKey { key } => {
                f.debug_struct("DuplicateKey").field("key", key).finish()
            }
            Error::ReservedKey { key } => f.debug_struct("ReservedKey").field("key", key).finish(),
            Error::Invalid { key, reason } => f
                .debug_struct("Invalid")
                .field("key", key)
                .field("reason", reason)
                .finish(),
            Error::Key(error) => f.debug_tuple("Key").field(error).finish(),
            Error::Legacy {
                format,
                offset,
                key,
                reason,
            } => f
                .debug_struct("Legacy")
                .field("format", format)
                .field("offset", offset)
                .field("key", key)
                .field("reason", reason)
                .finish(),
            Error::Tensor { key, problem } => f
                .debug_struct("Tensor")
                .field("key", key)
                .field("problem", problem)
                .finish(),
            Error::Index { path, reason } => f
                .debug_struct("Index")
                .field("path", path)
                .field("reason", reason)
                .finish(),
            Error::Shard {
                index,
                shard,
                key,
                problem,
            } => f
                .debug_struct("Shard")
                .field("index", index)
                .field("shard", shard)
                .field("key", key)
                .field("problem", problem)
                .finish(),
        }
    }
}

fn at_key(key: &str) -> String {
    if key.is_empty() {
        "the root".to_owned()
    } else {
        format!("`{key}`")
    }
}

fn reserved(key: &str) -> String {
    if key.is_empty() {
        "a tensor has an empty key (a tensor at the root has no name: put it in a field or a map entry)"
            .to_owned()
    } else {
        format!("key `{key}` is reserved and cannot name a tensor")
    }
}

impl Error {
    pub(crate) fn format(offset: u64, reason: impl Into<String>) -> Self {
        Error::Format {
            offset,
            reason: reason.into(),
        }
    }

    /// An error of a reader of another format ([`Error::Legacy`]).
    #[cfg_attr(
        not(any(feature = "msgpack", feature = "pickle", feature = "npz")),
        allow(dead_code)
    )]
    pub(crate) fn legacy(
        format: &'static str,
        offset: u64,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Legacy {
            format,
            offset,
            key: key.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The load report, if this is a load error.
    pub fn report(&self) -> Option<&LoadReport> {
        match self {
            Error::Load(report) => Some(report),
            _ => None,
        }
    }
}

/// A key that does not follow its style's grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}` {reason}")]
pub struct KeyError {
    /// The key.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl KeyError {
    pub(crate) fn new(key: &str, reason: impl Into<String>) -> Self {
        KeyError {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn in_key(mut self, key: &str) -> Self {
        self.key = key.to_owned();
        self
    }
}

/// The shape a leaf expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedShape {
    /// Any shape of this many dimensions (`Array2` expects rank 2).
    Rank(usize),
    /// Exactly this shape (an existing array in `load_into`).
    Exact(Vec<usize>),
}

impl fmt::Display for ExpectedShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedShape::Rank(rank) => write!(f, "rank {rank}"),
            ExpectedShape::Exact(shape) => write!(f, "shape {shape:?}"),
        }
    }
}

/// Why one tensor cannot become one leaf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeafProblem {
    /// The file's dtype is not the leaf's, and no conversion was asked for.
    #[error("expected dtype {expected}, found {found}")]
    Dtype {
        /// The leaf's dtype.
        expected: Dtype,
        /// The file's dtype.
        found: Dtype,
    },
    /// The file's shape does not fit the leaf.
    #[error("expected {expected}, found shape {found:?}")]
    Shape {
        /// What the leaf accepts.
        expected: ExpectedShape,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// The bytes are not valid for the dtype (a bool that is neither 0 nor 1).
    #[error("{0}")]
    Value(String),
    /// The bytes could not be read from the file.
    #[error("{0}")]
    Unreadable(String),
}

/// A tensor whose shape does not fit its leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The key.
    pub key: String,
    /// What the leaf accepts.
    pub expected: ExpectedShape,
    /// The file's shape.
    pub found: Vec<usize>,
}

/// A tensor whose dtype is not its leaf's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtypeMismatch {
    /// The key.
    pub key: String,
    /// The leaf's dtype.
    pub expected: Dtype,
    /// The file's dtype.
    pub found: Dtype,
}

/// Any other problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    /// The key.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// Every problem found while loading one value, gathered instead of stopping at the first.
///
/// Its `Display` groups the problems and suggests the nearest unused key for each missing one:
///
/// ```
/// use safejax_core::LoadReport;
/// let mut report = LoadReport::default();
/// report.missing.push("params.Dense_0.kernel".into());
/// report.unexpected.push("params.Dense_0.kernal".into());
/// let text = report.to_string();
/// assert!(text.contains("did you mean `params.Dense_0.kernal`?"), "{text}");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Keys the value needs that the file does not have.
    pub missing: Vec<String>,
    /// Keys in the file that no part of the value reads.
    pub unexpected: Vec<String>,
    /// Tensors of the wrong shape or rank.
    pub shape_mismatches: Vec<ShapeMismatch>,
    /// Tensors of the wrong dtype.
    pub dtype_mismatches: Vec<DtypeMismatch>,
    /// Other problems: invalid values, keys read twice, invalid map keys.
    pub invalid: Vec<KeyProblem>,
    /// What the problems suggest about the value's declaration as a whole: a forgotten
    /// collection, another style, another numbering of a list, a collection no file holds.
    /// Not problems themselves: a report of hints alone is empty.
    pub hints: Vec<String>,
}

impl LoadReport {
    /// Whether nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shape_mismatches.is_empty()
            && self.dtype_mismatches.is_empty()
            && self.invalid.is_empty()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.missing.len()
            + self.unexpected.len()
            + self.shape_mismatches.len()
            + self.dtype_mismatches.len()
            + self.invalid.len()
    }

    pub(crate) fn record(&mut self, key: String, problem: LeafProblem) {
        match problem {
            LeafProblem::Dtype { expected, found } => self.dtype_mismatches.push(DtypeMismatch {
                key,
                expected,
                found,
            }),
            LeafProblem::Shape { expected, found } => self.shape_mismatches.push(ShapeMismatch {
                key,
                expected,
                found,
            }),
            LeafProblem::Value(reason) | LeafProblem::Unreadable(reason) => {
                self.invalid.push(KeyProblem { key, reason })
            }
        }
    }

    pub(crate) fn lengths(&self) -> [usize; 6] {
        [
            self.missing.len(),
            self.unexpected.len(),
            self.shape_mismatches.len(),
            self.dtype_mismatches.len(),
            self.invalid.len(),
            self.hints.len(),
        ]
    }

    pub(crate) fn truncate(&mut self, lengths: [usize; 6]) {
        self.missing.truncate(lengths[0]);
        self.unexpected.truncate(lengths[1]);
        self.shape_mismatches.truncate(lengths[2]);
        self.dtype_mismatches.truncate(lengths[3]);
        self.invalid.truncate(lengths[4]);
        self.hints.truncate(lengths[5]);
    }

    /// The unexpected key most like `missing`, if one is close enough to be a likely typo.
    ///
    /// The work is bounded whatever the number of unexpected keys: `missing` is compared only
    /// with its nearest neighbours among them in sorted order and in the order of reversed keys
    /// (so that a typo near either end is found), never with all of them.
    pub fn suggestion(&self, missing: &str) -> Option<&str> {
        Suggester::new(&self.unexpected).suggest(missing)
    }
}

/// How many unexpected keys on each side of a missing key, in each order, are compared with it.
const SUGGESTION_NEIGHBOURS: usize = 4;

/// The lowest similarity (normalized Levenshtein) of a suggestion.
const SUGGESTION_SCORE: f64 = 0.75;

/// The unexpected keys of a report, sorted forwards and by their reversed text, to find the
/// neighbours of a missing key in both orders with a binary search.
struct Suggester<'r> {
    forward: Vec<&'r str>,
    backward: Vec<&'r str>,
}

fn reversed_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.chars().rev().cmp(b.chars().rev())
}

impl<'r> Suggester<'r> {
    fn new(unexpected: &'r [String]) -> Self {
        let mut forward: Vec<&str> = unexpected.iter().map(String::as_str).collect();
        forward.sort_unstable();
        let mut backward = forward.clone();
        backward.sort_unstable_by(|a, b| reversed_cmp(a, b));
        Suggester { forward, backward }
    }

    fn suggest(&self, missing: &str) -> Option<&'r str> {
        let around = |sorted: &[&'r str], at: usize| {
            let from = at.saturating_sub(SUGGESTION_NEIGHBOURS);
            let to = (at + SUGGESTION_NEIGHBOURS).min(sorted.len());
            sorted[from..to].to_vec()
        };
        let at = self.forward.partition_point(|k| *k < missing);
        let back = self
            .backward
            .partition_point(|k| reversed_cmp(k, missing).is_lt());
        let mut candidates = around(&self.forward, at);
        candidates.extend(around(&self.backward, back));
        candidates
            .into_iter()
            // The distance is at least the difference in length: skip what cannot score.
            .filter(|c| {
                let (a, b) = (c.chars().count(), missing.chars().count());
                (a.abs_diff(b) as f64) <= (1.0 - SUGGESTION_SCORE) * a.max(b) as f64
            })
            .map(|c| (strsim::normalized_levenshtein(missing, c), c))
            .filter(|(score, _)| *score >= SUGGESTION_SCORE)
            .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
            .map(|(_, c)| c)
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut counts = Vec::new();
        let groups = [
            (self.missing.len(), "missing key"),
            (self.unexpected.len(), "unexpected key"),
            (self.shape_mismatches.len(), "shape mismatch"),
            (self.dtype_mismatches.len(), "dtype mismatch"),
            (self.invalid.len(), "invalid tensor"),
        ];
        for (n, word) in groups {
            if n > 0 {
                counts.push(plural(n, word).replace("mismatchs", "mismatches"));
            }
        }
        write!(f, "the file does not fit: {}", counts.join(", "))?;
        for hint in &self.hints {
            write!(f, "\nhint: {hint}")?;
        }
        if !self.missing.is_empty() {
            f.write_str("\nmissing (needed, not in the file):")?;
            let suggester = Suggester::new(&self.unexpected);
            for key in &self.missing {
                write!(f, "\n  {key}")?;
                if let Some(near) = suggester.suggest(key) {
                    write!(f, " (did you mean `{near}`?)")?;
                }
            }
        }
        if !self.unexpected.is_empty() {
            f.write_str("\nunexpected (in the file, not read):")?;
            for key in &self.unexpected {
                write!(f, "\n  {key}")?;
            }
        }
        if !self.shape_mismatches.is_empty() {
            f.write_str("\nshape mismatches:")?;
            for m in &self.shape_mismatches {
                write!(
                    f,
                    "\n  {}: expected {}, found {:?}",
                    m.key, m.expected, m.found
                )?;
            }
        }
        if !self.dtype_mismatches.is_empty() {
            f.write_str("\ndtype mismatches:")?;
            for m in &self.dtype_mismatches {
                write!(
                    f,
                    "\n  {}: expected {}, found {}",
                    m.key, m.expected, m.found
                )?;
            }
        }
        if !self.invalid.is_empty() {
            f.write_str("\ninvalid tensors:")?;
            for p in &self.invalid {
                write!(f, "\n  {}: {}", p.key, p.reason)?;
            }
        }
        Ok(())
    }
}

/// Shorthand for results in safejax.
pub type Result<T, E = Error> = std::result::Result<T, E>;
