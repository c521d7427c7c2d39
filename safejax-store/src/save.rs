//! Saves: one object streamed through a multipart upload, or the shards of a sharded
//! checkpoint and then its index.

use std::io::Write;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use safejax_core::shard::{Index, Plan};
use safejax_core::{Leaf, SafeParams, Saver, Tree, VarCollection, objax};
use tokio::sync::mpsc;

use crate::{Error, Remote, Result, Stats};

/// Something a save writes: a typed value, or named tensors (a tree, a variable collection).
pub(crate) trait Writes {
    /// Writes the whole file.
    fn write(&self, saver: &Saver, out: &mut dyn Write) -> safejax_core::Result<()>;
    /// Lays out the shards of the index named `index_name`.
    fn plan(
        &self,
        saver: &Saver,
        index_name: &str,
        taken: &[String],
    ) -> safejax_core::Result<Plan<'_>>;
}

/// A value of a type that names its tensors.
pub(crate) struct Typed<'v, T>(pub(crate) &'v T);

impl<T: SafeParams> Writes for Typed<'_, T> {
    fn write(&self, saver: &Saver, out: &mut dyn Write) -> safejax_core::Result<()> {
        saver.to_writer(self.0, out)
    }

    fn plan(
        &self,
        saver: &Saver,
        index_name: &str,
        taken: &[String],
    ) -> safejax_core::Result<Plan<'_>> {
        saver.plan_shards(self.0, index_name, taken)
    }
}

/// Flax or Haiku parameters.
impl Writes for Tree {
    fn write(&self, saver: &Saver, out: &mut dyn Write) -> safejax_core::Result<()> {
        saver.tensors_to_writer(&tree_tensors(self)?, out)
    }

    fn plan(
        &self,
        saver: &Saver,
        index_name: &str,
        taken: &[String],
    ) -> safejax_core::Result<Plan<'_>> {
        saver.plan_tensor_shards(&tree_tensors(self)?, index_name, taken)
    }
}

/// The tensors of a tree under their `.`-joined keys.
fn tree_tensors(tree: &Tree) -> safejax_core::Result<Vec<(String, &dyn Leaf)>> {
    let flat = tree.flatten()?.into_iter();
    Ok(flat
        .map(|(key, tensor)| (key, tensor as &dyn Leaf))
        .collect())
}

/// Objax variables.
impl Writes for VarCollection {
    fn write(&self, saver: &Saver, out: &mut dyn Write) -> safejax_core::Result<()> {
        saver.tensors_to_writer(&objax::tensors(self), out)
    }

    fn plan(
        &self,
        saver: &Saver,
        index_name: &str,
        taken: &[String],
    ) -> safejax_core::Result<Plan<'_>> {
        saver.plan_tensor_shards(&objax::tensors(self), index_name, taken)
    }
}

