//! Opening an input of the command: a safetensors file, or the index of a sharded checkpoint.
//!
//! Every command opens its inputs here and nowhere else. A file is memory-mapped, and its
//! tensors are read a chunk at a time ([`Chunks`]), each chunk's pages handed back to the
//! kernel once it has been read: the memory a command uses stays that of a chunk or of one
//! tensor, whatever the size of the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safejax_core::format::{Parsed, TensorRef};
use safejax_core::{Error, Metadata};

use crate::Failure;

/// How many bytes of a tensor are read before their pages are handed back.
pub const CHUNK: usize = 16 << 20;

/// Whether `path` names the index of a sharded checkpoint (`model.safetensors.index.json`):
/// its name ends in `.json`.
pub fn is_index(path: &Path) -> bool {
    safejax_core::shard::is_index(path)
}

/// One safetensors file of a checkpoint, mapped into memory.
#[derive(Debug)]
pub struct File {
    path: PathBuf,
    map: memmap2::Mmap,
}

impl File {
    /// Maps the file at `path`.
    fn open(path: &Path) -> Result<Self, Failure> {
        let file = std::fs::File::open(path).map_err(|e| Failure::at(path, e))?;
        let meta = file.metadata().map_err(|e| Failure::at(path, e))?;
        if meta.is_dir() {
            return Err(Failure::at(path, "is a directory"));
        }
        // SAFETY: the map is read-only and shared, and only ever read. The command's contract
        // (README, "The `safejax` command") is that no process writes or truncates its input
        // files while it runs, so the bytes do not change under the slices borrowed from the
        // map. The output of `convert` replaces its file by renaming a new one over it, which
        // leaves this map on the old file: converting a file onto itself is sound.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| Failure::at(path, format!("cannot map it: {e}")))?;
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
        self.map.len() as u64
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The file checked whole: its header, offsets that tile the data exactly, no trailing
    /// bytes. Only the header's pages are read. Bool values are not looked at here (see
    /// `check`).
    pub fn parse(&self) -> Result<Parsed<'_>, Error> {
        safejax_core::format::parse(&self.map)
    }

    /// Hands the pages of bytes `offset..offset + len` back to the kernel: they leave this
    /// process's memory, and are read from the file again if they are touched again.
    pub fn release(&self, offset: u64, len: usize) {
        #[cfg(unix)]
        if let Ok(offset) = usize::try_from(offset)
            && offset
                .checked_add(len)
                .is_some_and(|end| end <= self.map.len())
            && len > 0
        {
            // SAFETY: `MADV_DONTNEED` on a read-only shared file mapping drops the pages from
            // the process; a later read faults them in again from the file, whose bytes do not
            // change (see `File::open`). No borrowed byte changes value, so slices of the map
            // that outlive this call stay valid. The range is within the map (checked above).
            // A failure only means the pages stay: it is ignored.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
            };
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
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
            return Self::open_index(path);
        }
        Ok(Checkpoint {
            path: path.to_owned(),
            files: vec![File::open(path)?],
            problems: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// Opens the shards of the index at `path`. An index that disagrees with its shards is
    /// opened with that problem; the shards that are there are still checked.
    fn open_index(path: &Path) -> Result<Self, Failure> {
        use safejax_core::shard::{Index, Sharded};
        let (problems, warnings) = match Sharded::open(path) {
            Ok(sharded) => (Vec::new(), sharded.warnings().to_vec()),
            Err(error @ Error::Shard { .. }) => (vec![cause(&error)], Vec::new()),
            // A shard whose header is invalid: its own check reports it.
            Err(Error::Format { .. }) => (Vec::new(), Vec::new()),
            Err(error) => return Err(Failure::at(path, cause(&error))),
        };
        let index = Index::read(path).map_err(|e| Failure::at(path, cause(&e)))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let files = index
            .shards()
            .into_iter()
            .filter(|name| Path::new(name).file_name() == Some(std::ffi::OsStr::new(name)))
            .map(|name| dir.join(name))
            .filter(|shard| shard.is_file())
            .map(|shard| File::open(&shard))
            .collect::<Result<_, _>>()?;
        Ok(Checkpoint {
            path: path.to_owned(),
            files,
            problems,
            warnings,
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
            files.push((file, parsed));
        }
        Ok(Tensors { files, metadata })
    }
}

/// The tensors of a parsed checkpoint, across its files.
#[derive(Debug)]
pub struct Tensors<'c> {
    files: Vec<(&'c File, Parsed<'c>)>,
    /// The metadata: the file's, or (for shards) the union of theirs, the first file's entry
    /// winning a clash.
    pub metadata: Metadata,
}

impl<'c> Tensors<'c> {
    /// Every tensor with its name, file after file, each in data order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Entry<'_, 'c>)> + '_ {
        self.files.iter().flat_map(|(file, parsed)| {
            parsed
                .iter()
                .map(|(name, tensor)| (name, Entry { tensor, file }))
        })
    }

    /// How many tensors there are.
    pub fn len(&self) -> usize {
        self.files.iter().map(|(_, parsed)| parsed.len()).sum()
    }

    /// How many tensors each file holds.
    pub fn counts(&self) -> impl Iterator<Item = usize> + '_ {
        self.files.iter().map(|(_, parsed)| parsed.len())
    }

