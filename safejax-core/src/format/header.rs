//! Reading a safetensors header: checked once, kept compact.
//!
//! A file of a million tiny tensors is mostly header, so what a header costs in memory is what a
//! load costs: names borrow the header's text wherever JSON allows (no escapes), every shape
//! lives in one shared buffer, and a tensor's view is made only when a leaf asks for it. The
//! header is parsed and checked against the length of the data before any data is read.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::{Entry as Slot, RandomState};
use std::fmt;
use std::fs::File;
use std::hash::BuildHasher;
use std::io;
use std::mem::MaybeUninit;
use std::path::Path;

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{LEN_BYTES, MAX_HEADER_LEN, METADATA_KEY, Metadata, byte_size, parse_dtype};
use crate::error::{Error, Result};
use crate::fetched::Fetched;

/// One tensor of a checked header.
#[derive(Debug, Clone)]
struct Entry<'h> {
    name: Cow<'h, str>,
    /// `None` until checked: an unknown dtype is reported in data order, with its offset.
    dtype: Option<Dtype>,
    /// Where its dimensions start in the shared buffer, and how many there are.
    dims_at: u32,
    rank: u32,
    /// Its bytes in the data section.
    start: usize,
    end: usize,
}

/// A checked header, before its data is at hand: the tensors in data order, and the metadata.
#[derive(Debug)]
pub(crate) struct FileHeader<'h> {
    entries: Vec<Entry<'h>>,
    dims: Vec<usize>,
    metadata: Metadata,
    data_start: u64,
    data_len: usize,
}

/// A checked safetensors file: its tensors in the order of their data, and its metadata. The
/// tensors' bytes are in memory (bytes given, or a memory map) or still in the file, read when a
/// tensor is.
///
/// ```
/// use safejax_core::format::parse;
/// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/flax_mlp.safetensors"))?;
/// let parsed = parse(&bytes)?;
/// let (name, tensor) = parsed.iter().next().expect("a tensor");
/// assert_eq!((name, tensor.shape()), ("params.Dense_0.bias", &[16][..]));
/// assert_eq!(tensor.bytes()?.len(), 16 * 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Parsed<'d> {
    entries: Vec<Entry<'d>>,
    dims: Vec<usize>,
    data: Data<'d>,
    /// Where the data section starts in the file.
    data_start: u64,
    /// The `__metadata__` map (empty when the file has none).
    pub metadata: Metadata,
}

/// Where the tensors' bytes are.
#[derive(Debug)]
enum Data<'d> {
    /// All of them, in memory.
    Memory(&'d [u8]),
    /// In a file: the small ones read ahead, the others read straight into their destination.
    File(FileData<'d>),
    /// In the byte ranges fetched of a remote file; a tensor outside them is an error.
    Fetched(&'d Fetched),
}

/// Tensors below this size are read ahead with their neighbours, one read for each run of them,
/// so that a file of many small tensors costs few reads; larger ones are read on their own, into
/// the memory of the value that holds them.
pub const SMALL_TENSOR: usize = 64 << 10;

#[derive(Debug)]
struct FileData<'d> {
    file: &'d File,
    path: &'d Path,
    /// Where the data section starts in the file.
    start: u64,
    /// The bytes of the tensors below [`SMALL_TENSOR`], in data order.
    small: Vec<u8>,
    /// For each entry, where its bytes start in `small`; `usize::MAX` for a large one.
    small_at: Vec<usize>,
}

/// One tensor of a [`Parsed`] file: its dtype, shape and bytes, which may still be on disk.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'p, 'd> {
    parsed: &'p Parsed<'d>,
    index: usize,
}

impl<'p, 'd> TensorRef<'p, 'd> {
    /// The dtype.
    pub fn dtype(&self) -> Dtype {
        self.parsed.dtype(self.index)
    }

