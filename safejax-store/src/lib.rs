//! Loading and saving safejax checkpoints through object storage: S3, GCS, Azure, HTTP, local
//! files and memory, through any [`object_store::ObjectStore`].
//!
//! A load fetches the 8-byte header length, then the header (bounded by
//! [`MAX_HEADER_LEN`]), decides from the header alone which
//! tensors the value reads (the same check [`Loader::check_parts`] makes), then fetches only
//! their byte ranges, adjacent ranges merged up to [`MAX_REQUEST`] bytes, a bounded number of
//! requests in flight, and hands them to the [`Loader`] as a [`Fetched`] file: strictness,
//! leniencies, collection selection, metadata and sharded checkpoints work as for local files.
//! On a multi-threaded runtime the load runs while the ranges come, each tensor copied from the
//! bytes as they came straight into its array, each range let go once read. Every load returns
//! the [`Stats`] of what it fetched.
//!
//! A save streams the file into a multipart upload in bounded memory; the object appears only
//! when the upload completes, and a failed save aborts the upload. To the name of an index, a
//! save writes a sharded checkpoint, its index last. The tree API (`flax`, `haiku`, `objax`)
//! has [`Remote::load_tree`], [`Remote::load_vars`] and their saves.
//!
//! ```
//! use std::sync::Arc;
//! use ndarray::{Array1, array};
//! use object_store::memory::InMemory;
//! use safejax_core::{Loader, Saver};
//! use safejax_store::Remote;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let remote = Remote::new(Arc::new(InMemory::new()), "ckpt/model.safetensors");
//! let weights = vec![array![1.0f32, 2.0], array![3.0f32]];
//! remote.save(&Saver::new(), &weights).await?;
//! let fetched = remote.load::<Vec<Array1<f32>>>(&Loader::new()).await?;
//! assert_eq!(fetched.loaded.value, weights);
//! assert_eq!(fetched.stats.bytes, remote.size().await?);
//! # Ok::<(), safejax_store::Error>(()) })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use safejax_core::fetched::Fetched;
use safejax_core::format::MAX_HEADER_LEN;
use safejax_core::shard::Index;
use safejax_core::{Loaded, Loader, Part, PartSpec, SafeParams};

pub mod blocking;
mod save;
mod stream;
mod tree;

/// Bytes of the 8-byte header length that starts every file.
const LEN_BYTES: u64 = 8;

/// What went wrong, naming the object's URL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store refused or failed a request: the object is missing, access was denied, the
    /// connection dropped.
    #[error("cannot {action} `{url}`: {cause}")]
    Store {
        /// `read` or `write`.
        action: &'static str,
        /// The object.
        url: String,
        /// What happened, in words: `not found`, `access denied`, ...
        cause: String,
        /// The store's error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// The server answered a ranged request with other bytes than those asked for.
    #[error("cannot read `{url}`: asked for bytes {}..{}, the server sent {got} bytes", asked.start, asked.end)]
    Range {
        /// The object.
        url: String,
        /// The bytes asked for.
        asked: Range<u64>,
        /// How many came.
        got: u64,
    },
    /// A URL that names no store.
    #[error("cannot open `{url}`: {source}")]
    Url {
        /// The URL given.
        url: String,
        /// Why it names no store.
        #[source]
        source: Box<object_store::Error>,
    },
    /// No async runtime to run on: [`blocking`] could not start one, or a save was called on a
    /// single-threaded runtime (it needs a multi-threaded one).
    #[error("{0}")]
    Runtime(String),
    /// The file or the value: a bad header, a value that does not load, a failed save.
    #[error(transparent)]
    Safejax(#[from] safejax_core::Error),
}

/// The result of this crate's calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a load or save moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests made (ranged reads, or uploaded parts).
    pub requests: u64,
    /// Bytes fetched, or written.
    pub bytes: u64,
}

/// A load's outcome and the bytes it fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetch<T> {
    /// The value, metadata, ignored keys and warnings, as a local load returns them.
    pub loaded: Loaded<T>,
    /// What the load fetched.
    pub stats: Stats,
}

/// One object in a store: where loads read and saves write.
#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    path: Path,
    url: String,
    concurrency: usize,
    part_size: usize,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

