//! Saving and loading values: bytes, writers, files (atomic on save), memory maps, metadata,
//! collections split over several files, and the strictness of loads.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

// The tree API saves through the same replacement as `Saver::save`.
pub(crate) use crate::atomic::write_atomically;
use crate::atomic::{self, ReadOnly};
use crate::dtype::DtypePolicy;
use crate::error::{Error, Result};
use crate::format::{self, Layout, Metadata, Staged};
use crate::key::{KeyPath, MAX_DEPTH, depth_reason};
use crate::params::{SafeParams, Visitor, VisitorMut};
use crate::reader::{PartSpec, Reader};
use crate::shard::{self, Expanded};
use crate::source;
pub use crate::source::Input;
use crate::style::Style;
use crate::tensor::{Leaf, LeafMut};
use crate::tree::{Tree, VarCollection, VarKind};
use crate::view::SafeView;

/// Writes values: the style, which collections, whether keys name the collection, metadata.
///
/// ```
/// use ndarray::array;
/// use safejax_core::{Saver, Style};
///
/// let weights = vec![array![1.0f32, 2.0], array![3.0f32]];
/// let keys = Saver::new().style(Style::Objax).keys(&weights)?;
/// assert_eq!(keys, ["(ModuleList)[0]::TrainVar", "(ModuleList)[1]::TrainVar"]);
/// let bytes = Saver::new().metadata([("epoch".into(), "3".into())].into()).to_bytes(&weights)?;
/// assert!(!bytes.is_empty());
/// # Ok::<(), safejax_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Saver {
    style: Option<Style>,
    only: Option<Vec<String>>,
    with_collection: bool,
    metadata: Metadata,
    read_only: ReadOnly,
    max_shard_size: Option<u64>,
}

impl Default for Saver {
    fn default() -> Self {
        Saver {
            style: None,
            only: None,
            with_collection: true,
            metadata: Metadata::new(),
            read_only: ReadOnly::Refuse,
            max_shard_size: None,
        }
    }
}

/// Collects the leaves a value writes, with their keys.
struct Collect<'a, 's> {
    style: Style,
    saver: &'s Saver,
    leaves: Vec<(String, &'a dyn Leaf)>,
    error: Option<Error>,
}

impl<'a> Visitor<'a> for Collect<'a, '_> {
    fn leaf(&mut self, path: &KeyPath, leaf: &'a dyn Leaf) {
        if let Some(only) = &self.saver.only
            && !only.iter().any(|c| Some(c.as_str()) == path.collection())
        {
            return;
        }
        if path.segments().len() > MAX_DEPTH {
            self.invalid(path, depth_reason());
            return;
        }
        let key = self.style.render(path, self.saver.with_collection);
        self.leaves.push((key, leaf));
    }

    fn invalid(&mut self, path: &KeyPath, reason: String) {
        if self.error.is_none() {
            self.error = Some(Error::Invalid {
                key: self.style.render(path, self.saver.with_collection),
                reason,
            });
        }
    }
}

impl Saver {
    /// A saver in the value's default style, writing every collection with its name in the keys.
    pub fn new() -> Self {
        Saver::default()
    }

    /// Writes in `style` instead of the value's default.
    pub fn style(mut self, style: Style) -> Self {
        self.style = Some(style);
        self
    }

    /// Writes only the leaves of these collections (Flax `params`, Haiku `state`, Objax
    /// `StateVar`).
    pub fn only<I, S>(mut self, collections: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only = Some(collections.into_iter().map(Into::into).collect());
        self
    }

    /// Leaves the collection out of Flax and Haiku keys (`Dense_0.kernel` instead of
    /// `params.Dense_0.kernel`), as when only `variables["params"]` is saved.
    pub fn without_collection(mut self) -> Self {
        self.with_collection = false;
        self
    }

    /// Writes this `__metadata__` map (in sorted order).
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Lets [`Saver::save`] replace a file that has no write permission bit (mode `0o444`),
    /// which it otherwise refuses with [`Error::ReadOnly`] whoever runs it, root included: a
    /// file made read-only is one someone meant to keep. The new file keeps the old mode, so it
    /// is read-only too.
    ///
    /// ```
    /// use ndarray::{Array1, array};
    /// use safejax_core::{Error, SafeParams, Saver};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("release.safetensors");
    /// vec![array![1.0f32]].save(&path)?;
    /// let mut permissions = std::fs::metadata(&path)?.permissions();
    /// permissions.set_readonly(true);
    /// std::fs::set_permissions(&path, permissions)?;
    ///
    /// let update = vec![array![2.0f32]];
    /// assert!(matches!(update.save(&path), Err(Error::ReadOnly { .. })));
    /// Saver::new().overwrite_read_only().save(&update, &path)?;
    /// assert_eq!(Vec::<Array1<f32>>::load(&path)?, update);
    /// assert!(std::fs::metadata(&path)?.permissions().readonly());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn overwrite_read_only(mut self) -> Self {
        self.read_only = ReadOnly::Overwrite;
        self
    }