    /// The shape.
    pub fn shape(&self) -> &'p [usize] {
        self.parsed.shape(self.index)
    }

    /// The number of bytes.
    pub fn byte_len(&self) -> usize {
        let entry = &self.parsed.entries[self.index];
        entry.end - entry.start
    }

    /// Where the bytes start in the file.
    pub fn offset(&self) -> u64 {
        self.parsed.data_start + self.parsed.entries[self.index].start as u64
    }

    /// The bytes, if they are in the memory the file was given in (bytes or a memory map),
    /// borrowed for as long as that memory.
    pub fn borrowed(&self) -> Option<&'d [u8]> {
        let entry = &self.parsed.entries[self.index];
        match &self.parsed.data {
            Data::Memory(data) => Some(&data[entry.start..entry.end]),
            Data::File(_) => None,
            Data::Fetched(fetched) => fetched.slice(self.file_range()),
        }
    }

    /// Where the bytes are in the file.
    fn file_range(&self) -> std::ops::Range<u64> {
        self.offset()..self.offset() + self.byte_len() as u64
    }

    /// Whether the bytes are in memory already (given bytes, a memory map, or read ahead).
    pub fn in_memory(&self) -> bool {
        self.memory().is_some()
    }

    /// The bytes, if they are in memory (given, mapped or read ahead).
    pub(crate) fn memory(&self) -> Option<&'p [u8]> {
        let entry = &self.parsed.entries[self.index];
        match &self.parsed.data {
            Data::Memory(data) => Some(&data[entry.start..entry.end]),
            Data::File(file) => match file.small_at[self.index] {
                usize::MAX => None,
                at => Some(&file.small[at..at + self.byte_len()]),
            },
            Data::Fetched(fetched) => fetched.slice(self.file_range()),
        }
    }

    /// The bytes: borrowed from memory the caller gave, read (or copied from what was read
    /// ahead) otherwise.
    pub fn bytes(&self) -> Result<Cow<'d, [u8]>> {
        if let Data::Memory(data) = &self.parsed.data {
            let entry = &self.parsed.entries[self.index];
            return Ok(Cow::Borrowed(&data[entry.start..entry.end]));
        }
        if let Data::Fetched(fetched) = &self.parsed.data {
            let at = self.file_range();
            match fetched.slice(at.clone()) {
                Some(bytes) => return Ok(Cow::Borrowed(bytes)),
                None if !fetched.streams() => return Err(fetched.not_fetched(at)),
                // Read from the stream below.
                None => {}
            }
        }
        let len = self.byte_len();
        let mut out = Vec::with_capacity(len);
        self.read_into_uninit(&mut out.spare_capacity_mut()[..len])?;
        // SAFETY: `read_into_uninit` initialized all `len` bytes.
        unsafe { out.set_len(len) };
        Ok(Cow::Owned(out))
    }

    /// Copies the bytes into `out`, which holds exactly [`TensorRef::byte_len`] bytes: straight
    /// from the file when they are still there.
    ///
    /// # Panics
    ///
    /// If `out` is not of that length: a bug of the caller, never caused by a file.
    pub fn read_into(&self, out: &mut [u8]) -> Result<()> {
        // SAFETY: `read_into_uninit` only writes initialized bytes into `out`, so `out` stays
        // initialized whatever happens, as `&mut [u8]` requires.
        let out = unsafe { &mut *(std::ptr::from_mut(out) as *mut [MaybeUninit<u8>]) };
        self.read_into_uninit(out)
    }

    /// The tensor taken out of the file: its bytes borrowed from memory the caller gave, or read.
    pub(crate) fn staged(&self) -> Result<Staged<'d>> {
        Ok(Staged {
            dtype: self.dtype(),
            shape: self.shape().to_vec(),
            bytes: self.bytes()?,
        })
    }

    /// Copies the bytes into `out`, which holds exactly [`TensorRef::byte_len`] bytes not yet
    /// initialized: straight from the file when they are still there, without zeroing `out`
    /// first. Every byte of `out` is initialized when this returns `Ok`.
    pub(crate) fn read_into_uninit(&self, out: &mut [MaybeUninit<u8>]) -> Result<()> {
        assert_eq!(
            out.len(),
            self.byte_len(),
            "a buffer of the tensor's length"
        );
        if let Some(bytes) = self.memory() {
            // SAFETY: `out` and `bytes` are `bytes.len()` bytes long, and `out`, which the
            // caller borrows mutably, cannot overlap the file's bytes, which it borrows shared.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast(), bytes.len())
            };
            return Ok(());
        }
        let (file, entry) = match (&self.parsed.data, &self.parsed.entries[self.index]) {
            (Data::File(file), entry) => (file, entry),
            (Data::Fetched(fetched), _) => return fetched.read_uninit(self.file_range(), out),
            (Data::Memory(_), _) => return Ok(()),
        };
        let at = file.start + entry.start as u64;
        read_uninit_at(file.file, out, at).map_err(|e| read_error(file.path, at, out.len(), e))
    }

    /// Hands a view of the tensor, as the official crate's type, to `use_view`.
    pub fn with_view<R>(&self, use_view: impl FnOnce(&TensorView<'_>) -> R) -> Result<R> {
        let shape = self.shape().to_vec();
        let bytes = match self.memory() {
            Some(bytes) => Cow::Borrowed(bytes),
            None => self.bytes()?,
        };
        let view = TensorView::new(self.dtype(), shape, &bytes)
            .unwrap_or_else(|_| unreachable!("the header was checked against the data"));
        Ok(use_view(&view))
    }
}

