//! The tree API through object storage: Flax and Haiku nested dicts, Objax variable
//! collections, as the `flax`, `haiku` and `objax` modules of `safejax_core` read and write
//! files.

use std::collections::HashSet;

use safejax_core::{Input, Loaded, PartSpec, Saver, Tree, VarCollection, flax, objax};

use crate::{Fetch, Files, Remote, Result, Stats};

impl Remote {
    /// Loads Flax or Haiku parameters (a nested dict, keys split on `.`, as
    /// [`flax::deserialize_file`] reads a file), with the file's metadata; from the index of a
    /// sharded checkpoint, every shard. Every tensor is fetched.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ndarray::array;
    /// use object_store::memory::InMemory;
    /// use safejax_core::{Saver, Tensor, Tree};
    /// use safejax_store::Remote;
    ///
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let mut dense = Tree::new();
    /// dense.insert("kernel", Tensor::from_array(&array![[1.0f32, 2.0]]));
    /// let mut params = Tree::new();
    /// params.insert("Dense_0", dense);
    /// let remote = Remote::new(Arc::new(InMemory::new()), "flax/params.safetensors");
    /// remote.save_tree(&Saver::new(), &params).await?;
    /// let fetched = remote.load_tree().await?;
    /// assert_eq!(fetched.loaded.value, params);
    /// assert_eq!(fetched.stats.bytes, remote.size().await?);
    /// # Ok::<(), safejax_store::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn load_tree(&self) -> Result<Fetch<Tree>> {
        self.load_all(flax::read).await
    }

    /// Loads an Objax `VarCollection` (each key's `::VarKind` split off, as
    /// [`objax::deserialize_file`] reads a file), with the file's metadata. Every tensor is
    /// fetched.
    pub async fn load_vars(&self) -> Result<Fetch<VarCollection>> {
        self.load_all(objax::read).await
    }

    /// Assigns the tensors of the object into the variables of `vars` of the same path, as
    /// [`objax::deserialize_file_with_assignment`] does from a file: every key must name a
    /// variable of `vars` of the same kind, dtype and shape; on any problem nothing is
    /// assigned. Only the tensors of variables `vars` holds are fetched.
    pub async fn load_vars_into(&self, vars: &mut VarCollection) -> Result<Fetch<()>> {
        let held: HashSet<(String, objax::VarKind)> = vars
            .iter()
            .map(|(name, var)| (name.clone(), var.kind.clone()))
            .collect();
        let mut files = Files::fetch_heads([(self, &PartSpec::whole())]).await?;
        let wanted = |key: &str| {
            let (name, kind) = objax::split_key(key);
            held.contains(&(name.to_owned(), kind))
        };
        let assign = |files: &Files| objax::read_with_assignment(&files.inputs(), vars);
        let metadata = files.load(wanted, assign).await?;
        Ok(files.done(Loaded {
            value: (),
            metadata,
            ignored: Vec::new(),
            warnings: Vec::new(),
        }))
    }

    /// Saves Flax or Haiku parameters (keys the levels joined with `.`), as
    /// [`Remote::save`] saves a value: one object streamed, or a sharded checkpoint to the name
    /// of an index. The saver's metadata and shard size apply; its style plays no part.
    pub async fn save_tree(&self, saver: &Saver, tree: &Tree) -> Result<Stats> {
        self.save_writes(saver, tree).await
    }

    /// Saves an Objax `VarCollection` (keys `path::VarKind`), as [`Remote::save_tree`] saves a
    /// tree.
    pub async fn save_vars(&self, saver: &Saver, vars: &VarCollection) -> Result<Stats> {
        self.save_writes(saver, vars).await
    }

    /// Fetches every tensor of the object (of every shard of an index) and reads them with
    /// `read`.
    async fn load_all<T>(
        &self,
        read: impl FnOnce(&[Input<'_>]) -> safejax_core::Result<(T, safejax_core::Metadata)>,
    ) -> Result<Fetch<T>> {
        let mut files = Files::fetch_heads([(self, &PartSpec::whole())]).await?;
        let read = |files: &Files| read(&files.inputs());
        let (value, metadata) = files.load(|_| true, read).await?;
        Ok(files.done(Loaded {
            value,
            metadata,
            ignored: Vec::new(),
            warnings: Vec::new(),
        }))
    }
}