    /// The most bytes of tensor data in one shard when a save writes a sharded checkpoint (to
    /// the path of an index, see [`Saver::save`]); [`shard::DEFAULT_MAX_SHARD_SIZE`], 5 GB,
    /// unless given. Shards are cut as Hugging Face cuts them: tensors in key order, a new shard
    /// when the next tensor would take the current one past `bytes`, a tensor larger than
    /// `bytes` alone in its shard. Saves to a single file ignore it.
    ///
    /// ```
    /// use ndarray::Array1;
    /// use safejax_core::{Saver, shard::Index};
    ///
    /// let dir = tempfile::tempdir().map_err(safejax_core::Error::Write)?;
    /// let path = dir.path().join("model.safetensors.index.json");
    /// // 40, 40 and 80 bytes of data.
    /// let weights = vec![Array1::<f32>::zeros(10), Array1::zeros(10), Array1::zeros(20)];
    /// Saver::new().max_shard_size(64).save(&weights, &path)?;
    /// let index = Index::read(&path)?;
    /// assert_eq!(index.weight_map["0"], "model-00001-of-00003.safetensors");
    /// assert_eq!(index.weight_map["1"], "model-00002-of-00003.safetensors");
    /// assert_eq!(index.weight_map["2"], "model-00003-of-00003.safetensors");
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn max_shard_size(mut self, bytes: u64) -> Self {
        self.max_shard_size = Some(bytes);
        self
    }