impl<'d> Parsed<'d> {
    /// How many tensors the file holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of the `i`-th tensor, in data order.
    pub fn name(&self, i: usize) -> &str {
        &self.entries[i].name
    }

    /// The dtype of the `i`-th tensor.
    pub fn dtype(&self, i: usize) -> Dtype {
        // Every dtype was checked when the header was.
        self.entries[i].dtype.unwrap_or(Dtype::U8)
    }

    /// The shape of the `i`-th tensor.
    pub fn shape(&self, i: usize) -> &[usize] {
        let entry = &self.entries[i];
        let at = entry.dims_at as usize;
        &self.dims[at..at + entry.rank as usize]
    }

    /// The `i`-th tensor.
    pub fn tensor(&self, i: usize) -> TensorRef<'_, 'd> {
        TensorRef {
            parsed: self,
            index: i,
        }
    }

    /// Every tensor with its name, in data order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, TensorRef<'_, 'd>)> + '_ {
        (0..self.len()).map(|i| (self.name(i), self.tensor(i)))
    }
}

/// A tensor taken out of its file, so that it can be assigned after every other one was read:
/// an in-place load changes nothing when a read fails.
pub(crate) struct Staged<'d> {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Cow<'d, [u8]>,
}

impl Staged<'_> {
    /// Hands a view of the tensor to `use_view`.
    pub(crate) fn with_view<R>(&self, use_view: impl FnOnce(&TensorView<'_>) -> R) -> R {
        let view = TensorView::new(self.dtype, self.shape.clone(), &self.bytes)
            .unwrap_or_else(|_| unreachable!("the header was checked against the data"));
        use_view(&view)
    }
}

/// The length of the JSON header, from the first bytes of a file of `file_len` bytes; checked
/// against the format's limit and against what follows it, before anything else is read.
pub(crate) fn header_len(first: &[u8], file_len: u64) -> Result<usize> {
    let Some(len_bytes) = first.get(..LEN_BYTES) else {
        return Err(Error::format(
            0,
            format!("{file_len} bytes are too few for the 8-byte header length"),
        ));
    };
    let mut raw_len = [0u8; LEN_BYTES];
    raw_len.copy_from_slice(len_bytes);
    let header_len = u64::from_le_bytes(raw_len);
    let available = file_len.saturating_sub(LEN_BYTES as u64);
    if header_len > MAX_HEADER_LEN {
        return Err(Error::format(
            0,
            format!("header length {header_len} exceeds the limit of {MAX_HEADER_LEN} bytes"),
        ));
    }
    if header_len > available {
        return Err(Error::format(
            0,
            format!(
                "header length {header_len} runs past the end of the data ({available} bytes follow it)"
            ),
        ));
    }
    // At most `MAX_HEADER_LEN`, so it fits in usize.
    Ok(header_len as usize)
}

