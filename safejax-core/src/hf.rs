//! Hugging Face `transformers`' Flax checkpoints: the `model.safetensors` that
//! `FlaxPreTrainedModel.save_pretrained(dir, safe_serialization=True)` writes and
//! `from_pretrained` reads.
//!
//! `transformers` 4.x writes `safe_save_file(flatten_dict(params, sep="."), path,
//! metadata={"format": "flax"})`, where `params` is the model's `params` attribute:
//!
//! - for most models the `params` collection alone, so keys do not name the collection:
//!   `encoder.layer.0.attention.self.query.kernel` ([`Layout::Params`]);
//! - for models with BatchNorm (ResNet, RegNet) the variables dict, so keys start with
//!   `params.` or `batch_stats.` ([`Layout::Variables`]).
//!
//! `from_pretrained` refuses a file without a `format` entry, reads `format: flax` as Flax
//! tensors, and converts `format: pt` from PyTorch's names and layouts. It reads Flax
//! safetensors from one file only (its sharded Flax checkpoints are msgpack), so this preset
//! reads and writes one file.
//!
//! Declare a model's structs as Flax names it: the root in `collection = "params"`, with
//! `batch_stats` fields where BatchNorm keeps statistics, and lists of layers that
//! `transformers` names `layer.0`, `layer.1` with `#[safejax(numbering = "nested")]`. Leaves
//! in no collection count as `params`. Saves refuse, and loads too, leaves in any other
//! collection: `transformers` keeps only those two.
//!
//! ```
//! use std::collections::BTreeMap;
//! use ndarray::{Array1, array};
//! use safejax_core::hf;
//!
//! // Parameters in no collection: the `params` tree, saved without a prefix.
//! let params = BTreeMap::from([("bias".to_owned(), array![0.5f32, -1.0])]);
//! let bytes = hf::to_bytes(&params)?;
//! let loaded = hf::from_bytes::<BTreeMap<String, Array1<f32>>>(&bytes)?;
//! assert_eq!((&loaded.value, loaded.metadata["format"].as_str()), (&params, "flax"));
//! # Ok::<(), safejax_core::Error>(())
//! ```
//!
//! ```
//! use safejax_core::hf;
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/hf/resnet_tiny.safetensors");
//! // A ResNet's BatchNorm statistics: the file keeps both collections in its keys.
//! let variables = hf::deserialize_file(path)?;
//! assert!(variables.tensor("batch_stats.embedder.embedder.normalization.mean").is_some());
//! assert_eq!(hf::serialize(&variables)?, std::fs::read(path)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The `safejax` crate's README declares BERT's structs.
//!
//! The tree functions ([`deserialize_file`], [`serialize_to_file`], ...) read and write the
//! variables dict, `{"params": ..., "batch_stats": ...}`, whichever layout the file has.

use std::path::Path;

use crate::error::{Error, Result};
use crate::format::{METADATA_KEY, Metadata};
use crate::io::{Loaded, Loader, Part, Saver};
use crate::key::KeyPath;
use crate::params::{SafeParams, Visitor};
use crate::style::Style;
use crate::tensor::Leaf;
use crate::tree::{Node, Tree, flax};

/// The metadata entry `transformers` reads to tell which framework wrote a file.
pub const FORMAT_KEY: &str = "format";
/// Its value for Flax checkpoints.
pub const FORMAT_FLAX: &str = "flax";
/// The collection of trainable parameters.
pub const PARAMS: &str = "params";
/// The collection of BatchNorm statistics.
pub const BATCH_STATS: &str = "batch_stats";

/// How a checkpoint names its tensors.
///
/// ```
/// use safejax_core::hf::Layout;
///
/// assert_eq!(Layout::of_keys(["encoder.layer.0.output.dense.kernel"]), Layout::Params);
/// assert_eq!(
///     Layout::of_keys(["params.embedder.convolution.kernel", "batch_stats.embedder.normalization.mean"]),
///     Layout::Variables,
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The `params` collection alone, keys without it: `encoder.layer.0.output.dense.kernel`.
    Params,
    /// `params` and `batch_stats`, keys starting with the collection:
    /// `params.embedder.convolution.kernel`, `batch_stats.embedder.normalization.mean`.
    Variables,
}