/// Requests in flight at once, unless [`Remote::concurrency`] says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Bytes of one uploaded part, unless [`Remote::part_size`] says otherwise: S3's smallest part
/// is 5 MiB.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// Ranges fetched in one request are at most this long, so that large files and large tensors
/// are read concurrently (8 MiB is the part size AWS advises for ranged reads of S3). A streamed
/// load holds about `concurrency + 3` of them beside its value when the value reads its tensors
/// in file order; a range that comes before its turn waits in memory. (On a single-threaded
/// runtime, where every range is fetched before the load, a tensor longer than this is fetched
/// in one request.)
pub const MAX_REQUEST: u64 = 8 << 20;

impl Remote {
    /// The object at `path` in `store`, for callers who build their own store.
    pub fn new(store: Arc<dyn ObjectStore>, path: impl Into<Path>) -> Self {
        let path = path.into();
        let url = format!("{store}/{path}");
        Remote {
            store,
            path,
            url,
            concurrency: DEFAULT_CONCURRENCY,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// The object a URL names (`s3://bucket/key`, `gs://…`, `az://…`, `https://…`,
    /// `file:///…`, `memory:///…`), the store configured from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`,
    /// …) as [`object_store::parse_url_opts`] reads it.
    ///
    /// ```
    /// let remote = safejax_store::Remote::parse("memory:///model.safetensors")?;
    /// assert_eq!(remote.url(), "memory:///model.safetensors");
    /// # Ok::<(), safejax_store::Error>(())
    /// ```
    pub fn parse(url: &str) -> Result<Self> {
        Remote::parse_with(url, std::env::vars())
    }

    /// [`Remote::parse`] with the store's options given (`aws_endpoint`, `aws_access_key_id`,
    /// `aws_allow_http`, …) instead of taken from the environment.
    pub fn parse_with<I, K, V>(url: &str, options: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let url_error = |source| Error::Url {
            url: url.to_owned(),
            source: Box::new(source),
        };
        let parsed = url::Url::parse(url).map_err(|e| {
            url_error(object_store::Error::Generic {
                store: "url",
                source: Box::new(e),
            })
        })?;
        let (store, path) = object_store::parse_url_opts(&parsed, options).map_err(url_error)?;
        Ok(Remote {
            url: url.to_owned(),
            ..Remote::new(Arc::from(store), path)
        })
    }

    /// The object's URL, as errors name it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests in flight at once (at least 1).
    pub fn concurrency(mut self, requests: usize) -> Self {
        self.concurrency = requests.max(1);
        self
    }

    /// Bytes of each part a save uploads (at least S3's 5 MiB, for a part that is not the last).
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    /// The object's size in bytes.
    pub async fn size(&self) -> Result<u64> {
        let meta = self.store.head(&self.path).await;
        Ok(meta.map_err(|e| self.store_error("read", e))?.size)
    }

    /// Loads a value, fetching the header and the tensors the value reads. An object whose
    /// name ends with `.json` is the index of a sharded checkpoint
    /// ([`shard::is_index`](safejax_core::shard::is_index)): its shards, beside it, are
    /// checked against it from their headers, then read as the parts of one load, as
    /// [`Loader::load`] reads a local index.
    pub async fn load<T: SafeParams>(&self, loader: &Loader) -> Result<Fetch<T>> {
        self.read(loader, &PartSpec::whole()).await
    }

    /// Loads a value from an object holding only the collections `spec` names (as
    /// [`Part::collections`] and [`Part::without_collection`] say for a local file).
    pub async fn read<T: SafeParams>(&self, loader: &Loader, spec: &PartSpec) -> Result<Fetch<T>> {
        read_parts(loader, &[(self.clone(), spec.clone())]).await
    }

    /// Overwrites the tensors of `value` from the object, as [`Loader::load_into`] does: a
    /// failed load changes nothing. The tensors fetched are those `value` holds now
    /// ([`Loader::keys_into`]), found in the file.
    pub async fn load_into<T: SafeParams>(
        &self,
        loader: &Loader,
        value: &mut T,
    ) -> Result<Fetch<()>> {
        let keys = loader.keys_into(value)?;
        let keys: HashSet<&str> = keys.iter().map(String::as_str).collect();
        let mut files = Files::fetch_heads([(self, &PartSpec::whole())]).await?;
        let wanted = |name: &str| keys.contains(name);
        let read = |files: &Files| loader.read_into(value, &files.parts());
        let loaded = files.load(wanted, read).await?;
        Ok(files.done(loaded))
    }

    /// Checks that a `T` would load from the object, fetching only its header (the headers of
    /// its shards, for an index) ([`Loader::check`]).
    pub async fn check<T: SafeParams>(&self, loader: &Loader) -> Result<Fetch<()>> {
        let files = Files::fetch_heads([(self, &PartSpec::whole())]).await?;
        let loaded = loader.check_parts::<T>(&files.parts())?;
        Ok(files.done(loaded))
    }

    /// The files of a load and their headers: this object, or the shards of the index it is,
    /// checked against it; with the index's warnings.
    async fn fetch_heads(&self) -> Result<(Vec<(Remote, Fetched)>, Vec<String>, Stats)> {
        if !self.is_index() {
            let (fetched, stats) = self.fetch_header().await?;
            return Ok((vec![(self.clone(), fetched)], Vec::new(), stats));
        }
        let got = self.store.get(&self.path).await;
        let got = got.map_err(|e| self.store_error("read", e))?;
        let bytes = got.bytes().await.map_err(|e| self.store_error("read", e))?;
        let mut stats = Stats {
            requests: 1,
            bytes: bytes.len() as u64,
        };
        let index = Index::from_slice(&bytes).map_err(|e| match e {
            safejax_core::Error::Index { reason, .. } => safejax_core::Error::Index {
                path: self.url.clone().into(),
                reason,
            },
            other => other,
        })?;
        let mut files = Vec::new();
        for name in index.shards() {
            let shard = self.sibling(name);
            let (fetched, shard_stats) = shard.fetch_header().await?;
            stats.add(shard_stats);
            files.push((shard, fetched));
        }
        let heads: Vec<&[u8]> = files.iter().map(|(_, fetched)| fetched.head()).collect();
        let warnings = index.check_heads(&self.url, &heads)?;
        Ok((files, warnings, stats))
    }

    /// The object `name` beside this one.
    fn sibling(&self, name: &str) -> Remote {
        let beside = |full: &str| match full.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{name}"),
            None => name.to_owned(),
        };
        Remote {
            path: Path::from(beside(self.path.as_ref())),
            url: beside(&self.url),
            ..self.clone()
        }
    }

    /// Fetches the header length, then the header; the object's size comes with the first.
    async fn fetch_header(&self) -> Result<(Fetched, Stats)> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(0..LEN_BYTES)),
            ..GetOptions::default()
        };
        let first = self.store.get_opts(&self.path, options).await;
        let first = first.map_err(|e| self.store_error("read", e))?;
        let file_len = first.meta.size;
        let first = first
            .bytes()
            .await
            .map_err(|e| self.store_error("read", e))?;
        let mut stats = Stats {
            requests: 1,
            bytes: first.len() as u64,
        };
        let asked = 0..LEN_BYTES.min(file_len);
        self.check_range(&asked, &first)?;
        let header_len = first
            .get(..LEN_BYTES as usize)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes);
        let fits = |len: u64| len <= MAX_HEADER_LEN && LEN_BYTES + len <= file_len;
        let mut head = first.to_vec();
        if let Some(len) = header_len.filter(|&len| fits(len)) {
            let range = LEN_BYTES..LEN_BYTES + len;
            let text = self.store.get_range(&self.path, range.clone()).await;
            let text = text.map_err(|e| self.store_error("read", e))?;
            self.check_range(&range, &text)?;
            stats.requests += 1;
            stats.bytes += text.len() as u64;
            head.extend_from_slice(&text);
        }
        // A length past the limit or the object's end is reported by the format's own check.
        Ok((Fetched::new(&self.url, head, file_len)?, stats))
    }

    /// Fetches into `fetched` the byte ranges of the tensors whose names are `wanted`.
    async fn fetch_tensors(
        &self,
        fetched: &mut Fetched,
        wanted: &impl Fn(&str) -> bool,
        stats: &mut Stats,
    ) -> Result<()> {
        // Each tensor within one request: a fetched range is read as one slice.
        let ranges = ranges_of(fetched, wanted, MAX_REQUEST);
        let mut chunks = futures::stream::iter(ranges)
            .map(|range| async move {
                let bytes = self.store.get_range(&self.path, range.clone()).await;
                let bytes = bytes.map_err(|e| self.store_error("read", e))?;
                self.check_range(&range, &bytes)?;
                Ok::<_, Error>((range.start, bytes))
            })
            .buffer_unordered(self.concurrency);
        while let Some((start, bytes)) = chunks.try_next().await? {
            stats.requests += 1;
            stats.bytes += bytes.len() as u64;
            fetched.insert(start, bytes);
        }
        Ok(())
    }

    fn check_range(&self, asked: &Range<u64>, bytes: &Bytes) -> Result<()> {
        let got = bytes.len() as u64;
        if got == asked.end - asked.start {
            return Ok(());
        }
        Err(Error::Range {
            url: self.url.clone(),
            asked: asked.clone(),
            got,
        })
    }

    fn store_error(&self, action: &'static str, source: object_store::Error) -> Error {
        use object_store::Error as E;
        let cause = match &source {
            E::NotFound { .. } => "not found".to_owned(),
            E::PermissionDenied { .. } => "access denied".to_owned(),
            E::Unauthenticated { .. } => "access denied: the credentials were refused".to_owned(),
            other => match connection_failure(other) {
                Some(what) => format!("{what} ({other})"),
                None => other.to_string(),
            },
        };
        Error::Store {
            action,
            url: self.url.clone(),
            cause,
            source: Box::new(source),
        }
    }
}