/// Checks a whole safetensors buffer and returns views of its tensors.
///
/// Every problem is an [`Error::Format`] naming the byte offset and, where one is concerned,
/// the tensor. Nothing is allocated in proportion to a length the file claims.
///
/// ```
/// use safejax_core::format::parse;
/// let err = parse(&[1, 2, 3]).unwrap_err();
/// assert_eq!(err.to_string(), "invalid safetensors data at byte 0: 3 bytes are too few for the 8-byte header length");
/// ```
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>> {
    let (text, data) = split(bytes)?;
    Ok(FileHeader::parse(text, data.len())?.with_data(data))
}

/// The JSON header of a whole file in memory, and its data.
pub(crate) fn split(bytes: &[u8]) -> Result<(&[u8], &[u8])> {
    let len = header_len(bytes, bytes.len() as u64)?;
    // `header_len` checked that both fit in `bytes`.
    Ok(bytes[LEN_BYTES..].split_at(len))
}

impl<'h> FileHeader<'h> {
    /// Parses and checks the JSON `text` of a header (the bytes after the length) for a file
    /// whose data section is `data_len` bytes long.
    pub(crate) fn parse(text: &'h [u8], data_len: usize) -> Result<Self> {
        Self::parse_for(text, Some(data_len))
    }

    /// Parses and checks the JSON `text` of a header read alone: its tensors' offsets are
    /// checked against each other and against their shapes, but not against a data section,
    /// which need not follow (a header-only file, or a file cut after its header).
    pub(crate) fn parse_alone(text: &'h [u8]) -> Result<Self> {
        Self::parse_for(text, None)
    }

    fn parse_for(text: &'h [u8], data_len: Option<usize>) -> Result<Self> {
        let text = std::str::from_utf8(text).map_err(|e| {
            Error::format(
                (LEN_BYTES + e.valid_up_to()) as u64,
                "header is not valid UTF-8",
            )
        })?;
        let raw = RawHeader::deserialize(&mut serde_json::Deserializer::from_str(text))
            .map_err(|e| json_error(text, e))?;
        let data_len =
            data_len.unwrap_or_else(|| raw.entries.iter().map(|e| e.end).max().unwrap_or(0));
        let data_start = LEN_BYTES + text.len();
        let entries = check_entries(raw.entries, &raw.dims, raw.unknown, data_len, data_start)?;
        Ok(FileHeader {
            entries,
            dims: raw.dims,
            metadata: raw.metadata.unwrap_or_default(),
            data_start: data_start as u64,
            data_len,
        })
    }

    /// The number of tensors.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Tensor `i`'s key, dtype and shape.
    pub(crate) fn tensor(&self, i: usize) -> (&str, Dtype, &[usize]) {
        let entry = &self.entries[i];
        let shape = &self.dims[entry.dims_at as usize..][..entry.rank as usize];
        // Checked by `check_entries`: every dtype is known.
        (&entry.name, entry.dtype.unwrap_or(Dtype::U8), shape)
    }

    /// The metadata.
    pub(crate) fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Where tensor `i`'s bytes are in the file.
    pub(crate) fn byte_range(&self, i: usize) -> std::ops::Range<u64> {
        let entry = &self.entries[i];
        self.data_start + entry.start as u64..self.data_start + entry.end as u64
    }