    fn collect<'a, T: SafeParams>(&self, value: &'a T) -> Result<Vec<(String, &'a dyn Leaf)>> {
        self.collect_with(|path, visitor| value.visit(path, visitor), T::STYLE)
    }

    /// The leaves `visit` passes on, with their keys in this saver's style or `default`.
    fn collect_with<'a>(
        &self,
        visit: impl FnOnce(&mut KeyPath, &mut dyn Visitor<'a>),
        default: Style,
    ) -> Result<Vec<(String, &'a dyn Leaf)>> {
        let mut collect = Collect {
            style: self.style.unwrap_or(default),
            saver: self,
            leaves: Vec::new(),
            error: None,
        };
        visit(&mut KeyPath::new(), &mut collect);
        match collect.error {
            Some(error) => Err(error),
            None => Ok(collect.leaves),
        }
    }

    /// The keys of the leaves `visit` passes on, in this saver's style or `default`, sorted.
    pub(crate) fn keys_with<'a>(
        &self,
        visit: impl FnOnce(&mut KeyPath, &mut dyn Visitor<'a>),
        default: Style,
    ) -> Result<Vec<String>> {
        sorted_keys(self.collect_with(visit, default)?)
    }

    /// Serializes a value that borrows its tensors ([`SafeView`]) to safetensors bytes.
    ///
    /// ```
    /// use ndarray::{ArrayView1, array};
    /// use safejax_core::{Loader, SafeParams, Saver};
    ///
    /// let bytes = vec![array![1.0f32, 2.0]].to_bytes()?;
    /// let views = Loader::new().view::<Vec<ArrayView1<f32>>>(&bytes)?.value;
    /// assert_eq!(Saver::new().view_to_bytes(&views)?, bytes);
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn view_to_bytes<'a, T: SafeView<'a>>(&self, value: &T) -> Result<Vec<u8>> {
        let leaves =
            self.collect_with(|path, visitor| value.visit_view(path, visitor), T::STYLE)?;
        self.leaves_to_bytes(&leaves)
    }

    /// Saves a value that borrows its tensors ([`SafeView`]) to a file, as [`Saver::save`] does.
    pub fn save_view<'a, T: SafeView<'a>>(&self, value: &T, path: impl AsRef<Path>) -> Result<()> {
        let leaves =
            self.collect_with(|path, visitor| value.visit_view(path, visitor), T::STYLE)?;
        self.save_leaves(&leaves, path.as_ref())
    }

    fn leaves_to_bytes(&self, leaves: &[(String, &dyn Leaf)]) -> Result<Vec<u8>> {
        Layout::new(leaves, &self.metadata)?.to_vec(leaves)
    }

    fn save_leaves(&self, leaves: &[(String, &dyn Leaf)], path: &Path) -> Result<()> {
        if shard::is_index(path) {
            let max = self.max_shard_size.unwrap_or(shard::DEFAULT_MAX_SHARD_SIZE);
            return shard::save(leaves, &self.metadata, max, self.read_only, path);
        }
        let layout = Layout::new(leaves, &self.metadata)?;
        atomic::replace(path, self.read_only, |file| layout.write(leaves, file))
    }

    /// Saves named tensors as they are, keys given whole, as [`Saver::save`] saves a value's:
    /// for tensors that no Rust type describes (a file being converted, tensors computed on the
    /// fly). The saver's metadata is written; its style and collections play no part.
    ///
    /// ```
    /// use ndarray::array;
    /// use safejax_core::{Leaf, Saver, Tensor, flax};
    ///
    /// let kernel = Tensor::from_array(&array![[1.0f32, 2.0]]);
    /// let path = std::env::temp_dir().join("safejax-doc-save-tensors.safetensors");
    /// Saver::new().save_tensors(&[("params.Dense_0.kernel".to_owned(), &kernel as &dyn Leaf)], &path)?;
    /// assert_eq!(flax::deserialize_file(&path)?.tensor("params.Dense_0.kernel"), Some(&kernel));
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn save_tensors(
        &self,
        tensors: &[(String, &dyn Leaf)],
        path: impl AsRef<Path>,
    ) -> Result<()> {
        self.save_leaves(tensors, path.as_ref())
    }

    /// Named tensors as safetensors bytes, as [`Saver::save_tensors`] writes them.
    pub fn tensors_to_bytes(&self, tensors: &[(String, &dyn Leaf)]) -> Result<Vec<u8>> {
        self.leaves_to_bytes(tensors)
    }

    /// Writes named tensors to `writer`, as [`Saver::save_tensors`] writes them to a file.
    ///
    /// ```
    /// use ndarray::array;
    /// use safejax_core::{Leaf, Saver, Tensor};
    ///
    /// let bias = Tensor::from_array(&array![1.0f32, 2.0]);
    /// let tensors = [("params.Dense_0.bias".to_owned(), &bias as &dyn Leaf)];
    /// let mut out = Vec::new();
    /// Saver::new().tensors_to_writer(&tensors, &mut out)?;
    /// assert_eq!(out, Saver::new().tensors_to_bytes(&tensors)?);
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn tensors_to_writer<W: Write>(
        &self,
        tensors: &[(String, &dyn Leaf)],
        writer: W,
    ) -> Result<()> {
        format::write(tensors, &self.metadata, writer)
    }

    /// Lays out `value` as the shards of a sharded checkpoint whose index is named
    /// `index_name`, as [`Saver::save`] does to the path of an index, without writing anything:
    /// for writers to other places than a directory (see [`shard::Plan`]). `taken` are the
    /// shards the index in place names, which the new shards do not overwrite.
    pub fn plan_shards<'a, T: SafeParams>(
        &self,
        value: &'a T,
        index_name: &str,
        taken: &[String],
    ) -> Result<shard::Plan<'a>> {
        self.plan_tensor_shards(&self.collect(value)?, index_name, taken)
    }

    /// [`Saver::plan_shards`] of named tensors, keys given whole, as [`Saver::save_tensors`]
    /// takes them.
    pub fn plan_tensor_shards<'a>(
        &self,
        tensors: &[(String, &'a dyn Leaf)],
        index_name: &str,
        taken: &[String],
    ) -> Result<shard::Plan<'a>> {
        let max = self.max_shard_size.unwrap_or(shard::DEFAULT_MAX_SHARD_SIZE);
        shard::Plan::new(tensors, &self.metadata, max, index_name, taken)
    }

    /// The keys `value` writes, sorted. Duplicates are an error, as on save.
    pub fn keys<T: SafeParams>(&self, value: &T) -> Result<Vec<String>> {
        sorted_keys(self.collect(value)?)
    }

    /// Writes `value` as safetensors to `writer`, streaming tensor data.
    pub fn to_writer<T: SafeParams, W: Write>(&self, value: &T, writer: W) -> Result<()> {
        let leaves = self.collect(value)?;
        format::write(&leaves, &self.metadata, writer)
    }

    /// Serializes `value` to safetensors bytes.
    pub fn to_bytes<T: SafeParams>(&self, value: &T) -> Result<Vec<u8>> {
        self.leaves_to_bytes(&self.collect(value)?)
    }

    /// Saves `value` to `path` atomically: written to a temporary file in the same directory,
    /// flushed and synced, then renamed over `path`, and the directory synced. If anything fails,
    /// `path` is unchanged and the temporary file removed. A value that cannot be written is
    /// refused before any file is created.
    ///
    /// A new file gets mode `0o666` less the umask, as with `std::fs::write`. A file replaced
    /// keeps its mode, and its owner and group where this process may set them. A file with
    /// no write permission bit is refused ([`Error::ReadOnly`]) unless
    /// [`Saver::overwrite_read_only`] is asked for.
    ///
    /// The rename replaces the name `path`, never the file behind it. A symlink is replaced by
    /// a regular file with the mode, owner and group of the link's target (refused if that
    /// target is read-only), and the target keeps its old content: a `latest` link never
    /// overwrites the checkpoint it points to. Likewise a file with other hard links is
    /// detached from them, and the other names keep the old content.
    ///
    /// The temporary file is named `.{name}.{random}.safejax-tmp` (the name cut to keep it
    /// within 255 bytes). A save killed midway leaves it behind; the next save into the same
    /// directory removes it, and never the temporary file of a save still running, which holds
    /// a lock on it.
    ///
    /// # Sharded checkpoints
    ///
    /// When `path` is the path of an index ([`shard::is_index`]: its name ends with `.json`,
    /// as `model.safetensors.index.json`), the value is saved as a sharded checkpoint: shards of
    /// at most [`Saver::max_shard_size`] bytes of data, named `{stem}-00001-of-00003.safetensors`
    /// beside the index, where `{stem}` is the index's name before `.safetensors.index.json` (or
    /// before `.json`), each holding this saver's metadata; then the index, whose
    /// `metadata.total_size` is the bytes of tensor data in all shards.
    ///
    /// Such a save never overwrites a shard that the index in place names: a new shard whose
    /// name the old index holds is written as `{stem}-00001-of-00003.1.safetensors` instead
    /// (`.2`, ... if that is taken too). Every shard is written atomically, as a file is above;
    /// then the index is replaced atomically; then the shards the new index does not name are
    /// removed: those the old index named, and those named as this index's shards are, which a
    /// save stopped after it replaced the index left (a shard that cannot be removed is left:
    /// no index names it). A crash at any point
    /// leaves the old checkpoint or the new one, whole; a save that fails before the index is
    /// replaced removes the shards it wrote. A value that cannot be written, or an index that is
    /// read-only, is refused before any file is written.
    ///
    /// ```
    /// use ndarray::{Array1, array};
    /// use safejax_core::{SafeParams, Saver};
    ///
    /// let dir = tempfile::tempdir().map_err(safejax_core::Error::Write)?;
    /// let index = dir.path().join("model.safetensors.index.json");
    /// let weights = vec![array![1.0f32, 2.0], array![3.0f32, 4.0]];
    /// Saver::new().max_shard_size(8).save(&weights, &index)?;
    /// assert!(dir.path().join("model-00002-of-00002.safetensors").is_file());
    /// // The old index names both shards: the new ones take other names.
    /// let update = vec![array![5.0f32, 6.0], array![7.0f32, 8.0]];
    /// Saver::new().max_shard_size(8).save(&update, &index)?;
    /// assert!(dir.path().join("model-00002-of-00002.1.safetensors").is_file());
    /// assert!(!dir.path().join("model-00002-of-00002.safetensors").exists());
    /// assert_eq!(Vec::<Array1<f32>>::load(&index)?, update);
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn save<T: SafeParams>(&self, value: &T, path: impl AsRef<Path>) -> Result<()> {
        self.save_leaves(&self.collect(value)?, path.as_ref())
    }
}