impl Layout {
    /// The layout of a file with these keys: [`Layout::Variables`] when there are keys and
    /// all of them start with `params.` or `batch_stats.`, [`Layout::Params`] otherwise.
    pub fn of_keys<'k>(keys: impl IntoIterator<Item = &'k str>) -> Layout {
        let mut keys = keys.into_iter().peekable();
        let prefixed = |key: &str| {
            [PARAMS, BATCH_STATS].iter().any(|collection| {
                key.strip_prefix(collection)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
        };
        if keys.peek().is_some() && keys.all(prefixed) {
            Layout::Variables
        } else {
            Layout::Params
        }
    }

    /// How a load reads a file of this layout: the `params` tree holds the leaves in
    /// `params` and those in no collection, as a save writes them.
    fn part(self, part: Part<'_>) -> Part<'_> {
        match self {
            Layout::Params => part.without_collection(),
            Layout::Variables => part.collections([PARAMS, BATCH_STATS]),
        }
    }
}

/// The preset with its options: extra metadata, the leniencies of loads, whether a file
/// without a `format` entry is read. The functions of this module use the defaults.
///
/// ```
/// use ndarray::array;
/// use safejax_core::{Loader, Metadata, Tree, Tensor, hf::FlaxPreset};
///
/// let mut dense = Tree::new();
/// dense.insert("kernel", Tensor::from_array(&array![[1.0f32, 2.0]]));
/// let mut params = Tree::new();
/// params.insert("dense", dense);
/// let mut variables = Tree::new();
/// variables.insert("params", params);
///
/// let preset = FlaxPreset::new()
///     .metadata(Metadata::from([("epoch".to_owned(), "3".to_owned())]))
///     .loader(Loader::new().convert_floats());
/// let bytes = preset.serialize(&variables)?;
/// assert_eq!(preset.deserialize(&bytes)?, variables);
/// # Ok::<(), safejax_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct FlaxPreset {
    loader: Loader,
    metadata: Metadata,
    overwrite_read_only: bool,
    allow_missing_format: bool,
}

impl FlaxPreset {
    /// Strict loads of `format: flax` files; saves with `format: flax` as their only metadata.
    pub fn new() -> Self {
        FlaxPreset::default()
    }

    /// Loads with this loader's leniencies (unexpected keys, float conversions, memory maps);
    /// its style is replaced by Flax's.
    pub fn loader(mut self, loader: Loader) -> Self {
        self.loader = loader;
        self
    }

    /// Writes these metadata entries beside `format: flax`. A `format` entry other than
    /// `flax` makes saves fail.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Lets saves replace a read-only file, as [`Saver::overwrite_read_only`] does.
    pub fn overwrite_read_only(mut self) -> Self {
        self.overwrite_read_only = true;
        self
    }

    /// Reads files that have no `format` entry, as `safetensors.flax.save_file(params)` and
    /// Python safejax write them unless given metadata. `transformers` refuses them, and so
    /// does a load without this; a `format` other than `flax` is refused either way.
    ///
    /// ```
    /// use ndarray::array;
    /// use safejax_core::{Saver, hf::FlaxPreset};
    ///
    /// let bytes = Saver::new().to_bytes(&vec![array![1.0f32]])?;
    /// assert!(FlaxPreset::new().deserialize(&bytes).is_err());
    /// let variables = FlaxPreset::new().allow_missing_format().deserialize(&bytes)?;
    /// assert!(variables.tensor("params.0").is_some());
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn allow_missing_format(mut self) -> Self {
        self.allow_missing_format = true;
        self
    }

    /// The keys `value` writes, sorted; an error where a save would fail.
    ///
    /// ```
    /// use ndarray::array;
    /// use safejax_core::hf::FlaxPreset;
    ///
    /// let weights = std::collections::BTreeMap::from([("bias".to_owned(), array![0.0f32])]);
    /// assert_eq!(FlaxPreset::new().keys(&weights)?, ["bias"]);
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn keys<T: SafeParams>(&self, value: &T) -> Result<Vec<String>> {
        self.saver_for(value)?.keys(value)
    }

    /// Serializes `value` in the layout its collections call for.
    pub fn to_bytes<T: SafeParams>(&self, value: &T) -> Result<Vec<u8>> {
        self.saver_for(value)?.to_bytes(value)
    }

    /// Saves `value` to `path`, atomically, as [`Saver::save`] does.
    pub fn save<T: SafeParams>(&self, value: &T, path: impl AsRef<Path>) -> Result<()> {
        self.saver_for(value)?.save(value, path)
    }

    /// Loads a value from bytes in either layout, strictly unless [`FlaxPreset::loader`] says
    /// otherwise. A value that a save would refuse (a leaf in another collection) is refused.
    pub fn from_bytes<T: SafeParams>(&self, bytes: &[u8]) -> Result<Loaded<T>> {
        let header = Loader::new().allow_unexpected().check_bytes::<()>(bytes)?;
        let layout = self.layout_of(&header)?;
        let loaded = self
            .flax_loader()
            .read(&[layout.part(Part::bytes(bytes))])?;
        layout_of_value(&loaded.value)?;
        Ok(loaded)
    }

    /// Loads a value from a file in either layout, as [`FlaxPreset::from_bytes`] does. The
    /// header is read first, to tell the layout and check the format.
    pub fn load<T: SafeParams>(&self, path: impl AsRef<Path>) -> Result<Loaded<T>> {
        let path = path.as_ref();
        let header = Loader::new().allow_unexpected().check::<()>(path)?;
        let layout = self.layout_of(&header)?;
        let loaded = self.flax_loader().read(&[layout.part(Part::file(path))])?;
        layout_of_value(&loaded.value)?;
        Ok(loaded)
    }

    /// Serializes a variables dict: `params` alone without the collection in its keys, or
    /// `params` and `batch_stats` with it.
    pub fn serialize(&self, variables: &Tree) -> Result<Vec<u8>> {
        let metadata = self.save_metadata()?;
        flax::serialize(flat_tree(variables)?, Some(&metadata))
    }

    /// Saves a variables dict to a file, atomically, as [`FlaxPreset::serialize`] lays it out.
    pub fn serialize_to_file(&self, variables: &Tree, path: impl AsRef<Path>) -> Result<()> {
        let metadata = self.save_metadata()?;
        flax::serialize_to_file(flat_tree(variables)?, path, Some(&metadata))
    }

    /// Deserializes a file of either layout into the variables dict (`params` and, where the
    /// file has it, `batch_stats`).
    pub fn deserialize(&self, bytes: &[u8]) -> Result<Tree> {
        let (tree, metadata) = flax::deserialize_with_metadata(bytes)?;
        self.variables(tree, &metadata)
    }

    /// Like [`FlaxPreset::deserialize`], from a file.
    pub fn deserialize_file(&self, path: impl AsRef<Path>) -> Result<Tree> {
        let (tree, metadata) = flax::deserialize_file_with_metadata(path)?;
        self.variables(tree, &metadata)
    }

    /// A saver writing `value` in the layout its collections call for.
    fn saver_for<T: SafeParams>(&self, value: &T) -> Result<Saver> {
        let saver = Saver::new()
            .style(Style::Flax)
            .metadata(self.save_metadata()?);
        let saver = if self.overwrite_read_only {
            saver.overwrite_read_only()
        } else {
            saver
        };
        // Every leaf is in `params`, `batch_stats` or (for `Layout::Params`) no collection.
        Ok(match layout_of_value(value)? {
            Layout::Params => saver.without_collection(),
            Layout::Variables => saver,
        })
    }

    /// The metadata a save writes: the caller's, and `format: flax`.
    fn save_metadata(&self) -> Result<Metadata> {
        let mut metadata = self.metadata.clone();
        match metadata.get(FORMAT_KEY).map(String::as_str) {
            None | Some(FORMAT_FLAX) => {}
            Some(other) => {
                return Err(Error::Invalid {
                    key: METADATA_KEY.to_owned(),
                    reason: format!(
                        "entry `{FORMAT_KEY}: {other}` cannot be written to a Flax checkpoint, whose format is `{FORMAT_FLAX}`"
                    ),
                });
            }
        }
        metadata.insert(FORMAT_KEY.to_owned(), FORMAT_FLAX.to_owned());
        Ok(metadata)
    }

    fn flax_loader(&self) -> Loader {
        self.loader.clone().style(Style::Flax)
    }

    /// The layout of a file whose header `check` read, once its format is checked.
    fn layout_of(&self, header: &Loaded<()>) -> Result<Layout> {
        self.check_format(&header.metadata)?;
        Ok(Layout::of_keys(header.ignored.iter().map(String::as_str)))
    }

    /// Refuses a file that `transformers` would not read as Flax tensors.
    fn check_format(&self, metadata: &Metadata) -> Result<()> {
        let reason = match metadata.get(FORMAT_KEY).map(String::as_str) {
            Some(FORMAT_FLAX) => return Ok(()),
            None if self.allow_missing_format => return Ok(()),
            None => format!(
                "has no `{FORMAT_KEY}` entry, which `transformers` requires (`{FORMAT_FLAX}` for a Flax checkpoint); load with `FlaxPreset::allow_missing_format` to read the file anyway"
            ),
            Some("pt") => format!(
                "says `{FORMAT_KEY}: pt`: the file holds a PyTorch model's tensors, under PyTorch's names and layouts (`transformers` converts them on load), not a Flax checkpoint"
            ),
            Some("tf") => format!(
                "says `{FORMAT_KEY}: tf`: the file holds a TensorFlow model's tensors, under TensorFlow's names, not a Flax checkpoint"
            ),
            Some(other) => format!(
                "says `{FORMAT_KEY}: {other}`, not `{FORMAT_FLAX}`: not a Hugging Face Flax checkpoint"
            ),
        };
        Err(Error::Invalid {
            key: METADATA_KEY.to_owned(),
            reason,
        })
    }

    /// The variables dict of a file's tree, once its format is checked.
    fn variables(&self, tree: Tree, metadata: &Metadata) -> Result<Tree> {
        self.check_format(metadata)?;
        let collections = !tree.is_empty()
            && tree.iter().all(|(name, node)| {
                (name == PARAMS || name == BATCH_STATS) && matches!(node, Node::Tree(_))
            });
        if collections {
            return Ok(tree);
        }
        let mut variables = Tree::new();
        variables.insert(PARAMS, tree);
        Ok(variables)
    }
}

/// Serializes `value` as `transformers` saves a Flax model ([`FlaxPreset::to_bytes`]).
///
/// ```
/// use ndarray::array;
/// use safejax_core::{flax, hf};
///
/// let params = std::collections::BTreeMap::from([("bias".to_owned(), array![1.0f32])]);
/// let (tree, metadata) = flax::deserialize_with_metadata(&hf::to_bytes(&params)?)?;
/// assert!(tree.tensor("bias").is_some());
/// assert_eq!(metadata["format"], "flax");
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub fn to_bytes<T: SafeParams>(value: &T) -> Result<Vec<u8>> {
    FlaxPreset::new().to_bytes(value)
}

/// Saves `value` as `transformers` saves a Flax model ([`FlaxPreset::save`]), atomically.
///
/// ```
/// use ndarray::{Array1, array};
/// use safejax_core::hf;
///
/// let params = std::collections::BTreeMap::from([("bias".to_owned(), array![1.0f32])]);
/// let path = std::env::temp_dir().join("safejax-doc-hf-save.safetensors");
/// hf::save(&params, &path)?;
/// assert_eq!(hf::load::<std::collections::BTreeMap<String, Array1<f32>>>(&path)?.value, params);
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub fn save<T: SafeParams>(value: &T, path: impl AsRef<Path>) -> Result<()> {
    FlaxPreset::new().save(value, path)
}

/// Loads a value from a Hugging Face Flax checkpoint in bytes, strictly
/// ([`FlaxPreset::from_bytes`]).
///
/// ```
/// use ndarray::Array1;
/// use safejax_core::hf;
///
/// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/hf/bert_tiny.safetensors"))?;
/// // A map reads the tensors named `<name>` at the root: a BERT has none.
/// let err = hf::from_bytes::<std::collections::BTreeMap<String, Array1<f32>>>(&bytes).unwrap_err();
/// assert!(err.to_string().contains("encoder.layer.0.output.dense.kernel"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_bytes<T: SafeParams>(bytes: &[u8]) -> Result<Loaded<T>> {
    FlaxPreset::new().from_bytes(bytes)
}