    /// The header with its data in the ranges fetched of a remote file.
    pub(crate) fn with_fetched<'d>(self, fetched: &'d Fetched) -> Parsed<'d>
    where
        'h: 'd,
    {
        Parsed {
            entries: self.entries,
            dims: self.dims,
            data: Data::Fetched(fetched),
            data_start: self.data_start,
            metadata: self.metadata,
        }
    }

    /// The header with the data it was checked for.
    pub(crate) fn with_data<'d>(self, data: &'d [u8]) -> Parsed<'d>
    where
        'h: 'd,
    {
        debug_assert_eq!(data.len(), self.data_len);
        Parsed {
            entries: self.entries,
            dims: self.dims,
            data: Data::Memory(data),
            data_start: self.data_start,
            metadata: self.metadata,
        }
    }

    /// The header with its data in `file`, from byte `start` on: the tensors below
    /// [`SMALL_TENSOR`] are read now, one read for each run of them; the others when asked for.
    pub(crate) fn with_file<'d>(
        self,
        file: &'d File,
        path: &'d Path,
        start: u64,
    ) -> Result<Parsed<'d>>
    where
        'h: 'd,
    {
        let mut small = Vec::new();
        let mut small_at = vec![usize::MAX; self.entries.len()];
        let mut run: Option<(usize, usize)> = None;
        let flush = |run: &mut Option<(usize, usize)>, small: &mut Vec<u8>| {
            let Some((from, to)) = run.take() else {
                return Ok(());
            };
            let at = small.len();
            small.resize(at + (to - from), 0);
            let offset = start + from as u64;
            read_exact_at(file, &mut small[at..], offset)
                .map_err(|e| read_error(path, offset, to - from, e))
        };
        for (i, entry) in self.entries.iter().enumerate() {
            if entry.end - entry.start >= SMALL_TENSOR {
                flush(&mut run, &mut small)?;
                continue;
            }
            small_at[i] = small.len() + run.map_or(0, |(from, _)| entry.start - from);
            run = Some((run.map_or(entry.start, |(from, _)| from), entry.end));
        }
        flush(&mut run, &mut small)?;
        Ok(Parsed {
            entries: self.entries,
            dims: self.dims,
            data: Data::File(FileData {
                file,
                path,
                start,
                small,
                small_at,
            }),
            data_start: start,
            metadata: self.metadata,
        })
    }
}

/// A failed read of the `len` bytes of a file's data at byte `offset`; a file shorter than its
/// checked header says was cut while it was read, and the error says where.
fn read_error(path: &Path, offset: u64, len: usize, error: io::Error) -> Error {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        let end = offset.saturating_add(len as u64);
        let cut = format!(
            "the file ended while bytes {offset}..{end} were read: it was shortened after its header was checked"
        );
        return Error::io(
            "read",
            path,
            io::Error::new(io::ErrorKind::UnexpectedEof, cut),
        );
    }
    Error::io("read", path, error)
}

/// Fills `out`, not yet initialized, from `file` at `offset`; every byte is initialized when
/// this returns `Ok`.
fn read_uninit_at(file: &File, out: &mut [MaybeUninit<u8>], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let mut done = 0;
        while done < out.len() {
            let at = libc::off_t::try_from(offset + done as u64)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
            let rest = &mut out[done..];
            // SAFETY: `pread` writes at most `rest.len()` bytes into `rest`, memory this
            // function borrows mutably; it reads nothing from it, so it may be uninitialized.
            let read =
                unsafe { libc::pread(file.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len(), at) };
            match read {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n if n > 0 => done += n as usize,
                _ => {
                    let error = io::Error::last_os_error();
                    if error.kind() != io::ErrorKind::Interrupted {
                        return Err(error);
                    }
                }
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        for byte in out.iter_mut() {
            byte.write(0);
        }
        // SAFETY: every byte of `out` was just initialized.
        let out =
            unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), out.len()) };
        read_exact_at(file, out, offset)
    }
}

/// Fills `out` from `file` at `offset`, without moving the file's cursor.
fn read_exact_at(file: &File, out: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, out, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < out.len() {
            let at = offset + done as u64;
            match std::os::windows::fs::FileExt::seek_read(file, &mut out[done..], at)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (file, out, offset);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// A JSON error at its byte offset in the file.
fn json_error(text: &str, e: serde_json::Error) -> Error {
    let offset = LEN_BYTES + json_offset(text, e.line(), e.column());
    // The byte offset replaces serde_json's line and column.
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = message.strip_suffix(&position).unwrap_or(&message);
    Error::format(
        offset as u64,
        format!("header is not a valid safetensors header: {message}"),
    )
}

/// Byte offset in `text` of serde_json's 1-based line and column.
fn json_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// A string of the header: borrowed from its text unless JSON escapes made a new one.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

/// The header as read, before its entries are checked against each other and the data.
struct RawHeader<'de> {
    entries: Vec<Entry<'de>>,
    dims: Vec<usize>,
    /// Entries whose dtype is not one the format has, with the name written.
    unknown: Vec<(usize, String)>,
    metadata: Option<Metadata>,
}

impl<'de> Deserialize<'de> for RawHeader<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawHeaderVisitor)
    }
}

