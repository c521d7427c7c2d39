//! A file read in pieces: its header, then only the byte ranges of its data that a load reads.
//! What object storage and other remote readers hand a load: a tensor whose bytes were not
//! fetched is an error when it is read, never zeroes.

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{self, LEN_BYTES};
use crate::source;

/// Bytes that a fetch returned, kept as they came (a `bytes::Bytes`, a `Vec<u8>`, ...).
type Chunk = Box<dyn AsRef<[u8]> + Send + Sync>;

/// The bytes of a remote file that arrive while a load runs: what a reader that streams its
/// fetches gives [`Fetched::stream_from`], so that each tensor is copied from the bytes that
/// came over the network straight into its array, and bytes already read can be let go.
///
/// ```
/// use std::ops::Range;
/// use std::sync::Arc;
/// use ndarray::{Array1, array};
/// use safejax_core::{Loader, Part, Saver, fetched::{Fetched, RangeSource}};
///
/// /// The file in memory, handed out in pieces of 3 bytes, as a network delivers it.
/// struct Pieces(Vec<u8>);
///
/// impl RangeSource for Pieces {
///     fn read(&self, at: Range<u64>, take: &mut dyn FnMut(&[u8])) -> std::io::Result<()> {
///         let bytes = self.0.get(at.start as usize..at.end as usize);
///         let bytes = bytes.ok_or_else(|| std::io::Error::other("past the end"))?;
///         bytes.chunks(3).for_each(take);
///         Ok(())
///     }
/// }
///
/// let file = Saver::new().to_bytes(&vec![array![1.0f32, 2.0], array![3.0f32]])?;
/// let head_len = 8 + file[..8].iter().rev().fold(0, |n, b| n << 8 | usize::from(*b));
/// let mut fetched = Fetched::new("mem://model", file[..head_len].to_vec(), file.len() as u64)?;
/// fetched.stream_from(Arc::new(Pieces(file.clone())));
/// let loaded = Loader::new().read::<Vec<Array1<f32>>>(&[Part::fetched(&fetched)])?;
/// assert_eq!(loaded.value, [array![1.0f32, 2.0], array![3.0f32]]);
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub trait RangeSource: Send + Sync {
    /// Hands the bytes `at` of the file to `take`, in order, in one piece or more, once they
    /// have come; an error if they will not. The pieces must hold exactly `at`'s bytes.
    fn read(&self, at: Range<u64>, take: &mut dyn FnMut(&[u8])) -> io::Result<()>;
}

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
    /// Where bytes not in `chunks` come from, if they are streamed.
    source: Option<Arc<dyn RangeSource>>,
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<Range<u64>> = self.ranges().collect();
        f.debug_struct("Fetched")
            .field("name", &self.name)
            .field("head_len", &self.head.len())
            .field("file_len", &self.file_len)
            .field("ranges", &ranges)
            .field("streamed", &self.source.is_some())
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
            source: None,
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

    /// Reads the bytes of the file that no [`Fetched::insert`]ed range holds from `source`,
    /// as the load asks for them (see [`RangeSource`]).
    pub fn stream_from(&mut self, source: Arc<dyn RangeSource>) {
        self.source = Some(source);
    }

    /// Stops reading from the source given to [`Fetched::stream_from`], letting it go.
    pub fn stop_streaming(&mut self) {
        self.source = None;
    }

    /// Whether bytes not fetched yet may still come from a source.
    pub(crate) fn streams(&self) -> bool {
        self.source.is_some()
    }

    /// Copies the bytes `at` of the file into `out`, exactly as long: from a fetched range, or
    /// from the source as they come. Every byte of `out` is initialized when this returns `Ok`.
    pub(crate) fn read_uninit(&self, at: Range<u64>, out: &mut [MaybeUninit<u8>]) -> Result<()> {
        let copy = |out: &mut [MaybeUninit<u8>], from: usize, bytes: &[u8]| {
            let to = out.get_mut(from..from + bytes.len())?;
            // SAFETY: `to` is `bytes.len()` bytes long; `out` is borrowed mutably, so it
            // cannot overlap `bytes`, which is borrowed shared.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), to.as_mut_ptr().cast(), bytes.len())
            };
            Some(())
        };
        if let Some(bytes) = self.slice(at.clone()) {
            return copy(out, 0, bytes).ok_or_else(|| self.not_fetched(at));
        }
        let Some(source) = &self.source else {
            return Err(self.not_fetched(at));
        };
        let mut filled = 0;
        let mut overflow = false;
        let read = source.read(at.clone(), &mut |piece| {
            overflow |= copy(out, filled, piece).is_none();
            filled += piece.len();
        });
        read.map_err(|e| Error::io("read", &self.name, e))?;
        if overflow || filled != out.len() {
            let reason = format!(
                "bytes {}..{} came as {filled} bytes, not {}",
                at.start,
                at.end,
                out.len()
            );
            return Err(Error::io("read", &self.name, io::Error::other(reason)));
        }
        Ok(())
    }

    /// The ranges of the file fetched so far, in order.
    pub fn ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.chunks
            .iter()
            .map(|(start, bytes)| *start..*start + (**bytes).as_ref().len() as u64)
    }

    /// The bytes `at` of the file, if a fetched range holds them all.
    pub(crate) fn slice(&self, at: Range<u64>) -> Option<&[u8]> {
        if at.is_empty() {
            // An empty tensor has no bytes to fetch.
            return Some(&[]);
        }
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

    /// The file, handed out in pieces of `piece` bytes; refusing the bytes `refused`.
    struct Pieces {
        file: Vec<u8>,
        piece: usize,
        refused: Option<Range<u64>>,
    }

    impl RangeSource for Pieces {
        fn read(&self, at: Range<u64>, take: &mut dyn FnMut(&[u8])) -> io::Result<()> {
            if self.refused.as_ref() == Some(&at) {
                return Err(io::Error::other("connection reset"));
            }
            let bytes = &self.file[at.start as usize..at.end as usize];
            bytes.chunks(self.piece).for_each(take);
            Ok(())
        }
    }

    #[test]
    fn streamed_tensors_load_in_every_way_and_a_failed_read_assigns_nothing() {
        let file = file();
        let mut fetched = header_of(&file);
        fetched.stream_from(Arc::new(Pieces {
            file: file.clone(),
            piece: 3,
            refused: None,
        }));
        let part = [Part::fetched(&fetched)];
        let loaded = Loader::new().read::<Vec<Array1<f32>>>(&part);
        let expected = [
            array![1.0f32, 2.0],
            array![3.0f32],
            array![4.0f32, 5.0, 6.0],
        ];
        assert_eq!(loaded.unwrap_or_else(|e| panic!("{e}")).value, expected);
        let mut value: Vec<Array1<f32>> =
            vec![Array1::zeros(2), Array1::zeros(1), Array1::zeros(3)];
        Loader::new()
            .read_into(&mut value, &part)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(value, expected);
        let (tree, _) =
            crate::flax::read(&[crate::Input::Fetched(&fetched)]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tree.len(), 3);

        let refused = fetched.tensors()[1].1.clone();
        fetched.stream_from(Arc::new(Pieces {
            file: file.clone(),
            piece: 3,
            refused: Some(refused),
        }));
        let part = [Part::fetched(&fetched)];
        let err = Loader::new().read::<Vec<Array1<f32>>>(&part).unwrap_err();
        assert!(err.to_string().contains("connection reset"), "{err}");
        assert!(err.to_string().contains("s3://bucket/model"), "{err}");
        let mut value: Vec<Array1<f32>> =
            vec![Array1::zeros(2), Array1::zeros(1), Array1::zeros(3)];
        assert!(Loader::new().read_into(&mut value, &part).is_err());
        assert_eq!(value[0], Array1::<f32>::zeros(2), "nothing assigned");
        fetched.stop_streaming();
        let err = Loader::new()
            .read::<Vec<Array1<f32>>>(&[Part::fetched(&fetched)])
            .unwrap_err();
        assert!(err.to_string().contains("were not fetched"), "{err}");
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