/// One file of a load, with the collections it holds.
///
/// ```
/// use safejax_core::Part;
/// // A Haiku state dict saved alone: keys `batch_norm/~/mean_ema.average`, no `state.` prefix.
/// let part = Part::file("state.safetensors").collections(["state"]).without_collection();
/// # let _ = part;
/// ```
#[derive(Debug, Clone)]
pub struct Part<'a> {
    input: Input<'a>,
    spec: PartSpec,
}

impl<'a> Part<'a> {
    /// A file on disk holding every collection, keys naming the collection.
    pub fn file(path: &'a (impl AsRef<Path> + ?Sized)) -> Self {
        Part {
            input: Input::Path(path.as_ref()),
            spec: PartSpec::whole(),
        }
    }

    /// Bytes in memory holding every collection, keys naming the collection.
    pub fn bytes(bytes: &'a [u8]) -> Self {
        Part {
            input: Input::Bytes(bytes),
            spec: PartSpec::whole(),
        }
    }

    /// A remote file of which the header and some byte ranges were fetched: a tensor the load
    /// reads outside those ranges fails it (see [`Fetched`](crate::fetched::Fetched)).
    pub fn fetched(fetched: &'a crate::fetched::Fetched) -> Self {
        Part {
            input: Input::Fetched(fetched),
            spec: PartSpec::whole(),
        }
    }

    /// The file holds only these collections.
    pub fn collections<I, S>(mut self, collections: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spec.collections = Some(collections.into_iter().map(Into::into).collect());
        self
    }

    /// The file's Flax/Haiku keys do not start with the collection.
    pub fn without_collection(mut self) -> Self {
        self.spec.with_collection = false;
        self
    }
}

/// What a load returns besides the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The value read.
    pub value: T,
    /// The `__metadata__` maps of the files (the first file's entry wins on a clash).
    pub metadata: Metadata,
    /// Keys present in the files and not read, when the loader allows unexpected keys.
    pub ignored: Vec<String>,
    /// What is wrong with the files without keeping the value from loading: the index of a
    /// sharded checkpoint whose `total_size` is not the bytes of data its shards hold.
    pub warnings: Vec<String>,
}

/// Reads values, strictly by default.
///
/// A load fails if any key the value needs is missing, any key of the file is left unread, or
/// any tensor has the wrong shape, rank or dtype; the [`Error::Load`] lists all of them. Each
/// leniency is asked for by name.
///
/// ```
/// use ndarray::{Array1, array};
/// use safejax_core::{Loader, SafeParams, Saver};
///
/// let bytes = Saver::new().to_bytes(&vec![array![1.0f32], array![2.0f32]])?;
/// // Strict: a single array does not read a two-element list.
/// let loaded = Loader::new().allow_unexpected().from_bytes::<[Array1<f32>; 1]>(&bytes)?;
/// assert_eq!(loaded.ignored, ["1"]);
/// let loaded = Loader::new().convert_floats().from_bytes::<Vec<Array1<f64>>>(&bytes)?;
/// assert_eq!(loaded.value[1], array![2.0f64]);
/// # Ok::<(), safejax_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Loader {
    style: Option<Style>,
    policy: DtypePolicy,
    allow_unexpected: bool,
    allow_missing: bool,
    memory_map: bool,
}