struct RawHeaderVisitor;

impl<'de> Visitor<'de> for RawHeaderVisitor {
    type Value = RawHeader<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of tensor entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader<'de>, A::Error> {
        let mut header = RawHeader {
            entries: Vec::new(),
            dims: Vec::new(),
            unknown: Vec::new(),
            metadata: None,
        };
        // While the names come in increasing order, as writers write them, none can repeat an
        // earlier one. From the first name out of order on, names are found again by a hash
        // of each: no second copy of every name. A hash shared by two different names (as good
        // as never, the hasher being keyed at random) falls back to comparing with every entry.
        let hasher = RandomState::new();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let mut in_order = true;
        while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
            if name == METADATA_KEY {
                if header.metadata.is_some() {
                    return Err(de::Error::custom(format!("duplicate entry `{name}`")));
                }
                header.metadata = Some(map.next_value::<MetadataEntry>()?.0);
                continue;
            }
            let index = header.entries.len();
            if in_order {
                match header.entries.last() {
                    Some(last) if *last.name >= *name => {
                        in_order = false;
                        seen.reserve(header.entries.len());
                        for (i, entry) in header.entries.iter().enumerate() {
                            seen.insert(hasher.hash_one(&*entry.name), i);
                        }
                    }
                    _ => {}
                }
            }
            let duplicate = !in_order
                && match seen.entry(hasher.hash_one(&*name)) {
                    Slot::Occupied(first) => {
                        header.entries[*first.get()].name == name
                            || header.entries.iter().any(|entry| entry.name == name)
                    }
                    Slot::Vacant(slot) => {
                        slot.insert(index);
                        false
                    }
                };
            if duplicate {
                return Err(de::Error::custom(format!("duplicate entry `{name}`")));
            }
            let seed = EntrySeed {
                dims: &mut header.dims,
            };
            let raw = map
                .next_value_seed(seed)
                .map_err(|e| de::Error::custom(format!("tensor `{name}`: {e}")))?;
            let dtype = parse_dtype(&raw.dtype);
            if dtype.is_none() {
                header.unknown.push((index, raw.dtype.into_owned()));
            }
            header.entries.push(Entry {
                name,
                dtype,
                dims_at: raw.dims_at,
                rank: raw.rank,
                start: raw.offsets.0,
                end: raw.offsets.1,
            });
        }
        Ok(header)
    }
}

/// A tensor entry as read: its dtype's name, its dimensions (appended to the shared buffer)
/// and its offsets.
struct RawEntry<'de> {
    dtype: Cow<'de, str>,
    dims_at: u32,
    rank: u32,
    offsets: (usize, usize),
}

const ENTRY_FIELDS: [&str; 3] = ["dtype", "shape", "data_offsets"];

