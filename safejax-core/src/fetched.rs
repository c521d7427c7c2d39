//! A file read in pieces: its header, then only the byte ranges of its data that a load reads.
//! What object storage and other remote readers hand a load: a tensor whose bytes were not
//! fetched is an error when it is read, never zeroes.

use std::fmt;
use std::io;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::format::{self, LEN_BYTES};
use crate::source;

/// Bytes that a fetch returned, kept as they came (a `bytes::Bytes`, a `Vec<u8>`, ...).
type Chunk = Box<dyn AsRef<[u8]> + Send + Sync>;

/// A safetensors file known by its header and the byte ranges of its data fetched so far.
///
/// A remote reader fetches the first 8 + N bytes (the header length and the header), makes a
/// `Fetched` of them, asks [`Fetched::tensors`] where each tensor's bytes are, fetches the
/// ranges it needs and [`Fetched::insert`]s them, then loads through
/// [`Part::fetched`](crate::Part::fetched) as from any other file. The tensors are read from the
/// fetched ranges (one copy, into the value); a tensor not wholly inside a fetched range fails
/// the load with an error naming its bytes.
///
/// ```
/// use ndarray::{Array1, array};
/// use safejax_core::{Loader, Part, Saver, fetched::Fetched};
///
/// let file = Saver::new().to_bytes(&vec![array![1.0f32, 2.0], array![3.0f32]])?;
/// let head_len = 8 + file[..8].iter().rev().fold(0, |n, b| n << 8 | usize::from(*b));
/// let mut fetched = Fetched::new("mem://model", file[..head_len].to_vec(), file.len() as u64)?;
/// for (name, bytes) in fetched.tensors() {
///     fetched.insert(bytes.start, file[bytes.start as usize..bytes.end as usize].to_vec());
///     assert!(name == "0" || name == "1");
/// }
/// let loaded = Loader::new().read::<Vec<Array1<f32>>>(&[Part::fetched(&fetched)])?;
/// assert_eq!(loaded.value, [array![1.0f32, 2.0], array![3.0f32]]);
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub struct Fetched {
    name: String,
    head: Vec<u8>,
    file_len: u64,
    /// Fetched ranges by their first byte in the file, sorted.
    chunks: Vec<(u64, Chunk)>,
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<Range<u64>> = self.ranges().collect();
        f.debug_struct("Fetched")
            .field("name", &self.name)
            .field("head_len", &self.head.len())
            .field("file_len", &self.file_len)
            .field("ranges", &ranges)
            .finish()
    }
}

impl Fetched {
    /// The file `name` (a URL, for errors) of `file_len` bytes, from its first bytes `head`: the
    /// 8-byte header length and the header, nothing after. The header is checked here, against
    /// the format's limit and the file's length.
    pub fn new(name: impl Into<String>, head: Vec<u8>, file_len: u64) -> Result<Self> {
        let name = name.into();
        let in_name = |e| source::in_file(std::path::Path::new(&name), e);
        let len = format::header_len(&head, file_len).map_err(in_name)?;
        if head.len() != LEN_BYTES + len {
            let reason = format!(
                "the header is {len} bytes long, but {} bytes were given",
                head.len() - LEN_BYTES.min(head.len())
            );
            return Err(in_name(Error::format(LEN_BYTES as u64, reason)));
        }
        let mut fetched = Fetched {
            name: String::new(),
            head,
            file_len,
            chunks: Vec::new(),
        };
        fetched.header().map_err(in_name)?;
        fetched.name = name;
        Ok(fetched)
    }

    /// The name given to [`Fetched::new`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header length and the header: the file's first bytes.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Every tensor's name and where its bytes are in the file, in data order.
    pub fn tensors(&self) -> Vec<(String, Range<u64>)> {
        // Checked by `new`.
        let Ok(header) = self.header() else {
            return Vec::new();
        };
        (0..header.len())
            .map(|i| (header.tensor(i).0.to_owned(), header.byte_range(i)))
            .collect()
    }

    /// Adds the bytes fetched from byte `offset` of the file on. Ranges may be given in any
    /// order; a tensor is read from the one range that holds it whole.
    pub fn insert(&mut self, offset: u64, bytes: impl AsRef<[u8]> + Send + Sync + 'static) {
        let at = self.chunks.partition_point(|(start, _)| *start <= offset);
        self.chunks.insert(at, (offset, Box::new(bytes)));
    }