/// Whether this runs on a multi-threaded tokio runtime, where a task may block in place.
fn multi_threaded() -> bool {
    let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    flavor.ok() == Some(tokio::runtime::RuntimeFlavor::MultiThread)
}

/// What went wrong with the connection, in words, if the error is the HTTP client's.
fn connection_failure(error: &object_store::Error) -> Option<&'static str> {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if let Some(http) = error.downcast_ref::<HttpError>() {
            return match http.kind() {
                HttpErrorKind::Connect => Some("cannot connect to the server"),
                HttpErrorKind::Request | HttpErrorKind::Interrupted => {
                    Some("the connection dropped")
                }
                HttpErrorKind::Timeout => Some("the request timed out"),
                _ => None,
            };
        }
        cause = error.source();
    }
    None
}

/// Loads a value from several objects, each holding the collections its [`PartSpec`] names,
/// as [`Loader::read`] reads local files (a model's `params` and `state` saved apart); an
/// object may be the index of a sharded checkpoint. Every header is fetched and the value
/// checked against them all before any tensor is fetched.
///
/// ```
/// use std::sync::Arc;
/// use ndarray::{Array1, array};
/// use object_store::memory::InMemory;
/// use safejax_core::{Loader, PartSpec, Saver};
/// use safejax_store::{Remote, read_parts};
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let store = Arc::new(InMemory::new());
/// let (first, second) = (Remote::new(store.clone(), "a"), Remote::new(store, "b"));
/// first.save(&Saver::new(), &vec![array![1.0f32]]).await?;
/// second.save(&Saver::new(), &[array![1.0f32], array![2.0]]).await?;
/// // Both hold key `0`: a load of two parts that overlap is refused.
/// let parts = [(first, PartSpec::whole()), (second, PartSpec::whole())];
/// assert!(read_parts::<Vec<Array1<f32>>>(&Loader::new(), &parts).await.is_err());
/// # Ok::<(), safejax_store::Error>(()) })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn read_parts<T: SafeParams>(
    loader: &Loader,
    parts: &[(Remote, PartSpec)],
) -> Result<Fetch<T>> {
    // A list, not a lazy iterator, so that the future stays `Send`.
    let objects: Vec<(&Remote, &PartSpec)> = parts.iter().map(|(r, spec)| (r, spec)).collect();
    let mut files = Files::fetch_heads(objects).await?;
    let plan = loader.check_parts::<T>(&files.parts())?;
    let ignored: HashSet<&str> = plan.ignored.iter().map(String::as_str).collect();
    let wanted = |name: &str| !ignored.contains(name);
    let read = |files: &Files| loader.read::<T>(&files.parts());
    let loaded = files.load(wanted, read).await?;
    Ok(files.done(loaded))
}