/// Loads a value from a Hugging Face Flax checkpoint, strictly ([`FlaxPreset::load`]).
///
/// ```
/// use safejax_core::{Loader, hf};
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/hf/bert_tiny.safetensors");
/// // `()` reads no tensor, so a strict load reports each of the file's 39 as unexpected...
/// let err = hf::load::<()>(path).unwrap_err();
/// assert_eq!(err.report().map(|report| report.len()), Some(39));
/// // ...and a lenient one lists them.
/// let lenient = hf::FlaxPreset::new().loader(Loader::new().allow_unexpected());
/// let loaded = lenient.load::<()>(path)?;
/// assert!(loaded.ignored.contains(&"encoder.layer.1.output.dense.kernel".to_owned()));
/// assert_eq!(loaded.metadata["format"], "flax");
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub fn load<T: SafeParams>(path: impl AsRef<Path>) -> Result<Loaded<T>> {
    FlaxPreset::new().load(path)
}

/// Serializes a variables dict as `transformers` saves it ([`FlaxPreset::serialize`]).
///
/// ```
/// use ndarray::array;
/// use safejax_core::{Tensor, Tree, flax, hf};
///
/// let mut params = Tree::new();
/// params.insert("scale", Tensor::from_array(&array![1.0f32]));
/// let mut stats = Tree::new();
/// stats.insert("mean", Tensor::from_array(&array![0.0f32]));
/// let mut variables = Tree::new();
/// variables.insert("params", params.clone());
/// // `params` alone: keys without the collection.
/// assert!(flax::deserialize(&hf::serialize(&variables)?)?.tensor("scale").is_some());
/// // With `batch_stats`: both collections in the keys.
/// variables.insert("batch_stats", stats);
/// let tree = flax::deserialize(&hf::serialize(&variables)?)?;
/// assert!(tree.tensor("params.scale").is_some() && tree.tensor("batch_stats.mean").is_some());
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub fn serialize(variables: &Tree) -> Result<Vec<u8>> {
    FlaxPreset::new().serialize(variables)
}