impl Loader {
    /// A strict loader in the value's default style.
    pub fn new() -> Self {
        Loader::default()
    }

    /// Reads keys in `style` instead of the value's default.
    pub fn style(mut self, style: Style) -> Self {
        self.style = Some(style);
        self
    }

    /// How dtypes may differ between file and value.
    pub fn dtype_policy(mut self, policy: DtypePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Converts between `f16`, `bf16`, `f32` and `f64` ([`DtypePolicy::ConvertFloats`]).
    pub fn convert_floats(self) -> Self {
        self.dtype_policy(DtypePolicy::ConvertFloats)
    }

    /// Keys of the file that the value does not read are returned in [`Loaded::ignored`]
    /// instead of failing the load.
    pub fn allow_unexpected(mut self) -> Self {
        self.allow_unexpected = true;
        self
    }

    /// For [`Loader::load_into`]: tensors missing from the file keep their current values.
    /// (A fresh load has no current values; mark such fields `default` or make them `Option`.)
    pub fn allow_missing(mut self) -> Self {
        self.allow_missing = true;
        self
    }

    /// Memory-maps files instead of reading them.
    ///
    /// Either way each tensor's bytes are copied once, into the value. The default reads the
    /// header, then the small tensors (below [`format::SMALL_TENSOR`]) in one read per run of
    /// them, then each large tensor straight into its array: no buffer of the file, and a file
    /// cut while it is read is an error. A map reads through the page cache without system
    /// calls, but if another process truncates the file while it is mapped, touching the lost
    /// pages kills this process with `SIGBUS`: use it only on files nothing else writes.
    pub fn memory_map(mut self) -> Self {
        self.memory_map = true;
        self
    }

    /// Loads a value from a file, or from a sharded checkpoint given the path of its index
    /// ([`shard::is_index`]).
    ///
    /// The shards of an index are the parts of a multi-part load ([`Loader::read`]), each
    /// opened once; before any data is read, the index is checked against their headers: a
    /// key in two shards, a key the index names that its shard lacks, a key a shard holds that
    /// the index does not name, a shard file missing or a shard name that is not a plain file
    /// name is an [`Error::Shard`]. A `total_size` that does not match is a warning, in
    /// [`Loaded::warnings`].
    ///
    /// ```
    /// use ndarray::{Array1, array};
    /// use safejax_core::{Loader, Saver};
    ///
    /// let dir = tempfile::tempdir().map_err(safejax_core::Error::Write)?;
    /// let index = dir.path().join("model.safetensors.index.json");
    /// let weights = vec![array![1.0f32], array![2.0f32]];
    /// Saver::new().max_shard_size(4).save(&weights, &index)?;
    /// let loaded = Loader::new().load::<Vec<Array1<f32>>>(&index)?;
    /// assert_eq!(loaded.value, weights);
    /// assert!(loaded.warnings.is_empty());
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn load<T: SafeParams>(&self, path: impl AsRef<Path>) -> Result<Loaded<T>> {
        self.read(&[Part::file(path.as_ref())])
    }

    /// Loads a value from bytes.
    pub fn from_bytes<T: SafeParams>(&self, bytes: &[u8]) -> Result<Loaded<T>> {
        self.read(&[Part::bytes(bytes)])
    }

    /// Loads a value from a [`Tree`] of Flax or Haiku parameters (one read from a Flax msgpack,
    /// a pickle or an npz by the readers of `legacy`), with this loader's strictness: the keys
    /// are the tree's levels joined with `.`, as [`flax::serialize`](crate::flax::serialize)
    /// writes them, read in the value's style (or this loader's). The tensors are copied once
    /// into a file in memory, then once into the value.
    ///
    /// ```
    /// use ndarray::{Array1, array};
    /// use safejax_core::{Loader, Tensor, Tree};
    ///
    /// // A list of two tensors, as a nested dict names it.
    /// let mut tree = Tree::new();
    /// tree.insert("0", Tensor::from_array(&array![0.5f32, 1.5]));
    /// tree.insert("1", Tensor::from_array(&array![2.5f32]));
    /// let loaded = Loader::new().from_tree::<Vec<Array1<f32>>>(&tree)?;
    /// assert_eq!(loaded.value, [array![0.5f32, 1.5], array![2.5f32]]);
    /// // Strict: a tree with more than the value reads is refused.
    /// assert!(Loader::new().from_tree::<[Array1<f32>; 1]>(&tree).is_err());
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn from_tree<T: SafeParams>(&self, tree: &Tree) -> Result<Loaded<T>> {
        let bytes = crate::tree::serialize_tree(tree, None)?;
        self.from_bytes(&bytes)
    }

    /// Loads a value from an Objax [`VarCollection`] (one read from an npz by the readers of
    /// `legacy`), read in Objax style. Each variable's kind is the one `T` gives its path,
    /// whatever the collection says: an npz of `objax.io.save_var_collection` records no
    /// kinds, so a reader can only guess them. Variables `T` does not have, or whose path `T`
    /// gives two kinds, fail the load as usual. The tensors are copied once into a file in
    /// memory, then once into the value.
    ///
    /// ```
    /// use ndarray::{Array1, array};
    /// use safejax_core::{Loader, Tensor, Var, VarCollection, VarKind};
    ///
    /// // A path read with a kind guessed wrong: a list of tensors holds TrainVars.
    /// let mut vars = VarCollection::new();
    /// let tensor = Tensor::from_array(&array![0.5f32]);
    /// vars.insert("(ModuleList)[0]".to_owned(), Var { kind: VarKind::StateVar, tensor });
    /// let loaded = Loader::new().from_vars::<Vec<Array1<f32>>>(&vars)?;
    /// assert_eq!(loaded.value, [array![0.5f32]]);
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn from_vars<T: SafeParams>(&self, vars: &VarCollection) -> Result<Loaded<T>> {
        const KINDS: [VarKind; 4] = [
            VarKind::TrainVar,
            VarKind::StateVar,
            VarKind::RandomState,
            VarKind::TrainRef,
        ];
        let objax = self.clone().style(Style::Objax);
        let mut retyped = vars.clone();
        // The kinds each variable has been tried with, as bits of `KINDS`.
        let mut tried: HashMap<String, u8> = HashMap::new();
        // Each round checks the header of the variables with their current kinds, and gives
        // each variable the value does not read the kind the value needs at its path, or else
        // the next kind not tried. A kind is tried once, so this ends within `KINDS` rounds.
        for _ in 0..=KINDS.len() {
            let leaves: Vec<(String, &dyn Leaf)> = retyped
                .iter()
                .map(|(path, var)| (format!("{path}::{}", var.kind), &var.tensor as &dyn Leaf))
                .collect();
            let layout = Layout::new(&leaves, &Metadata::new())?;
            let report = match objax.check_bytes::<T>(layout.head()) {
                Err(Error::Load(report)) => report,
                _ => break,
            };
            let needed: HashMap<&str, &str> = report
                .missing
                .iter()
                .filter_map(|key| key.rsplit_once("::"))
                .collect();
            let mut changed = false;
            for key in &report.unexpected {
                let Some((path, _)) = key.rsplit_once("::") else {
                    continue;
                };
                let Some(var) = retyped.get_mut(path) else {
                    continue;
                };
                let bits = tried.entry(path.to_owned()).or_insert(0);
                if let Some(at) = KINDS.iter().position(|k| *k == var.kind) {
                    *bits |= 1 << at;
                }
                let next = match needed.get(path) {
                    Some(kind) => Some(kind.parse().unwrap_or_else(|never| match never {})),
                    None => (0..KINDS.len())
                        .find(|i| *bits & (1 << i) == 0)
                        .map(|i| KINDS[i].clone()),
                };
                if let Some(kind) = next
                    && kind != var.kind
                {
                    var.kind = kind;
                    changed = true;
                }
            }
            if !changed {
                // What no kind made the value read keeps the collection's kind, so that the
                // load's report names the variables as they were given.
                for key in &report.unexpected {
                    if let Some((path, _)) = key.rsplit_once("::")
                        && let (Some(var), Some(given)) = (retyped.get_mut(path), vars.get(path))
                    {
                        var.kind = given.kind.clone();
                    }
                }
                break;
            }
        }
        objax.from_bytes(&crate::tree::objax::serialize(&retyped, None)?)
    }

    /// Loads a value from several files, each holding some collections (Haiku params and state
    /// saved apart). A part that is the index of a sharded checkpoint stands for its shards,
    /// each holding what the part says, as with [`Loader::load`].
    pub fn read<T: SafeParams>(&self, parts: &[Part<'_>]) -> Result<Loaded<T>> {
        self.with_reader::<T, _>(parts, |mut reader, metadata, warnings| {
            let value = T::read(&mut KeyPath::new(), &mut reader);
            let loaded = self.finish(reader, value, metadata)?;
            Ok(Loaded { warnings, ..loaded })
        })
    }

    /// The style of this load, or `default`, the value's.
    /// Checks that a `T` would load from the file at `path`, reading only its header: the
    /// report a strict load would give for names, dtypes and ranks (missing keys, unexpected
    /// keys, dtype and rank differences), with this loader's style and leniencies. Values are
    /// not read, so what only the data can show (a `bool` tensor holding a 2, a file cut short)
    /// is left to the load. A header-only file
    /// ([`format::write_header_only`]) checks as the whole
    /// file does. The index of a sharded checkpoint is checked against its shards' headers as
    /// [`Loader::load`] checks it, and a `total_size` that does not match is in
    /// [`Loaded::warnings`].
    ///
    /// ```
    /// use ndarray::Array2;
    /// use safejax_core::{Loader, SafeParams};
    ///
    /// let bytes = vec![Array2::<f32>::zeros((2, 3))].to_bytes()?;
    /// Loader::new().check_bytes::<Vec<Array2<f32>>>(&bytes)?;
    /// let err = Loader::new().check_bytes::<Vec<Array2<f64>>>(&bytes).unwrap_err();
    /// assert!(err.to_string().contains("dtype"), "{err}");
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn check<T: SafeParams>(&self, path: impl AsRef<Path>) -> Result<Loaded<()>> {
        self.check_parts::<T>(&[Part::file(path.as_ref())])
    }

    /// [`Loader::check`] of bytes in memory (only their header is looked at).
    pub fn check_bytes<T: SafeParams>(&self, bytes: &[u8]) -> Result<Loaded<()>> {
        self.check_parts::<T>(&[Part::bytes(bytes)])
    }

    /// [`Loader::check`] of the file `reader` reads from its start: only its 8-byte header
    /// length and its header are read, so a stream (a download, a pipe) is checked before its
    /// data arrives.
    ///
    /// ```
    /// use ndarray::Array1;
    /// use safejax_core::{Loader, SafeParams};
    ///
    /// let bytes = vec![Array1::<f32>::zeros(1000)].to_bytes()?;
    /// let mut reader = &bytes[..];
    /// Loader::new().check_from::<Vec<Array1<f32>>>(&mut reader)?;
    /// assert_eq!(reader.len(), 4000, "the data was not read");
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn check_from<T: SafeParams>(&self, reader: impl std::io::Read) -> Result<Loaded<()>> {
        let head = source::read_header_from(reader, None)?;
        let heads = [(PartSpec::whole(), Cow::Owned(head), None)];
        self.check_heads::<T>(&heads, |_| Ok(Vec::new()))
    }

    /// [`Loader::check`] of a value split over several files, as [`Loader::read`] reads it.
    /// The index of a sharded checkpoint is checked against its shards' headers, as on load.
    pub fn check_parts<T: SafeParams>(&self, parts: &[Part<'_>]) -> Result<Loaded<()>> {
        let expanded = Expanded::new(parts.iter().map(|part| (part.spec.clone(), part.input)))?;
        let heads = expanded
            .inputs()
            .map(|(spec, input)| match input {
                Input::Path(path) => {
                    let head = source::read_header(path).map_err(|e| expanded.open_error(e))?;
                    Ok((spec.clone(), Cow::Owned(head), Some(path)))
                }
                Input::Bytes(bytes) => Ok((spec.clone(), Cow::Borrowed(bytes), None)),
                Input::Fetched(fetched) => {
                    let name = Path::new(fetched.name());
                    Ok((spec.clone(), Cow::Borrowed(fetched.head()), Some(name)))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        self.check_heads::<T>(&heads, |headers| expanded.check(headers))
    }

    /// Checks the headers of `heads`, with `verify` first (an index against its shards), which
    /// returns the warnings.
    fn check_heads<T: SafeParams>(
        &self,
        heads: &[Head<'_>],
        verify: impl FnOnce(&[format::FileHeader<'_>]) -> Result<Vec<String>>,
    ) -> Result<Loaded<()>> {
        let headers = heads
            .iter()
            .map(|(_, head, path)| {
                source::header_of(head).map_err(|e| match path {
                    Some(path) => source::in_file(path, e),
                    None => e,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let warnings = verify(&headers)?;
        let mut metadata = Metadata::new();
        for header in &headers {
            for (k, v) in header.metadata() {
                metadata.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let names: Vec<String> = heads
            .iter()
            .map(|(_, _, path)| path.map_or("(bytes)".into(), |p| p.display().to_string()))
            .collect();
        let files: Vec<_> = heads
            .iter()
            .zip(&headers)
            .zip(&names)
            .map(|(((spec, ..), header), name)| (spec, header, name.as_str()))
            .collect();
        let (report, ignored) = crate::check::check_headers(
            &T::KIND,
            self.style.unwrap_or(T::STYLE),
            self.policy,
            (self.allow_unexpected, self.allow_missing),
            &files,
        );
        if !report.is_empty() {
            return Err(Error::Load(Box::new(report)));
        }
        Ok(Loaded {
            value: (),
            metadata,
            ignored,
            warnings,
        })
    }

    pub(crate) fn style_or(&self, default: Style) -> Style {
        self.style.unwrap_or(default)
    }

    /// The dtype policy of this load.
    pub(crate) fn policy(&self) -> DtypePolicy {
        self.policy
    }

    /// The outcome of a read: the value, or the report of every problem.
    pub(crate) fn finish<T>(
        &self,
        reader: Reader<'_>,
        value: Option<T>,
        metadata: Metadata,
    ) -> Result<Loaded<T>> {
        let (report, ignored) = reader.finish(self.allow_unexpected);
        match value {
            Some(value) if report.is_empty() => Ok(Loaded {
                value,
                metadata,
                ignored,
                warnings: Vec::new(),
            }),
            _ => Err(Error::Load(Box::new(report))),
        }
    }

    /// Overwrites the tensors of `value` from a file. Every tensor is read and checked (present,
    /// shape equal to the current one, dtype) before any is assigned, so a failed call changes
    /// nothing, a read that fails midway (a file cut while it is read) included. The structure
    /// is kept: list lengths and map keys are those of `value`. `path` may be the index of a
    /// sharded checkpoint, as for [`Loader::load`].
    pub fn load_into<T: SafeParams>(
        &self,
        value: &mut T,
        path: impl AsRef<Path>,
    ) -> Result<Loaded<()>> {
        self.read_into(value, &[Part::file(path.as_ref())])
    }

    /// The keys an in-place load of `value` reads ([`Loader::load_into`]), sorted: those of the
    /// tensors it holds now, in this loader's style. What a reader that fetches tensors one by
    /// one (object storage) fetches before the load.
    ///
    /// ```
    /// use ndarray::{Array1, array};
    /// use safejax_core::Loader;
    ///
    /// let value: Vec<Array1<f32>> = vec![array![1.0], array![2.0]];
    /// assert_eq!(Loader::new().keys_into(&value)?, ["0", "1"]);
    /// # Ok::<(), safejax_core::Error>(())
    /// ```
    pub fn keys_into<T: SafeParams>(&self, value: &T) -> Result<Vec<String>> {
        Saver::new().keys_with(
            |path, visitor| value.visit(path, visitor),
            self.style_or(T::STYLE),
        )
    }

    /// [`Loader::load_into`] from several parts (or from bytes, with [`Part::bytes`]).
    pub fn read_into<T: SafeParams>(
        &self,
        value: &mut T,
        parts: &[Part<'_>],
    ) -> Result<Loaded<()>> {
        self.with_reader::<T, _>(parts, |mut reader, metadata, warnings| {
            let mut check = CheckPass {
                reader: &mut reader,
                allow_missing: self.allow_missing,
                staged: Vec::new(),
                invalid: Vec::new(),
            };
            value.visit_mut(&mut KeyPath::new(), &mut check);
            let CheckPass {
                staged, invalid, ..
            } = check;
            let (mut report, ignored) = reader.finish(self.allow_unexpected);
            report.invalid.extend(invalid);
            if !report.is_empty() {
                return Err(Error::Load(Box::new(report)));
            }
            let mut assign = AssignPass {
                staged: staged.into_iter(),
                policy: self.policy,
            };
            value.visit_mut(&mut KeyPath::new(), &mut assign);
            Ok(Loaded {
                value: (),
                metadata,
                ignored,
                warnings,
            })
        })
    }

    /// Checks the files of `parts` (every header before any data is read, and each index
    /// against its shards, which take its place) and hands a reader over them, with their
    /// merged metadata and the warnings, to `read`.
    fn with_reader<T: SafeParams, R>(
        &self,
        parts: &[Part<'_>],
        read: impl FnOnce(Reader<'_>, Metadata, Vec<String>) -> Result<R>,
    ) -> Result<R> {
        let expanded = Expanded::new(parts.iter().map(|part| (part.spec.clone(), part.input)))?;
        let inputs = expanded.inputs().map(|(_, input)| input);
        let check = |headers: &[format::FileHeader<'_>]| expanded.check(headers);
        source::with_checked_files(inputs, self.memory_map, check, |warnings, files| {
            let mut metadata = Metadata::new();
            for file in &files {
                for (k, v) in &file.metadata {
                    metadata.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            let specs = expanded.inputs().map(|(spec, _)| spec.clone());
            let files = specs.zip(files).collect();
            let reader = Reader::new(self.style.unwrap_or(T::STYLE), self.policy, files);
            read(reader, metadata, warnings)
        })
        .map_err(|e| expanded.open_error(e))
    }
}

/// First pass of an in-place load: takes and checks every tensor, assigns nothing.
/// A file's header bytes for [`Loader::check`], with what the file holds and where it is.
type Head<'a> = (PartSpec, Cow<'a, [u8]>, Option<&'a Path>);

struct CheckPass<'r, 'd> {
    reader: &'r mut Reader<'d>,
    allow_missing: bool,
    staged: Vec<Option<Staged<'d>>>,
    invalid: Vec<crate::error::KeyProblem>,
}

impl VisitorMut for CheckPass<'_, '_> {
    fn leaf(&mut self, path: &KeyPath, leaf: &mut dyn LeafMut) {
        let staged = self
            .reader
            .checked(path, self.allow_missing, |view, policy| {
                leaf.check(view, policy)
            });
        self.staged.push(staged);
    }

    fn invalid(&mut self, path: &KeyPath, reason: String) {
        self.invalid.push(crate::error::KeyProblem {
            key: self.reader.key(path),
            reason,
        });
    }
}

/// Second pass: assigns the checked tensors, in the same visiting order.
struct AssignPass<'d, I: Iterator<Item = Option<Staged<'d>>>> {
    staged: I,
    policy: DtypePolicy,
}

impl<'d, I: Iterator<Item = Option<Staged<'d>>>> VisitorMut for AssignPass<'d, I> {
    fn leaf(&mut self, _: &KeyPath, leaf: &mut dyn LeafMut) {
        if let Some(Some(staged)) = self.staged.next() {
            staged.with_view(|view| leaf.assign(view, self.policy));
        }
    }

    fn invalid(&mut self, _: &KeyPath, _: String) {}
}

/// The keys of `leaves`, sorted; a key twice is an error, as on save.
fn sorted_keys(leaves: Vec<(String, &dyn Leaf)>) -> Result<Vec<String>> {
    format::check_names(leaves.iter().map(|(k, _)| k.as_str()))?;
    let mut keys: Vec<String> = leaves.into_iter().map(|(k, _)| k).collect();
    keys.sort();
    Ok(keys)
}