    /// The ranges of the file fetched so far, in order.
    pub fn ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.chunks
            .iter()
            .map(|(start, bytes)| *start..*start + (**bytes).as_ref().len() as u64)
    }

    /// The bytes `at` of the file, if a fetched range holds them all.
    pub(crate) fn slice(&self, at: Range<u64>) -> Option<&[u8]> {
        let after = self.chunks.partition_point(|(start, _)| *start <= at.start);
        self.chunks[..after]
            .iter()
            .rev()
            .find_map(|(start, bytes)| {
                let bytes = (**bytes).as_ref();
                let from = usize::try_from(at.start - start).ok()?;
                let to = usize::try_from(at.end - start).ok()?;
                bytes.get(from..to)
            })
    }

    /// The error for reading bytes `at`, which were not fetched.
    pub(crate) fn not_fetched(&self, at: Range<u64>) -> Error {
        let reason = format!(
            "bytes {}..{} were not fetched: the load read a tensor it did not plan to",
            at.start, at.end
        );
        Error::io("read", &self.name, io::Error::other(reason))
    }

    /// The checked header.
    pub(crate) fn header(&self) -> Result<format::FileHeader<'_>> {
        let data_len = self.file_len - self.head.len() as u64;
        let data_len = usize::try_from(data_len).map_err(|_| {
            Error::format(0, format!("{data_len} bytes of data do not fit in memory"))
        })?;
        format::FileHeader::parse(&self.head[LEN_BYTES..], data_len)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, array};

    use super::*;
    use crate::{Loader, Part, SafeParams};

    fn file() -> Vec<u8> {
        let weights = vec![
            array![1.0f32, 2.0],
            array![3.0f32],
            array![4.0f32, 5.0, 6.0],
        ];
        weights.to_bytes().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The file's header, as a `Fetched` with no data yet.
    fn header_of(file: &[u8]) -> Fetched {
        let len = file[..LEN_BYTES]
            .iter()
            .rev()
            .fold(0, |n, b| n << 8 | usize::from(*b));
        let head = file[..LEN_BYTES + len].to_vec();
        Fetched::new("s3://bucket/model", head, file.len() as u64).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn tensors_are_read_from_the_ranges_that_hold_them() {
        let file = file();
        let mut fetched = header_of(&file);
        let tensors = fetched.tensors();
        assert_eq!(tensors.len(), 3);
        // One range holding the first two tensors, one for the third, given out of order.
        let (first, third) = (tensors[0].1.start, tensors[2].1.clone());
        fetched.insert(third.start, file[third.start as usize..].to_vec());
        fetched.insert(first, file[first as usize..third.start as usize].to_vec());
        let loaded = Loader::new()
            .read::<Vec<Array1<f32>>>(&[Part::fetched(&fetched)])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.value[2], array![4.0f32, 5.0, 6.0]);
    }

    #[test]
    fn a_tensor_not_fetched_is_an_error_naming_its_bytes_never_zeroes() {
        let file = file();
        let mut fetched = header_of(&file);
        let tensors = fetched.tensors();
        let missing = tensors[1].1.clone();
        for (_, bytes) in tensors.iter().filter(|(name, _)| name != "1") {
            let range = bytes.start as usize..bytes.end as usize;
            fetched.insert(bytes.start, file[range].to_vec());
        }
        let err = Loader::new()
            .read::<Vec<Array1<f32>>>(&[Part::fetched(&fetched)])
            .unwrap_err();
        let expected = format!(
            "bytes {}..{} were not fetched: the load read a tensor it did not plan to",
            missing.start, missing.end
        );
        assert!(err.to_string().contains(&expected), "{err}");
        assert!(err.to_string().contains("s3://bucket/model"), "{err}");
        let mut value = vec![
            array![0.0f32, 0.0],
            array![9.0f32],
            array![0.0f32, 0.0, 0.0],
        ];
        let before = value.clone();
        let part = [Part::fetched(&fetched)];
        assert!(Loader::new().read_into(&mut value, &part).is_err());
        assert_eq!(value, before, "nothing assigned");
    }

    #[test]
    fn a_header_longer_than_the_file_or_cut_is_refused() {
        let file = file();
        let whole = header_of(&file);
        let head = whole.head().to_vec();
        let err = Fetched::new("u", head.clone(), head.len() as u64 - 1).unwrap_err();
        assert!(err.to_string().contains("(in `u`)"), "{err}");
        let err = Fetched::new("u", head[..head.len() - 1].to_vec(), file.len() as u64);
        assert!(err.is_err());
        let err = Fetched::new("u", head[..4].to_vec(), file.len() as u64);
        assert!(err.is_err());
    }
}