/// The files of a load, fetched in part: each object's header (each shard's, for an index),
/// then the tensors the load reads.
pub(crate) struct Files {
    files: Vec<(Remote, Fetched, PartSpec)>,
    warnings: Vec<String>,
    stats: Stats,
}

impl Files {
    /// The headers of the files of `objects`, each holding what its spec says; indexes checked
    /// against their shards.
    pub(crate) async fn fetch_heads<'r>(
        objects: impl IntoIterator<Item = (&'r Remote, &'r PartSpec)>,
    ) -> Result<Files> {
        let mut all = Files {
            files: Vec::new(),
            warnings: Vec::new(),
            stats: Stats::default(),
        };
        for (remote, spec) in objects {
            let (files, warnings, stats) = remote.fetch_heads().await?;
            let with_spec = files.into_iter().map(|(r, f)| (r, f, spec.clone()));
            all.files.extend(with_spec);
            all.warnings.extend(warnings);
            all.stats.add(stats);
        }
        Ok(all)
    }

    /// Fetches the tensors whose names are `wanted` and reads the files with `read`.
    ///
    /// On a multi-threaded runtime the load is streamed (see the `stream` module): `read` runs
    /// on this thread (in [`tokio::task::block_in_place`]) while the ranges are fetched in file
    /// order, each tensor copied from the bytes that came into its value, each range let go
    /// once read. On a single-threaded runtime every range is fetched first, then read.
    pub(crate) async fn load<R>(
        &mut self,
        wanted: impl Fn(&str) -> bool,
        read: impl FnOnce(&Files) -> safejax_core::Result<R>,
    ) -> Result<R> {
        if !multi_threaded() {
            for (remote, fetched, _) in &mut self.files {
                remote
                    .fetch_tensors(fetched, &wanted, &mut self.stats)
                    .await?;
            }
            return Ok(read(self)?);
        }
        let mut ranges = Vec::new();
        for (file, (remote, fetched, _)) in self.files.iter().enumerate() {
            // Runs of adjacent tensors, in requests of at most `MAX_REQUEST` bytes: a long
            // tensor is fetched in several, concurrently, and read as they come.
            let runs = ranges_of(fetched, &wanted, u64::MAX);
            let requests = stream::split(&runs, MAX_REQUEST).into_iter();
            ranges.extend(requests.map(|range| (file, remote.clone(), range)));
        }
        let concurrency = self.files.first().map_or(1, |(r, ..)| r.concurrency);
        let (shared, task) = stream::start(ranges, concurrency);
        for (file, (_, fetched, _)) in self.files.iter_mut().enumerate() {
            let shared = shared.clone();
            fetched.stream_from(Arc::new(stream::FileStream { shared, file }));
        }
        let read = tokio::task::block_in_place(|| read(self));
        shared.close();
        for (_, fetched, _) in &mut self.files {
            fetched.stop_streaming();
        }
        let fetched = task.await.map_err(|e| Error::Runtime(format!("{e}")))?;
        // A failed fetch is the cause of whatever the read made of it.
        self.stats.add(fetched?);
        Ok(read?)
    }

    /// The parts of the load.
    pub(crate) fn parts(&self) -> Vec<Part<'_>> {
        let parts = self.files.iter();
        parts
            .map(|(_, fetched, spec)| part(fetched, spec))
            .collect()
    }

    /// The files as inputs of a tree read.
    pub(crate) fn inputs(&self) -> Vec<safejax_core::Input<'_>> {
        let files = self.files.iter();
        files
            .map(|(_, fetched, _)| safejax_core::Input::Fetched(fetched))
            .collect()
    }

    /// The fetch of a load that gave `loaded`, with the indexes' warnings.
    pub(crate) fn done<T>(self, loaded: Loaded<T>) -> Fetch<T> {
        let mut warnings = self.warnings;
        warnings.extend(loaded.warnings);
        Fetch {
            loaded: Loaded { warnings, ..loaded },
            stats: self.stats,
        }
    }
}

