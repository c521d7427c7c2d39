//! Opening an input of the command: a safetensors file, or the index of a sharded checkpoint.
//!
//! Every command opens its inputs here and nowhere else. A file is memory-mapped, so that a
//! command touches one tensor at a time whatever the file's size: the pages it has read are
//! the kernel's to drop, and nothing is copied into the process but the tensor being worked on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safejax_core::format::{Parsed, TensorRef};
use safejax_core::{Error, MappedFile, Metadata};

use crate::Failure;

/// Whether `path` names the index of a sharded checkpoint (`model.safetensors.index.json`):
/// its name ends in `.json`.
pub fn is_index(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "json")
}

/// One safetensors file of a checkpoint, mapped into memory.
#[derive(Debug)]
pub struct File {
    path: PathBuf,
    map: MappedFile,
}

impl File {
    /// Maps the file at `path`.
    fn open(path: &Path) -> Result<Self, Failure> {
        let meta = std::fs::metadata(path).map_err(|e| Failure::at(path, e))?;
        if meta.is_dir() {
            return Err(Failure::at(path, "is a directory"));
        }
        // SAFETY: the map is only ever read, as shared bytes. The command's contract (README,
        // "The `safejax` command") is that no process writes or truncates its input files while
        // it runs; the output of `convert` replaces its file by renaming a new one over it,
        // which leaves this map on the old file, so converting a file onto itself is sound.
        let map = unsafe { MappedFile::open(path) }.map_err(|e| Failure::at(path, cause(&e)))?;
        Ok(File {
            path: path.to_owned(),
            map,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.map.bytes().len() as u64
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.map.bytes().is_empty()
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// The file checked whole: its header, offsets that tile the data exactly, no trailing
    /// bytes. Bool values are not looked at here (see `check`).
    pub fn parse(&self) -> Result<Parsed<'_>, Error> {
        safejax_core::format::parse(self.map.bytes())
    }
}

/// An input of the command: one safetensors file, or the shards an index names.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    files: Vec<File>,
    problems: Vec<String>,
    warnings: Vec<String>,
}

impl Checkpoint {
    /// Opens the checkpoint at `path`: maps its file (or, for an index, its shards). The files
    /// are not parsed yet: see [`Checkpoint::parse`] and [`File::parse`].
    pub fn open(path: &Path) -> Result<Self, Failure> {
        if is_index(path) {
            return Err(Failure::at(
                path,
                "is the index of a sharded checkpoint; sharded checkpoints need safejax-core's \
                 shard support, which this build does not have: give the shard files instead",
            ));
        }
        Ok(Checkpoint {
            path: path.to_owned(),
            files: vec![File::open(path)?],
            problems: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// The path given: the file, or the index.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The safetensors files: the file itself, or the shards in the index's order.
    pub fn files(&self) -> &[File] {
        &self.files
    }

    /// What makes the index disagree with its shards (a key in two shards, a key missing from
    /// the shard the index names): `check` reports them, [`Checkpoint::parse`] refuses the
    /// checkpoint. Empty for a single file.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// What is wrong with the index without making it unusable (a `total_size` that is not the
    /// shards' total); empty for a single file.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The total size of the files in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(File::len).sum()
    }

    /// Every file parsed and checked; the first that is not valid (or a problem of the index)
    /// is a failure naming it.
    pub fn parse(&self) -> Result<Tensors<'_>, Failure> {
        if let Some(problem) = self.problems.first() {
            return Err(Failure::at(&self.path, problem));
        }
        let mut files = Vec::with_capacity(self.files.len());
        let mut metadata = Metadata::new();
        for file in &self.files {
            let parsed = file
                .parse()
                .map_err(|e| Failure::at(file.path(), cause(&e)))?;
            for (key, value) in &parsed.metadata {
                metadata.entry(key.clone()).or_insert_with(|| value.clone());
            }
            files.push(parsed);
        }
        Ok(Tensors { files, metadata })
    }
}

/// The tensors of a parsed checkpoint, across its files.
#[derive(Debug)]
pub struct Tensors<'c> {
    files: Vec<Parsed<'c>>,
    /// The metadata: the file's, or (for shards) the union of theirs, the first file's entry
    /// winning a clash.
    pub metadata: Metadata,
}

impl<'c> Tensors<'c> {
    /// Every tensor with its name, file after file, each in data order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, TensorRef<'_, 'c>)> + '_ {
        self.files.iter().flat_map(Parsed::iter)
    }

    /// How many tensors there are.
    pub fn len(&self) -> usize {
        self.files.iter().map(Parsed::len).sum()
    }

    /// How many tensors each file holds.
    pub fn counts(&self) -> impl Iterator<Item = usize> + '_ {
        self.files.iter().map(Parsed::len)
    }

    /// Whether there is no tensor.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every tensor by name, sorted.
    pub fn by_name(&self) -> BTreeMap<&str, TensorRef<'_, 'c>> {
        self.iter().collect()
    }
}

/// The cause of a library error, without the path it names (the command's messages name the
/// file first).
pub fn cause(error: &Error) -> String {
    match error {
        Error::Io { action, source, .. } => format!("cannot {action} it: {source}"),
        other => other.to_string(),
    }
}