/// Reads one tensor entry, appending its shape to `dims`.
struct EntrySeed<'a> {
    dims: &'a mut Vec<usize>,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = RawEntry<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_struct("TensorInfo", &ENTRY_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = RawEntry<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tensor entry {\"dtype\", \"shape\", \"data_offsets\"}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let dtype = seq
            .next_element::<Text<'de>>()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?
            .0;
        let dims_at = self.dims.len();
        seq.next_element_seed(ShapeSeed { dims: self.dims })?
            .ok_or_else(|| de::Error::invalid_length(1, &"a tensor entry with 3 elements"))?;
        let offsets = seq
            .next_element_seed(OffsetsSeed)?
            .ok_or_else(|| de::Error::invalid_length(2, &"a tensor entry with 3 elements"))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(
                4,
                &"a tensor entry with 3 elements",
            ));
        }
        raw_entry(dtype, dims_at, self.dims.len(), offsets)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut dtype = None;
        let mut shape: Option<(usize, usize)> = None;
        let mut offsets = None;
        while let Some(Text(field)) = map.next_key::<Text<'de>>()? {
            match &*field {
                "dtype" if dtype.is_some() => return Err(de::Error::duplicate_field("dtype")),
                "dtype" => dtype = Some(map.next_value::<Text<'de>>()?.0),
                "shape" if shape.is_some() => return Err(de::Error::duplicate_field("shape")),
                "shape" => {
                    let at = self.dims.len();
                    map.next_value_seed(ShapeSeed {
                        dims: &mut *self.dims,
                    })?;
                    shape = Some((at, self.dims.len()));
                }
                "data_offsets" if offsets.is_some() => {
                    return Err(de::Error::duplicate_field("data_offsets"));
                }
                "data_offsets" => offsets = Some(map.next_value_seed(OffsetsSeed)?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let dtype = dtype.ok_or_else(|| de::Error::missing_field("dtype"))?;
        let (at, end) = shape.ok_or_else(|| de::Error::missing_field("shape"))?;
        let offsets = offsets.ok_or_else(|| de::Error::missing_field("data_offsets"))?;
        raw_entry(dtype, at, end, offsets)
    }
}

fn raw_entry<'de, E: de::Error>(
    dtype: Cow<'de, str>,
    at: usize,
    end: usize,
    offsets: (usize, usize),
) -> Result<RawEntry<'de>, E> {
    // The header is at most `MAX_HEADER_LEN` bytes, so it holds fewer dimensions than that.
    let narrow = |n: usize| u32::try_from(n).map_err(|_| de::Error::custom("too many dimensions"));
    Ok(RawEntry {
        dtype,
        dims_at: narrow(at)?,
        rank: narrow(end - at)?,
        offsets,
    })
}

/// Appends a shape's dimensions to the shared buffer.
struct ShapeSeed<'a> {
    dims: &'a mut Vec<usize>,
}

impl<'de> DeserializeSeed<'de> for ShapeSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ShapeSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(dim) = seq.next_element::<usize>()? {
            self.dims.push(dim);
        }
        Ok(())
    }
}

/// Reads `data_offsets`, saying plainly when it does not hold exactly two offsets.
struct OffsetsSeed;

impl<'de> DeserializeSeed<'de> for OffsetsSeed {
    type Value = (usize, usize);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for OffsetsSeed {
    type Value = (usize, usize);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("two data offsets [start, end]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let start = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let end = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(
                "`data_offsets` holds more than two offsets",
            ));
        }
        Ok((start, end))
    }
}

/// The value of the `__metadata__` entry: a string map, or `null` for none.
struct MetadataEntry(Metadata);

impl<'de> Deserialize<'de> for MetadataEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Option::<std::collections::BTreeMap<String, serde_json::Value>>::deserialize(
            deserializer,
        )
        .map_err(|e| {
            de::Error::custom(format!("`{METADATA_KEY}` must map strings to strings: {e}"))
        })?;
        let mut metadata = Metadata::new();
        for (key, value) in value.unwrap_or_default() {
            let serde_json::Value::String(text) = value else {
                if ENTRY_FIELDS.contains(&key.as_str()) {
                    return Err(de::Error::custom(format!(
                        "`{METADATA_KEY}` is reserved for the metadata map and cannot name a tensor"
                    )));
                }
                return Err(de::Error::custom(format!(
                    "`{METADATA_KEY}` must map strings to strings, but `{key}` maps to {value}"
                )));
            };
            metadata.insert(key, text);
        }
        Ok(MetadataEntry(metadata))
    }
}