/// The part of a load: the fetched file, holding what `spec` says.
fn part<'a>(fetched: &'a Fetched, spec: &PartSpec) -> Part<'a> {
    let mut part = Part::fetched(fetched);
    if let Some(collections) = &spec.collections {
        part = part.collections(collections.iter().cloned());
    }
    if !spec.with_collection {
        part = part.without_collection();
    }
    part
}

/// The byte ranges of the tensors of `fetched` whose names are `wanted`, in file order, those
/// that touch merged up to `max` bytes.
fn ranges_of(fetched: &Fetched, wanted: &impl Fn(&str) -> bool, max: u64) -> Vec<Range<u64>> {
    let needed = fetched
        .tensors()
        .into_iter()
        .filter(|(name, bytes)| !bytes.is_empty() && wanted(name))
        .map(|(_, bytes)| bytes);
    coalesce(needed, max)
}

/// The byte ranges in file order, those that touch merged, each merged one at most `max`
/// bytes long unless a single range is longer.
fn coalesce(ranges: impl Iterator<Item = Range<u64>>, max: u64) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = ranges.collect();
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if last.end == range.start && range.end - last.start <= max => {
                last.end = range.end;
            }
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::coalesce;

    #[test]
    fn touching_ranges_merge_up_to_the_limit() {
        let ranges = [0..4, 4..8, 10..12, 8..10, 12..40];
        assert_eq!(coalesce(ranges.into_iter(), 16), [0..12, 12..40]);
        assert_eq!(coalesce([0..4, 6..8].into_iter(), 16), [0..4, 6..8]);
    }
}