/// Saves a variables dict as `transformers` saves it ([`FlaxPreset::serialize_to_file`]),
/// atomically.
///
/// ```
/// use safejax_core::hf;
///
/// let from = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/hf/resnet_tiny.safetensors");
/// let to = std::env::temp_dir().join("safejax-doc-hf-resnet.safetensors");
/// hf::serialize_to_file(&hf::deserialize_file(from)?, &to)?;
/// assert_eq!(std::fs::read(&to)?, std::fs::read(from)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serialize_to_file(variables: &Tree, path: impl AsRef<Path>) -> Result<()> {
    FlaxPreset::new().serialize_to_file(variables, path)
}

/// The variables dict of a Hugging Face Flax checkpoint in bytes ([`FlaxPreset::deserialize`]).
///
/// ```
/// use ndarray::array;
/// use safejax_core::{Metadata, Saver, hf};
///
/// // A PyTorch model's file is refused: its tensors have PyTorch's names and layouts.
/// let pt = Metadata::from([("format".to_owned(), "pt".to_owned())]);
/// let bytes = Saver::new().metadata(pt).to_bytes(&vec![array![1.0f32]])?;
/// let err = hf::deserialize(&bytes).unwrap_err();
/// assert!(err.to_string().contains("PyTorch"), "{err}");
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub fn deserialize(bytes: &[u8]) -> Result<Tree> {
    FlaxPreset::new().deserialize(bytes)
}