impl Remote {
    /// Saves a value as one object, streamed through a multipart upload: at most a few parts
    /// in memory, the object visible only once complete, the upload aborted if the save fails.
    /// A file no longer than one part ([`Remote::part_size`]) is put in one request instead.
    ///
    /// To an object named like the index of a sharded checkpoint (ending with `.json`, as
    /// `model.safetensors.index.json`), the value is saved as a sharded checkpoint, as
    /// [`Saver::save`] saves one to a directory: shards of at most
    /// [`Saver::max_shard_size`] bytes of data beside the index, each uploaded whole before the
    /// next, under names the index in place does not hold; then the index, in one request;
    /// then the shards no index names removed. A save that fails before the index is written
    /// removes the shards it uploaded, and the checkpoint in place still loads.
    ///
    /// The value is written by the calling task while another uploads, so a save runs on a
    /// multi-threaded tokio runtime (the default of `#[tokio::main]`); on a single-threaded one
    /// it is an [`Error::Runtime`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ndarray::{Array1, array};
    /// use object_store::memory::InMemory;
    /// use safejax_core::{Loader, Saver};
    /// use safejax_store::Remote;
    ///
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let store = Arc::new(InMemory::new());
    /// let index = Remote::new(store.clone(), "run/model.safetensors.index.json");
    /// let weights = vec![array![1.0f32, 2.0], array![3.0f32, 4.0]];
    /// index.save(&Saver::new().max_shard_size(8), &weights).await?;
    /// for k in 1..=2 {
    ///     let shard = Remote::new(store.clone(), format!("run/model-0000{k}-of-00002.safetensors"));
    ///     assert_eq!(shard.size().await?, 72, "the length, a 56-byte header, 8 bytes of data");
    /// }
    /// assert_eq!(index.load::<Vec<Array1<f32>>>(&Loader::new()).await?.loaded.value, weights);
    /// # Ok::<(), safejax_store::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn save<T: SafeParams>(&self, saver: &Saver, value: &T) -> Result<Stats> {
        self.save_writes(saver, &Typed(value)).await
    }

    /// Saves what `writes` writes: one object, or a sharded checkpoint to an index's name.
    pub(crate) async fn save_writes(&self, saver: &Saver, writes: &impl Writes) -> Result<Stats> {
        self.check_runtime()?;
        if !self.is_index() {
            return self.upload(|out| writes.write(saver, out)).await;
        }
        let name = self.path.filename().unwrap_or_default().to_owned();
        let taken = self.live_shards().await?;
        // Checked, and the shards named, before anything is written.
        let shards: Vec<String> = writes
            .plan(saver, &name, &taken)?
            .shards()
            .map(|shard| shard.name().to_owned())
            .collect();
        let mut stats = Stats::default();
        for (k, shard_name) in shards.iter().enumerate() {
            let shard = self.sibling(shard_name);
            let uploaded = shard
                .upload(
                    |out| match writes.plan(saver, &name, &taken)?.shards().nth(k) {
                        Some(planned) => planned.write_to(out),
                        None => Err(shard_lost(&shard)),
                    },
                )
                .await;
            match uploaded {
                Ok(shard_stats) => stats.add(shard_stats),
                Err(error) => {
                    self.remove(&shards[..k]).await;
                    return Err(error);
                }
            }
        }
        let json = writes.plan(saver, &name, &taken)?.index().to_json();
        let index_len = json.len() as u64;
        if let Err(error) = self.store.put(&self.path, Bytes::from(json).into()).await {
            self.remove(&shards).await;
            return Err(self.store_error("write", error));
        }
        stats.add(Stats {
            requests: 1,
            bytes: index_len,
        });
        let present = self.names_beside().await;
        let stale = writes
            .plan(saver, &name, &taken)?
            .stale(&taken, present.iter().map(String::as_str));
        self.remove(&stale).await;
        Ok(stats)
    }

    /// Removes the shards `names` beside this index, as far as the store lets it: a shard that
    /// cannot be removed is garbage that no index names.
    async fn remove(&self, names: &[String]) {
        for name in names {
            let _ = self.store.delete(&self.sibling(name).path).await;
        }
    }

    /// Whether the object is the index of a sharded checkpoint.
    pub(crate) fn is_index(&self) -> bool {
        safejax_core::shard::is_index(std::path::Path::new(self.path.as_ref()))
    }

    /// Refuses a runtime a save cannot run on.
    fn check_runtime(&self) -> Result<()> {
        if crate::multi_threaded() {
            return Ok(());
        }
        Err(Error::Runtime(format!(
            "cannot write `{}`: a save needs a multi-threaded tokio runtime",
            self.url
        )))
    }

    /// The shards the index in place names: none if there is none, or it is not an index.
    async fn live_shards(&self) -> Result<Vec<String>> {
        let got = match self.store.get(&self.path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(self.store_error("read", e)),
        };
        let bytes = got.bytes().await.map_err(|e| self.store_error("read", e))?;
        Ok(Index::from_slice(&bytes)
            .map(|index| index.shards().into_iter().map(str::to_owned).collect())
            .unwrap_or_default())
    }

    /// The names of the objects beside this one; none if they cannot be listed (an HTTP
    /// server), which only leaves garbage that no index names.
    async fn names_beside(&self) -> Vec<String> {
        let parts: Vec<_> = self.path.parts().collect();
        let dir: Path = parts[..parts.len().saturating_sub(1)]
            .iter()
            .cloned()
            .collect();
        let listed = self.store.list_with_delimiter(Some(&dir)).await;
        listed
            .map(|listed| {
                let names = listed.objects.into_iter();
                names
                    .filter_map(|meta| meta.location.filename().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Streams what `write` writes into this object: the calling task writes into parts of
    /// [`Remote::part_size`] bytes while another task uploads them, at most
    /// [`Remote::concurrency`] at once, in a multipart upload that completes only once `write`
    /// has succeeded; a failure on either side aborts it. A file of one part at most is put in
    /// one request, once written whole. Either way the object appears whole or not at all.
    async fn upload(
        &self,
        write: impl FnOnce(&mut dyn Write) -> safejax_core::Result<()>,
    ) -> Result<Stats> {
        self.check_runtime()?;
        let (sender, receiver) = mpsc::channel::<Bytes>(2);
        let uploader = tokio::spawn(upload_parts(
            self.clone(),
            receiver,
            self.part_size,
            self.concurrency,
        ));
        let serialized = tokio::task::block_in_place(|| {
            let mut chunks = Chunks {
                sender,
                buffer: Vec::new(),
                size: self.part_size,
            };
            write(&mut chunks)?;
            chunks.flush_chunk();
            Ok::<_, safejax_core::Error>(())
        });
        let (pending, uploaded, mut stats) = uploader
            .await
            .map_err(|e| Error::Runtime(format!("cannot write `{}`: {e}", self.url)))?;
        match (serialized, uploaded, pending) {
            (Ok(()), Ok(()), Pending::Small(bytes)) => {
                stats.requests = 1;
                let bytes = bytes.unwrap_or_default();
                self.store
                    .put(&self.path, bytes.into())
                    .await
                    .map_err(|e| self.store_error("write", e))?;
                Ok(stats)
            }
            (Ok(()), Ok(()), Pending::Multipart(writer)) => {
                stats.requests = stats.bytes.div_ceil(self.part_size as u64);
                writer
                    .finish()
                    .await
                    .map_err(|e| self.store_error("write", e))?;
                Ok(stats)
            }
            (serialized, uploaded, pending) => {
                // The upload's parts are discarded; the error that stopped the save is reported,
                // the store's first: a failed upload stops the writer too.
                if let Pending::Multipart(writer) = pending {
                    let _ = writer.abort().await;
                }
                uploaded.map_err(|e| self.store_error("write", e))?;
                serialized?;
                Ok(stats)
            }
        }
    }
}

/// What an upload holds when the writing is over: the one part of a small file, not yet put, or
/// a multipart upload, not yet completed.
enum Pending {
    Small(Option<Bytes>),
    Multipart(WriteMultipart),
}

/// Takes the parts `receiver` hands on: one part at most is kept, to be put whole; a second
/// starts a multipart upload of them all.
async fn upload_parts(
    remote: Remote,
    mut receiver: mpsc::Receiver<Bytes>,
    part_size: usize,
    concurrency: usize,
) -> (Pending, object_store::Result<()>, Stats) {
    let mut stats = Stats::default();
    let Some(first) = receiver.recv().await else {
        return (Pending::Small(None), Ok(()), stats);
    };
    stats.bytes = first.len() as u64;
    let Some(second) = receiver.recv().await else {
        return (Pending::Small(Some(first)), Ok(()), stats);
    };
    let upload = match remote.store.put_multipart(&remote.path).await {
        Ok(upload) => upload,
        Err(error) => return (Pending::Small(None), Err(error), stats),
    };
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
    writer.put(first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if let Err(error) = writer.wait_for_capacity(concurrency).await {
            return (Pending::Multipart(writer), Err(error), stats);
        }
        stats.bytes += chunk.len() as u64;
        writer.put(chunk);
        next = receiver.recv().await;
    }
    (Pending::Multipart(writer), Ok(()), stats)
}

impl Stats {
    pub(crate) fn add(&mut self, other: Stats) {
        self.requests += other.requests;
        self.bytes += other.bytes;
    }
}

/// The error for a shard that a plan made again no longer holds: the value changed during
/// the save.
fn shard_lost(shard: &Remote) -> safejax_core::Error {
    let reason = format!("`{}` is no longer among the shards of the value", shard.url);
    safejax_core::Error::Write(std::io::Error::other(reason))
}

/// A writer that hands on its bytes in chunks of `size`.
struct Chunks {
    sender: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
    size: usize,
}

impl Chunks {
    fn flush_chunk(&mut self) -> bool {
        if self.buffer.is_empty() {
            return true;
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.size));
        self.sender.blocking_send(Bytes::from(chunk)).is_ok()
    }
}

impl Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let room = self.size - self.buffer.len();
        let taken = bytes.len().min(room);
        self.buffer.extend_from_slice(&bytes[..taken]);
        if self.buffer.len() == self.size && !self.flush_chunk() {
            return Err(std::io::Error::other("the upload stopped"));
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