    /// Whether there is no tensor.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every tensor by name, sorted.
    pub fn by_name(&self) -> BTreeMap<&str, Entry<'_, 'c>> {
        self.iter().collect()
    }
}

/// A tensor of a checkpoint, with the file it is in.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'t, 'c> {
    /// The tensor: dtype, shape, where its bytes are.
    pub tensor: TensorRef<'t, 'c>,
    /// The file holding it.
    pub file: &'c File,
}

impl<'t, 'c> Entry<'t, 'c> {
    /// The tensor's bytes, in the file's map. Reading them brings their pages into memory:
    /// hand them back with [`Entry::release`], or read them with [`Entry::chunks`].
    pub fn bytes(&self) -> &'c [u8] {
        // A parsed map holds every tensor's bytes.
        self.tensor.borrowed().unwrap_or_default()
    }

    /// The bytes in chunks of `size` bytes, each handed back to the kernel once the next one
    /// is asked for (and the last once there is none).
    pub fn chunks(&self, size: usize) -> Chunks<'c> {
        Chunks::new(self.file, &self.tensor, size)
    }

    /// Hands the tensor's pages back to the kernel.
    pub fn release(&self) {
        self.file
            .release(self.tensor.offset(), self.tensor.byte_len());
    }
}

/// The bytes of a tensor in chunks, each chunk's pages handed back to the kernel when the next
/// chunk is asked for.
#[derive(Debug)]
pub struct Chunks<'c> {
    file: &'c File,
    bytes: &'c [u8],
    offset: u64,
    size: usize,
    at: usize,
    read: Option<(u64, usize)>,
}

impl<'c> Chunks<'c> {
    /// The chunks of `size` bytes (at least 1) of `tensor`, a tensor of `file`.
    pub fn new(file: &'c File, tensor: &TensorRef<'_, 'c>, size: usize) -> Self {
        Chunks {
            file,
            bytes: tensor.borrowed().unwrap_or_default(),
            offset: tensor.offset(),
            size: size.max(1),
            at: 0,
            read: None,
        }
    }
}

impl<'c> Iterator for Chunks<'c> {
    type Item = &'c [u8];

    fn next(&mut self) -> Option<&'c [u8]> {
        if let Some((offset, len)) = self.read.take() {
            self.file.release(offset, len);
        }
        let rest = &self.bytes[self.at..];
        if rest.is_empty() {
            return None;
        }
        let chunk = &rest[..self.size.min(rest.len())];
        self.read = Some((self.offset + self.at as u64, chunk.len()));
        self.at += chunk.len();
        Some(chunk)
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