/// The variables dict of a Hugging Face Flax checkpoint ([`FlaxPreset::deserialize_file`]).
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/hf/bert_tiny.safetensors");
/// let variables = safejax_core::hf::deserialize_file(path)?;
/// let query = variables.tensor("params.encoder.layer.0.attention.self.query.kernel");
/// assert_eq!(query.map(|t| t.shape()), Some(&[8, 8][..]));
/// assert_eq!(safejax_core::hf::serialize(&variables)?, std::fs::read(path)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn deserialize_file(path: impl AsRef<Path>) -> Result<Tree> {
    FlaxPreset::new().deserialize_file(path)
}

/// The tree a variables dict is written as: `params` alone, or the whole dict when it holds
/// `batch_stats`; any other entry is refused.
fn flat_tree(variables: &Tree) -> Result<&Tree> {
    for (name, node) in variables {
        if !matches!(node, Node::Tree(_)) || (name != PARAMS && name != BATCH_STATS) {
            return Err(Error::Invalid {
                key: name.clone(),
                reason: format!(
                    "is not a collection of a Hugging Face Flax checkpoint, which holds the dict `{PARAMS}` and, for models with BatchNorm, `{BATCH_STATS}`"
                ),
            });
        }
    }
    match variables.get(PARAMS) {
        Some(Node::Tree(params)) if variables.get(BATCH_STATS).is_none() => Ok(params),
        _ => Ok(variables),
    }
}

