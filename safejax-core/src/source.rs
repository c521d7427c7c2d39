//! Where a file's bytes come from: a file read header first, a memory map, or bytes already in
//! memory. Every header is read and checked before any file's data is read, so a bad file costs
//! its header, never its size.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fetched::Fetched;
use crate::format::{self, FileHeader, LEN_BYTES, Parsed};

/// Where a file's bytes come from.
///
/// ```
/// use safejax_core::{Input, Loader};
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/flax_mlp.safetensors");
/// let input = Input::Path(path.as_ref());
/// assert!(matches!(input, Input::Path(_)));
/// # let _ = Loader::new();
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A file, read (or memory-mapped, if the loader says so).
    Path(&'a Path),
    /// Bytes already in memory.
    Bytes(&'a [u8]),
    /// A remote file's header and the byte ranges of its data fetched for the load.
    Fetched(&'a Fetched),
}

/// An opened input.
enum Source<'a> {
    /// A file being read: its JSON header is in memory, its data not yet.
    Read {
        path: &'a Path,
        file: File,
        head: Vec<u8>,
        data_len: usize,
    },
    Mapped {
        path: &'a Path,
        map: memmap2::Mmap,
    },
    Bytes(&'a [u8]),
    Fetched(&'a Fetched),
}

/// Opens every input and checks every header, hands the headers to `check` (an index checked
/// against its shards), then reads what is read ahead (the small tensors of files that are
/// read), and hands what `check` returned and the checked files to `use_files` in the order of
/// `inputs`. The data of large tensors in files is read when a value asks for it, straight into
/// the value's memory.
pub(crate) fn with_checked_files<'i, C, R>(
    inputs: impl IntoIterator<Item = Input<'i>>,
    memory_map: bool,
    check: impl FnOnce(&[FileHeader<'_>]) -> Result<C>,
    use_files: impl FnOnce(C, Vec<Parsed<'_>>) -> Result<R>,
) -> Result<R> {
    let sources = inputs
        .into_iter()
        .map(|input| Source::open(input, memory_map))
        .collect::<Result<Vec<_>>>()?;
    let (headers, data): (Vec<_>, Vec<_>) = sources
        .iter()
        .map(Source::header)
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    let checked = check(&headers)?;
    let files = sources
        .iter()
        .zip(headers.into_iter().zip(data))
        .map(|(source, header)| source.with_data(header))
        .collect::<Result<Vec<_>>>()?;
    use_files(checked, files)
}

/// [`with_checked_files`] for one input.
pub(crate) fn with_file<R>(
    input: Input<'_>,
    memory_map: bool,
    use_file: impl FnOnce(Parsed<'_>) -> Result<R>,
) -> Result<R> {
    let source = Source::open(input, memory_map)?;
    let header = source.header()?;
    use_file(source.with_data(header)?)
}

impl<'a> Source<'a> {
    fn open(input: Input<'a>, memory_map: bool) -> Result<Self> {
        let path = match input {
            Input::Bytes(bytes) => return Ok(Source::Bytes(bytes)),
            Input::Fetched(fetched) => return Ok(Source::Fetched(fetched)),
            Input::Path(path) => path,
        };
        let action = if memory_map { "open" } else { "read" };
        let file = File::open(path).map_err(|e| Error::io(action, path, e))?;
        if memory_map {
            // SAFETY: the map is only read. Its contents may change if another process writes
            // the file; every read of it is bounds-checked against the length taken at mapping
            // time, and `Loader::memory_map` documents that truncating a mapped file is not
            // supported (the OS then raises SIGBUS).
            let map =
                unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("map", path, e))?;
            return Ok(Source::Mapped { path, map });
        }
        let read_error = |e| Error::io("read", path, e);
        let file_len = file.metadata().map_err(read_error)?.len();
        let mut first = Vec::with_capacity(LEN_BYTES);
        (&file)
            .take(LEN_BYTES as u64)
            .read_to_end(&mut first)
            .map_err(read_error)?;
        let header_len = format::header_len(&first, file_len).map_err(|e| in_file(path, e))?;
        // Checked against the file's length and the format's limit before it is allocated.
        let mut head = vec![0; header_len];
        (&file).read_exact(&mut head).map_err(read_error)?;
        let data_len = file_len - (LEN_BYTES + header_len) as u64;
        let data_len = usize::try_from(data_len).map_err(|_| {
            in_file(
                path,
                Error::format(0, format!("{data_len} bytes of data do not fit in memory")),
            )
        })?;
        Ok(Source::Read {
            path,
            file,
            head,
            data_len,
        })
    }

    /// The checked header, and the data when it is already in memory.
    fn header(&self) -> Result<(FileHeader<'_>, Option<&[u8]>)> {
        let (path, bytes) = match self {
            Source::Read {
                path,
                head,
                data_len,
                ..
            } => {
                let header = FileHeader::parse(head, *data_len).map_err(|e| in_file(path, e))?;
                return Ok((header, None));
            }
            Source::Fetched(fetched) => {
                let header = fetched
                    .header()
                    .map_err(|e| in_file(fetched.name().as_ref(), e))?;
                return Ok((header, None));
            }
            Source::Mapped { path, map } => (Some(*path), &map[..]),
            Source::Bytes(bytes) => (None, *bytes),
        };
        let checked = format::split(bytes)
            .and_then(|(text, data)| Ok((FileHeader::parse(text, data.len())?, Some(data))));
        checked.map_err(|e| match path {
            Some(path) => in_file(path, e),
            None => e,
        })
    }

    /// The checked file: its data in memory, or in the file that is read.
    fn with_data<'s>(
        &'s self,
        (header, data): (FileHeader<'s>, Option<&'s [u8]>),
    ) -> Result<Parsed<'s>> {
        match (self, data) {
            (_, Some(data)) => Ok(header.with_data(data)),
            (
                Source::Read {
                    path, file, head, ..
                },
                None,
            ) => header.with_file(file, path, (LEN_BYTES + head.len()) as u64),
            (Source::Fetched(fetched), None) => Ok(header.with_fetched(fetched)),
            (_, None) => Ok(header.with_data(&[])),
        }
    }
}

/// Names the file in an error about its bytes.
pub(crate) fn in_file(path: &Path, error: Error) -> Error {
    match error {
        Error::Format { offset, reason } => Error::Format {
            offset,
            reason: format!("{reason} (in `{}`)", path.display()),
        },
        other => other,
    }
}

/// The header of a file's first bytes (8 + N, or more), checked alone: nothing after the header
/// is looked at, so a header-only file (or one cut after its header) is as good as a whole one.
pub(crate) fn header_of(bytes: &[u8]) -> Result<FileHeader<'_>> {
    let len = format::header_len(bytes, bytes.len() as u64)?;
    FileHeader::parse_alone(&bytes[LEN_BYTES..LEN_BYTES + len])
}

/// The first 8 + N bytes of the file at `path`: its header length and its JSON header.
pub(crate) fn read_header(path: &Path) -> Result<Vec<u8>> {
    let read_error = |e| Error::io("read", path, e);
    let file = File::open(path).map_err(read_error)?;
    let file_len = file.metadata().map_err(read_error)?.len();
    read_header_from(&file, Some((path, file_len)))
}

/// The first 8 + N bytes `reader` gives: a header length checked against the format's limit
/// (and against the file's length, when known), then that many bytes, nothing after them.
pub(crate) fn read_header_from(reader: impl Read, file: Option<(&Path, u64)>) -> Result<Vec<u8>> {
    let read_error = |e| match file {
        Some((path, _)) => Error::io("read", path, e),
        None => Error::io("read", "(stream)", e),
    };
    let mut reader = reader;
    let mut head = Vec::with_capacity(LEN_BYTES);
    (&mut reader)
        .take(LEN_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(read_error)?;
    let file_len = file.map_or(u64::MAX, |(_, len)| len);
    let header_len = format::header_len(&head, file_len).map_err(|e| match file {
        Some((path, _)) => in_file(path, e),
        None => e,
    })?;
    // At most the format's limit; read in steps, so a stream that ends early costs what it sent.
    (&mut reader)
        .take(header_len as u64)
        .read_to_end(&mut head)
        .map_err(read_error)?;
    if head.len() != LEN_BYTES + header_len {
        let got = head.len() - LEN_BYTES;
        return Err(Error::format(
            LEN_BYTES as u64,
            format!(
                "the header is {header_len} bytes long, but the input ends after {got} of them"
            ),
        ));
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use ndarray::Array1;

    use super::*;
    use crate::SafeParams;
    use crate::format::SMALL_TENSOR;

    /// The lengths of the tensors `0` to `6`, in data order: runs of small ones, read ahead
    /// together, between large ones, read one at a time.
    const LENS: [usize; 7] = [16, 24, LARGE, 8, 16, LARGE, 32];
    const LARGE: usize = 2 * SMALL_TENSOR / 4;

    /// Saves the tensors `0` to `6` at `path`; returns the file's bytes.
    fn save(path: &Path) -> Vec<u8> {
        let tensor = |(i, &len): (usize, &usize)| {
            Array1::from_iter((0..len).map(|j| (i * 1_000_000 + j) as f32 + 0.5))
        };
        let tensors: Vec<Array1<f32>> = LENS.iter().enumerate().map(tensor).collect();
        tensors.save(path).unwrap_or_else(|e| panic!("{e}"));
        std::fs::read(path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Where tensor `i`'s bytes are in `file`.
    fn bytes_of(file: &[u8], i: usize) -> (u64, u64) {
        let parsed = format::parse(file).unwrap_or_else(|e| panic!("{e}"));
        let tensor = parsed.tensor(i);
        assert_eq!(parsed.name(i), i.to_string(), "data in key order");
        assert_eq!(tensor.byte_len() >= SMALL_TENSOR, LENS[i] == LARGE);
        (tensor.offset(), tensor.offset() + tensor.byte_len() as u64)
    }

    /// Shortens the file at `path` to `len` bytes, through a handle of its own.
    fn cut(path: &Path, len: u64) {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|file| file.set_len(len))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn expected(path: &Path, (start, end): (u64, u64)) -> String {
        format!(
            "cannot read `{}`: the file ended while bytes {start}..{end} were read: it was \
             shortened after its header was checked",
            path.display()
        )
    }

    /// A file cut after its header was read and checked, before its small tensors are read
    /// ahead: the read of the run of small tensors past the cut fails, naming its bytes, and so
    /// the load fails before any value sees a tensor.
    #[test]
    fn a_file_cut_before_the_read_ahead_is_an_error_naming_the_bytes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("cut.safetensors");
        let file = save(&path);
        let (first, second, last) = (bytes_of(&file, 3), bytes_of(&file, 4), bytes_of(&file, 6));
        // A cut in the run `3`, `4` fails its read; one in the large tensor `5` fails the read
        // of the run after it, `6`, whole.
        let runs = [(3..=4, (first.0, second.1)), (5..=6, last)];
        for (cut_in, run) in runs {
            for i in cut_in {
                let (start, end) = bytes_of(&file, i);
                for len in [start, (start + end) / 2, end - 1] {
                    save(&path);
                    let source =
                        Source::open(Input::Path(&path), false).unwrap_or_else(|e| panic!("{e}"));
                    let header = source.header().unwrap_or_else(|e| panic!("{e}"));
                    cut(&path, len);
                    let err = source.with_data(header).map(drop).unwrap_err();
                    assert_eq!(err.to_string(), expected(&path, run), "cut at byte {len}");
                    let Error::Io { source: cause, .. } = &err else {
                        panic!("not an I/O error: {err:?}");
                    };
                    assert_eq!(cause.kind(), std::io::ErrorKind::UnexpectedEof);
                }
            }
        }
    }

    /// A file cut after its small tensors were read ahead: they are still read whole, and so is
    /// the large tensor before the cut; the large tensor the cut falls in is an error naming its
    /// bytes, however it is read, never zeroes.
    #[test]
    fn a_file_cut_after_the_read_ahead_fails_the_large_tensor_it_cuts() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("cut.safetensors");
        let file = save(&path);
        let (start, end) = bytes_of(&file, 5);
        for len in [start, (start + end) / 2, end - 1] {
            save(&path);
            let source = Source::open(Input::Path(&path), false).unwrap_or_else(|e| panic!("{e}"));
            let header = source.header().unwrap_or_else(|e| panic!("{e}"));
            let parsed = source.with_data(header).unwrap_or_else(|e| panic!("{e}"));
            cut(&path, len);
            for (i, tensor) in (0..LENS.len()).map(|i| (i, parsed.tensor(i))) {
                let (from, to) = bytes_of(&file, i);
                let saved = &file[from as usize..to as usize];
                let mut out = vec![0; tensor.byte_len()];
                if i != 5 {
                    let bytes = tensor.bytes().unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(&bytes[..], saved, "tensor `{i}`");
                    tensor.read_into(&mut out).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(out, saved, "tensor `{i}`");
                    continue;
                }
                let expected = expected(&path, (start, end));
                let bytes = tensor.bytes().map(drop).map_err(|e| e.to_string());
                assert_eq!(bytes, Err(expected.clone()), "cut at byte {len}");
                let read = tensor.read_into(&mut out).map_err(|e| e.to_string());
                assert_eq!(read, Err(expected.clone()), "cut at byte {len}");
                let staged = tensor.staged().map(drop).map_err(|e| e.to_string());
                assert_eq!(staged, Err(expected), "cut at byte {len}");
            }
        }
    }
}