/// Puts the entries in data order and checks that they tile the data exactly, each with a known
/// dtype and the size its shape needs.
fn check_entries<'h>(
    entries: Vec<Entry<'h>>,
    dims: &[usize],
    unknown: Vec<(usize, String)>,
    data_len: usize,
    data_start: usize,
) -> Result<Vec<Entry<'h>>> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (entries[i].start, entries[i].end));
    let unknown: HashMap<usize, String> = unknown.into_iter().collect();
    let at = |offset: usize| (data_start as u64).saturating_add(offset as u64);
    let mut end = 0usize;
    for &i in &order {
        let entry = &entries[i];
        let name = &entry.name;
        let (start, stop) = (entry.start, entry.end);
        let Some(dtype) = entry.dtype else {
            let written = unknown.get(&i).map_or("", String::as_str);
            return Err(Error::format(
                at(start),
                format!("tensor `{name}` has unknown dtype `{written}`"),
            ));
        };
        if start != end {
            let what = if start > end {
                "leaves a gap after"
            } else {
                "overlaps"
            };
            return Err(Error::format(
                at(start),
                format!(
                    "tensor `{name}` starts at data offset {start}, which {what} the previous tensor ending at {end}"
                ),
            ));
        }
        if stop < start {
            return Err(Error::format(
                at(start),
                format!("tensor `{name}` ends at {stop}, before its start {start}"),
            ));
        }
        let shape = &dims[entry.dims_at as usize..][..entry.rank as usize];
        let size = byte_size(dtype, shape).map_err(|why| {
            Error::format(
                at(start),
                format!("tensor `{name}` of shape {shape:?} and dtype {dtype} {why}"),
            )
        })?;
        if stop - start != size {
            return Err(Error::format(
                at(start),
                format!(
                    "tensor `{name}` of shape {shape:?} and dtype {dtype} needs {size} bytes, its offsets span {}",
                    stop - start
                ),
            ));
        }
        if stop > data_len {
            return Err(Error::format(
                at(start),
                format!(
                    "tensor `{name}` ends at data offset {stop}, past the end of the data ({data_len} bytes)"
                ),
            ));
        }
        end = stop;
    }
    if end != data_len {
        return Err(Error::format(
            at(end),
            format!(
                "{} bytes after the last tensor belong to no tensor",
                data_len - end
            ),
        ));
    }
    let mut entries: Vec<Option<Entry<'h>>> = entries.into_iter().map(Some).collect();
    Ok(order.iter().filter_map(|&i| entries[i].take()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file of one-byte `U8` tensors named `names`, in that order in the header.
    fn file_of(names: &[&str]) -> Vec<u8> {
        let entries: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                format!(
                    r#""{name}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{}]}}"#,
                    i + 1
                )
            })
            .collect();
        let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&header);
        bytes.extend(std::iter::repeat_n(0u8, names.len()));
        bytes
    }

    /// Names in order skip the hash; a repeat is found wherever the order breaks.
    #[test]
    fn a_name_twice_is_found_in_order_or_not() {
        assert!(crate::format::parse(&file_of(&["a", "b", "c"])).is_ok());
        assert!(crate::format::parse(&file_of(&["c", "a", "b"])).is_ok());
        for names in [
            &["a", "a"][..],
            &["a", "b", "c", "b"],
            &["a", "b", "c", "a"],
            &["b", "a", "c", "a"],
            &["a", "c", "b", "c"],
        ] {
            let err = crate::format::parse(&file_of(names))
                .map(|_| ())
                .unwrap_err();
            assert!(
                err.to_string().contains("duplicate entry"),
                "{names:?}: {err}"
            );
        }
    }

    #[test]
    fn reads_into_uninitialized_memory_whole_or_not_at_all() {
        let mut file = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
        file.write_all(&(0..100u8).collect::<Vec<u8>>())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = vec![MaybeUninit::<u8>::uninit(); 40];
        read_uninit_at(&file, &mut out, 50).unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: the read succeeded, so every byte is initialized.
        let bytes: Vec<u8> = out.iter().map(|b| unsafe { b.assume_init() }).collect();
        assert_eq!(bytes, (50..90u8).collect::<Vec<u8>>());
        // A file that ends before the tensor does is an error, not a short read.
        let err = read_uninit_at(&file, &mut out, 80).map_err(|e| e.kind());
        assert_eq!(err, Err(io::ErrorKind::UnexpectedEof));
    }
}