/// The layout `value` is saved in: [`Layout::Variables`] when any leaf is in `batch_stats`.
/// Leaves in no collection count as `params`, except beside `batch_stats`, where their keys
/// would name no collection; a leaf in another collection is refused.
fn layout_of_value<T: SafeParams>(value: &T) -> Result<Layout> {
    let mut collections = Collections::default();
    value.visit(&mut KeyPath::new(), &mut collections);
    if let Some(error) = collections.error {
        return Err(error);
    }
    match (collections.batch_stats, collections.unassigned) {
        (false, _) => Ok(Layout::Params),
        (true, None) => Ok(Layout::Variables),
        (true, Some(key)) => Err(Error::Invalid {
            key,
            reason: format!(
                "is in no collection, beside tensors in `{BATCH_STATS}`, so its key would not start with `{PARAMS}.`; give the root struct `#[safejax(collection = \"{PARAMS}\")]`"
            ),
        }),
    }
}

/// Finds the collections of a value's leaves.
#[derive(Default)]
struct Collections {
    batch_stats: bool,
    /// The key of the first leaf in no collection.
    unassigned: Option<String>,
    /// The first leaf in a collection that is neither `params` nor `batch_stats`.
    error: Option<Error>,
}

impl<'a> Visitor<'a> for Collections {
    fn leaf(&mut self, path: &KeyPath, _: &'a dyn Leaf) {
        match path.collection() {
            Some(PARAMS) => {}
            Some(BATCH_STATS) => self.batch_stats = true,
            None => {
                if self.unassigned.is_none() {
                    self.unassigned = Some(Style::Flax.render(path, true));
                }
            }
            Some(other) => {
                if self.error.is_none() {
                    self.error = Some(Error::Invalid {
                        key: Style::Flax.render(path, true),
                        reason: format!(
                            "is in collection `{other}`, which Hugging Face Flax checkpoints do not hold (only `{PARAMS}` and `{BATCH_STATS}`)"
                        ),
                    });
                }
            }
        }
    }

    // The saver reports an invalid part itself.
    fn invalid(&mut self, _: &KeyPath, _: String) {}
}
