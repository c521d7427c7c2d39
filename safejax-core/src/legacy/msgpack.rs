//! Flax msgpack checkpoints, as `flax.serialization.to_bytes` and `msgpack_serialize` write
//! them, read into a [`Tree`] without running anything.
//!
//! ```
//! use safejax_core::legacy::msgpack;
//!
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/legacy");
//! let variables = msgpack::from_file(format!("{dir}/flax_mlp.msgpack"))?;
//! let kernel = variables.tensor("params.Dense_0.kernel").expect("present");
//! assert_eq!(kernel.shape(), &[8, 16]);
//! // What Python safejax writes for the same variables, byte for byte.
//! let safetensors = std::fs::read(format!("{dir}/flax_mlp.safetensors"))?;
//! assert_eq!(safejax_core::flax::serialize(&variables, None)?, safetensors);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The format
//!
//! As `flax/serialization.py` (Flax 0.7) writes it:
//!
//! - dicts are msgpack maps with string keys. Flax's `to_state_dict` has already made lists and
//!   tuples into maps keyed `"0"`, `"1"`, ...; a msgpack array (a list handed to
//!   `msgpack_serialize` as it is) is read the same way, its items named by their index;
//! - an array is extension type 1, whose payload is itself msgpack: an array
//!   `[shape, dtype name, data]`, the shape an array of integers, the dtype name as numpy spells
//!   it (`float32`, `bfloat16`, `int32`, ...), the data the array's bytes in C order. They are
//!   taken as little-endian, as Flax reads them on the machines it runs on;
//! - a numpy scalar is extension type 3, encoded the same way (shape `[]`), and read as a
//!   tensor of shape `[]`;
//! - an array of more than `MAX_CHUNK_SIZE` bytes (1 GiB) is a map
//!   `{"__msgpack_chunked_array__": true, "shape": {"0": d0, ...}, "chunks": {"0": .., ...}}`
//!   whose chunks are flat arrays (extension type 1) holding the array's elements in C order.
//!   The chunks are joined into one tensor of that shape.
//!
//! Empty dicts vanish, as everywhere in the [`tree`](crate::tree) API.
//!
//! # What is refused
//!
//! Each refusal is an [`Error::Legacy`] naming the byte offset of the value and its key path
//! (`params.Dense_0.kernel`):
//!
//! - complex numbers (extension type 2) and arrays of a complex dtype (`complex64`,
//!   `complex128`): safetensors, as Python safejax writes it, has no complex dtype;
//! - dtypes other than `bool`, `int8` to `int64`, `uint8` to `uint64`, `float16`, `bfloat16`,
//!   `float32` and `float64` (objects, strings, ...), and extension types other than 1, 2 and 3;
//! - plain msgpack values (integers, floats, booleans, strings, binary data, nil) where a dict or
//!   an array is expected. Python safejax drops them without a word; here they are refused, so
//!   that nothing is lost silently. The variables of a Flax model hold only arrays; a
//!   `TrainState` also holds a plain `step`: save its `params` (or the model's variables);
//! - map keys that are not strings, names that are empty or contain `.` (which would make keys
//!   ambiguous), a name twice in one map;
//! - a chunked array whose chunks are not flat arrays of one dtype holding exactly the elements
//!   of its shape, or whose map has other entries;
//! - nesting deeper than [`MAX_DEPTH`] levels, and bytes after the value.
//!
//! # Cost
//!
//! Every size the data declares (map, array, string and binary lengths, extension payloads,
//! shapes) is checked against the bytes left before anything is allocated for it, so hostile
//! input cannot make the reader allocate more than a small multiple of its own size. Each
//! tensor's bytes are copied once, from the input into the [`Tensor`]; no value tree of the
//! msgpack data is built on the way.

use std::path::Path;

use rmp::Marker;
use rmp::decode::{self, NumValueReadError, ValueReadError};
use safetensors::Dtype;

use crate::error::{Error, Result};
use crate::format::byte_size;
use crate::key::{MAX_DEPTH, depth_reason};
use crate::tensor::Tensor;
use crate::tree::{Node, Tree};

const FORMAT: &str = "msgpack";

/// The key that marks a map as an array split into chunks.
const CHUNKED: &str = "__msgpack_chunked_array__";

/// Flax's extension types (`_MsgpackExtType`).
const EXT_NDARRAY: i8 = 1;
const EXT_COMPLEX: i8 = 2;
const EXT_NPSCALAR: i8 = 3;

/// The longest part of a name or dtype quoted in an error.
const QUOTED: usize = 64;

/// Reads Flax msgpack bytes into a tree.
///
/// The root must be a dict (a map, or an array read as a list). See the
/// [module documentation](self) for the format and what is refused.
///
/// ```
/// use safejax_core::legacy::msgpack;
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/legacy/flax_chunked.msgpack");
/// let bytes = std::fs::read(path)?;
/// let variables = msgpack::from_slice(&bytes)?;
/// // Stored in chunks, joined again.
/// let embedding = variables.tensor("params.embed.embedding").expect("present");
/// assert_eq!(embedding.shape(), &[32, 8]);
/// assert_eq!(variables.tensor("params.norm.scale").map(|t| t.dtype()), Some(safejax_core::Dtype::BF16));
///
/// // A cut file names where it ends, and in which key.
/// let err = msgpack::from_slice(&bytes[..100]).unwrap_err();
/// assert!(err.to_string().starts_with("invalid msgpack data at byte"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_slice(bytes: &[u8]) -> Result<Tree> {
    let mut reader = Reader {
        bytes,
        pos: 0,
        key: String::new(),
    };
    let tree = match reader.value(0)? {
        Node::Tree(tree) => tree,
        Node::Tensor(_) => {
            return Err(reader.error(
                0,
                "the root is an array, not a dict: a safetensors file needs a name for each tensor",
            ));
        }
    };
    let left = reader.left();
    if left > 0 {
        return Err(reader.error(
            reader.pos,
            format!("{left} bytes follow the msgpack value, which ends here"),
        ));
    }
    Ok(tree)
}

/// Reads a Flax msgpack file (`flax.serialization.to_bytes` saved to disk) into a tree.
///
/// The file is mapped into memory while it is read, and each tensor's bytes are copied once,
/// from the map into the tree: the file is never held in memory twice. The map is gone when
/// this returns. Nothing may write or truncate the file while it is read: a truncation makes
/// the next touch of a lost page kill the process with `SIGBUS`, and a write may mix old and
/// new bytes in the tensors read.
///
/// ```
/// use safejax_core::legacy::msgpack;
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/legacy/flax_mlp.msgpack");
/// let variables = msgpack::from_file(path)?;
/// let names: Vec<String> = variables.flatten()?.into_iter().map(|(key, _)| key).collect();
/// assert_eq!(names, ["params.Dense_0.bias", "params.Dense_0.kernel", "params.Dense_1.bias", "params.Dense_1.kernel"]);
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub fn from_file(path: impl AsRef<Path>) -> Result<Tree> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    // SAFETY: the map is only read, within this function, and every read of it is
    // bounds-checked against the length taken at mapping time. What `memmap2::Mmap::map`
    // requires, that the file is not changed while mapped, is the contract documented above,
    // as for `Loader::memory_map`.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("map", path, e))?;
    from_slice(&map)
}

/// A cursor over msgpack bytes, with the key path of the value being read.
struct Reader<'a> {
    /// The input, up to the end of what is being read (an extension's payload ends before the
    /// input does). Offsets are from the start of the input.
    bytes: &'a [u8],
    pos: usize,
    /// The `.`-joined key of the value being read.
    key: String,
}

/// The entries of a map that Flax gives a meaning to: the offset of each one's value.
#[derive(Default)]
struct ChunkedParts {
    /// Of the `__msgpack_chunked_array__` key, not its value.
    marker: Option<usize>,
    shape: Option<usize>,
    chunks: Option<usize>,
}

/// The payload of an array extension: the array, its data still in the input.
struct Array<'a> {
    /// The offset of the extension value.
    at: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn error(&self, offset: usize, reason: impl Into<String>) -> Error {
        Error::legacy(FORMAT, offset as u64, self.key.clone(), reason)
    }

    /// The number of bytes left to read.
    fn left(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The marker of the next value, not consumed.
    fn peek(&self) -> Result<Marker> {
        match self.bytes.get(self.pos) {
            Some(&byte) => Ok(Marker::from_u8(byte)),
            None => Err(self.error(self.pos, "the data ends where a value should start")),
        }
    }

    /// Runs an `rmp` decoder on the bytes left, then moves past what it read.
    fn decode<T, E>(
        &mut self,
        read: impl FnOnce(&mut &'a [u8]) -> Result<T, E>,
        why: impl FnOnce(E) -> String,
    ) -> Result<T> {
        let at = self.pos;
        let mut rest = self.bytes.get(at..).unwrap_or_default();
        let result = read(&mut rest);
        self.pos = self.bytes.len() - rest.len();
        result.map_err(|e| self.error(at, why(e)))
    }

    /// Reads the length of a container, string or binary value, each item of which takes at
    /// least `unit` bytes, checking that the bytes left can hold them.
    fn length(
        &mut self,
        what: &str,
        unit: usize,
        read: fn(&mut &'a [u8]) -> Result<u32, ValueReadError<std::io::Error>>,
    ) -> Result<usize> {
        let at = self.pos;
        let len = self.decode(read, |e| value_error(e, what))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let left = self.left();
        if len.saturating_mul(unit) > left {
            return Err(self.error(
                at,
                format!(
                    "{what} declares a length of {len}, more than the {left} bytes left can hold"
                ),
            ));
        }
        Ok(len)
    }

    /// The next `len` bytes, which [`Reader::length`] checked are there.
    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        let at = self.pos;
        let bytes = at
            .checked_add(len)
            .and_then(|end| self.bytes.get(at..end))
            .ok_or_else(|| self.error(at, format!("the data ends within the next {len} bytes")))?;
        self.pos += len;
        Ok(bytes)
    }

    /// Refuses to open a container `depth` levels down.
    fn check_depth(&self, at: usize, depth: usize) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(self.error(at, format!("this value {}", depth_reason())));
        }
        Ok(())
    }

    /// Reads a dict (a map, or an array read as a list) or a tensor, `depth` containers down.
    fn value(&mut self, depth: usize) -> Result<Node> {
        let at = self.pos;
        match self.peek()? {
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                self.check_depth(at, depth)?;
                let len = self.length("a map", 2, decode::read_map_len)?;
                self.map(at, len, depth + 1)
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                self.check_depth(at, depth)?;
                let len = self.length("an array", 1, decode::read_array_len)?;
                self.list(len, depth + 1).map(Node::Tree)
            }
            marker if is_ext(marker) => self.tensor().map(Node::Tensor),
            marker => Err(self.error(
                at,
                format!(
                    "found {}, which is neither an array nor a dict: safetensors holds only \
                     tensors (Python safejax drops such values; here they are refused so that \
                     nothing is lost silently)",
                    kind(marker)
                ),
            )),
        }
    }

    /// Reads the entry `name`'s value, its name added to the key path while it is read.
    fn entry(&mut self, name: &str, depth: usize) -> Result<Node> {
        let len = self.key.len();
        if !self.key.is_empty() {
            self.key.push('.');
        }
        self.key.push_str(name);
        // An error has taken its copy of the key already.
        let node = self.value(depth);
        self.key.truncate(len);
        node
    }

    /// Reads the `len` entries of a map that starts at `at`: a dict, or a chunked array.
    fn map(&mut self, at: usize, len: usize, depth: usize) -> Result<Node> {
        let mut tree = Tree::new();
        let mut parts = ChunkedParts::default();
        for _ in 0..len {
            let key_at = self.pos;
            let name = self.name()?;
            let part = match name {
                CHUNKED => Some(&mut parts.marker),
                "shape" => Some(&mut parts.shape),
                "chunks" => Some(&mut parts.chunks),
                _ => None,
            };
            match part {
                // Read once the whole map is known to be a dict or a chunked array.
                Some(offset) => {
                    if offset.is_some() {
                        return Err(self.twice(key_at, name));
                    }
                    *offset = Some(if name == CHUNKED { key_at } else { self.pos });
                    self.skip()?;
                }
                None => {
                    let node = self.entry(name, depth)?;
                    if tree.insert(name, node).is_some() {
                        return Err(self.twice(key_at, name));
                    }
                }
            }
        }
        if let Some(marker) = parts.marker {
            if let Some((name, _)) = tree.iter().next() {
                return Err(self.error(
                    at,
                    format!(
                        "a chunked array (`{CHUNKED}`) has an entry `{}` besides `shape` and `chunks`",
                        quoted(name.as_bytes())
                    ),
                ));
            }
            return self.chunked(marker, &parts).map(Node::Tensor);
        }
        let end = self.pos;
        for (name, offset) in [("shape", parts.shape), ("chunks", parts.chunks)] {
            if let Some(offset) = offset {
                self.pos = offset;
                let node = self.entry(name, depth)?;
                tree.insert(name, node);
            }
        }
        self.pos = end;
        Ok(Node::Tree(without_empty_dicts(tree)))
    }

    /// Reads the `len` items of an array as a dict keyed by their indices.
    fn list(&mut self, len: usize, depth: usize) -> Result<Tree> {
        let mut tree = Tree::new();
        for index in 0..len {
            let name = index.to_string();
            let node = self.entry(&name, depth)?;
            tree.insert(name, node);
        }
        Ok(without_empty_dicts(tree))
    }

    fn twice(&self, at: usize, name: &str) -> Error {
        self.error(
            at,
            format!(
                "the name `{}` is in this map twice",
                quoted(name.as_bytes())
            ),
        )
    }

    /// Reads a map key: a string that can name an entry of a tree.
    fn name(&mut self) -> Result<&'a str> {
        let at = self.pos;
        let marker = self.peek()?;
        if !matches!(
            marker,
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32
        ) {
            return Err(self.error(at, format!("a map key is {}, not a string", kind(marker))));
        }
        let len = self.length("a map key", 1, decode::read_str_len)?;
        let bytes = self.take(len)?;
        let name = std::str::from_utf8(bytes).map_err(|_| {
            self.error(
                at,
                format!("the map key `{}` is not valid UTF-8", quoted(bytes)),
            )
        })?;
        if name.is_empty() || name.contains('.') {
            return Err(self.error(
                at,
                format!(
                    "the map key `{}` cannot name an entry: names must be non-empty and free of `.`",
                    quoted(bytes)
                ),
            ));
        }
        Ok(name)
    }

    /// Moves past one value of any kind, without reading it.
    ///
    /// A loop with a count of the values still to pass, not recursion: a deep value costs
    /// nothing but time.
    fn skip(&mut self) -> Result<()> {
        let mut pending: usize = 1;
        while pending > 0 {
            pending -= 1;
            let at = self.pos;
            let marker = self.peek()?;
            let items = match marker {
                Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => self
                    .length("a map", 2, decode::read_map_len)?
                    .saturating_mul(2),
                Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                    self.length("an array", 1, decode::read_array_len)?
                }
                Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                    let len = self.length("a string", 1, decode::read_str_len)?;
                    self.take(len)?;
                    0
                }
                Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                    let len = self.length("binary data", 1, decode::read_bin_len)?;
                    self.take(len)?;
                    0
                }
                marker if is_ext(marker) => {
                    let (_, size) = self.ext_header()?;
                    self.take(size)?;
                    0
                }
                Marker::Reserved => return Err(self.error(at, "found the reserved byte 0xc1")),
                marker => {
                    self.take(1 + scalar_len(marker))?;
                    0
                }
            };
            pending = pending.saturating_add(items);
        }
        Ok(())
    }

    /// Reads an extension's type and the length of its payload, checked against the bytes left.
    fn ext_header(&mut self) -> Result<(i8, usize)> {
        let at = self.pos;
        let meta = self.decode(decode::read_ext_meta, |e| {
            value_error(e, "an extension value")
        })?;
        let size = usize::try_from(meta.size).unwrap_or(usize::MAX);
        if size > self.left() {
            return Err(self.error(
                at,
                format!(
                    "an extension value declares {size} bytes, more than the {} left",
                    self.left()
                ),
            ));
        }
        Ok((meta.typeid, size))
    }

    /// Reads an array extension into a tensor: the one copy of its bytes.
    fn tensor(&mut self) -> Result<Tensor> {
        let array = self.array()?;
        let at = array.at;
        Tensor::new(array.dtype, array.shape, array.data.to_vec())
            .map_err(|e| self.error(at, e.to_string()))
    }

    /// Reads an array extension (type 1, or 3 for a numpy scalar), its data left in the input.
    fn array(&mut self) -> Result<Array<'a>> {
        let at = self.pos;
        let marker = self.peek()?;
        if !is_ext(marker) {
            return Err(self.error(
                at,
                format!(
                    "expected an array (extension type 1), found {}",
                    kind(marker)
                ),
            ));
        }
        let (typeid, size) = self.ext_header()?;
        match typeid {
            EXT_NDARRAY | EXT_NPSCALAR => {}
            EXT_COMPLEX => {
                return Err(self.error(
                    at,
                    "refused: a complex number (extension type 2), and safetensors (as Python \
                     safejax writes it) has no complex dtype",
                ));
            }
            other => {
                return Err(self.error(
                    at,
                    format!(
                        "unknown extension type {other}: Flax writes arrays as type 1 and \
                         numpy scalars as type 3"
                    ),
                ));
            }
        }
        let whole = self.bytes;
        let end = self.pos + size;
        self.bytes = whole.get(..end).unwrap_or(whole);
        let array = self.array_payload(at)?;
        if self.pos != end {
            return Err(self.error(
                self.pos,
                format!(
                    "{} bytes follow the array's data inside its extension value",
                    end - self.pos
                ),
            ));
        }
        self.bytes = whole;
        Ok(array)
    }

    /// Reads `[shape, dtype name, data]`, the payload of the extension at `at`.
    fn array_payload(&mut self, at: usize) -> Result<Array<'a>> {
        let payload_at = self.pos;
        let what = "an array's payload";
        let marker = self.peek()?;
        if !matches!(
            marker,
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32
        ) {
            return Err(self.error(
                payload_at,
                format!(
                    "{what} must be an array [shape, dtype, data], found {}",
                    kind(marker)
                ),
            ));
        }
        let parts = self.length(what, 1, decode::read_array_len)?;
        if parts != 3 {
            return Err(self.error(
                payload_at,
                format!("{what} must be an array [shape, dtype, data], found one of {parts} items"),
            ));
        }
        let shape = self.shape()?;
        let dtype_at = self.pos;
        let dtype = numpy_dtype(self.text("the dtype name")?)
            .map_err(|reason| self.error(dtype_at, reason))?;
        let data = self.text("the array's data")?;
        let needed = byte_size(dtype, &shape)
            .map_err(|reason| self.error(at, format!("a shape {shape:?} {reason}")))?;
        if needed != data.len() {
            return Err(self.error(
                at,
                format!(
                    "a {dtype} array of shape {shape:?} needs {needed} bytes, its data has {}",
                    data.len()
                ),
            ));
        }
        Ok(Array {
            at,
            dtype,
            shape,
            data,
        })
    }

    /// Reads a shape: an array of non-negative integers.
    fn shape(&mut self) -> Result<Vec<usize>> {
        let at = self.pos;
        let marker = self.peek()?;
        if !matches!(
            marker,
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32
        ) {
            return Err(self.error(
                at,
                format!(
                    "a shape must be an array of integers, found {}",
                    kind(marker)
                ),
            ));
        }
        let rank = self.length("a shape", 1, decode::read_array_len)?;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(self.dimension()?);
        }
        Ok(shape)
    }

    /// Reads one dimension of a shape.
    fn dimension(&mut self) -> Result<usize> {
        self.decode(decode::read_int::<usize, _>, |e| match e {
            NumValueReadError::OutOfRange => {
                "a dimension is negative or too large for this machine".to_owned()
            }
            NumValueReadError::TypeMismatch(marker) => {
                format!("a dimension must be an integer, found {}", kind(marker))
            }
            NumValueReadError::InvalidMarkerRead(_) | NumValueReadError::InvalidDataRead(_) => {
                "the data ends inside a dimension".to_owned()
            }
        })
    }

    /// Reads a string or binary value's bytes.
    fn text(&mut self, what: &str) -> Result<&'a [u8]> {
        let at = self.pos;
        let len = match self.peek()? {
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                self.length(what, 1, decode::read_str_len)?
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                self.length(what, 1, decode::read_bin_len)?
            }
            marker => {
                return Err(self.error(
                    at,
                    format!(
                        "{what} must be a string or binary data, found {}",
                        kind(marker)
                    ),
                ));
            }
        };
        self.take(len)
    }

    /// Joins the chunks of the chunked array whose `__msgpack_chunked_array__` key is at
    /// `marker`; the reader ends where it was.
    fn chunked(&mut self, marker: usize, parts: &ChunkedParts) -> Result<Tensor> {
        let end = self.pos;
        let missing = |part: &str| {
            self.error(
                marker,
                format!("a chunked array (`{CHUNKED}`) has no `{part}`"),
            )
        };
        let shape_at = parts.shape.ok_or_else(|| missing("shape"))?;
        let chunks_at = parts.chunks.ok_or_else(|| missing("chunks"))?;
        let key = self.key.len();
        self.pos = shape_at;
        self.key.push_str(if key == 0 { "shape" } else { ".shape" });
        let shape = self.numbered("a chunked array's shape", |reader, _| reader.dimension())?;
        self.key.truncate(key);
        self.pos = chunks_at;
        self.key
            .push_str(if key == 0 { "chunks" } else { ".chunks" });
        let chunks = self.numbered("a chunked array's chunks", Reader::chunk)?;
        self.key.truncate(key);
        let joined = self.join(marker, shape, &chunks);
        self.pos = end;
        joined
    }

    /// Reads one chunk of a chunked array: a flat array.
    fn chunk(&mut self, at: usize) -> Result<Array<'a>> {
        let chunk = self.array()?;
        if chunk.shape.len() != 1 {
            return Err(self.error(
                at,
                format!(
                    "a chunk must be a flat array, found one of shape {:?}",
                    chunk.shape
                ),
            ));
        }
        Ok(chunk)
    }

    /// Copies chunks into one tensor of `shape`.
    fn join(&self, marker: usize, shape: Vec<usize>, chunks: &[Array<'a>]) -> Result<Tensor> {
        let Some(first) = chunks.first() else {
            return Err(self.error(marker, "a chunked array has no chunks"));
        };
        let dtype = first.dtype;
        if let Some((index, chunk)) = chunks.iter().enumerate().find(|(_, c)| c.dtype != dtype) {
            return Err(self.error(
                chunk.at,
                format!(
                    "chunk {index} is {}, chunk 0 is {dtype}: the chunks of an array share its dtype",
                    chunk.dtype
                ),
            ));
        }
        // The chunks are slices of the input: their sum cannot overflow.
        let total: usize = chunks.iter().map(|chunk| chunk.data.len()).sum();
        let needed = byte_size(dtype, &shape)
            .map_err(|reason| self.error(marker, format!("a shape {shape:?} {reason}")))?;
        if needed != total {
            return Err(self.error(
                marker,
                format!(
                    "the chunks hold {total} bytes, a {dtype} array of shape {shape:?} needs {needed}"
                ),
            ));
        }
        let mut data = Vec::with_capacity(total);
        for chunk in chunks {
            data.extend_from_slice(chunk.data);
        }
        Tensor::new(dtype, shape, data).map_err(|e| self.error(marker, e.to_string()))
    }

    /// Reads a map keyed `"0"`, `"1"`, ... (a Python tuple in Flax's encoding) into its values
    /// in the order of their keys; `item` reads a value, given its offset.
    fn numbered<T>(
        &mut self,
        what: &str,
        mut item: impl FnMut(&mut Self, usize) -> Result<T>,
    ) -> Result<Vec<T>> {
        let at = self.pos;
        let marker = self.peek()?;
        if !matches!(marker, Marker::FixMap(_) | Marker::Map16 | Marker::Map32) {
            return Err(self.error(
                at,
                format!(
                    "{what} must be a map keyed \"0\", \"1\", ..., found {}",
                    kind(marker)
                ),
            ));
        }
        let len = self.length(what, 2, decode::read_map_len)?;
        // Grown with what is read, not with what the data declares.
        let mut items = Vec::new();
        for _ in 0..len {
            let key_at = self.pos;
            let name = self.name()?;
            let index = name
                .parse::<usize>()
                .ok()
                .filter(|&index| index < len && index.to_string() == name)
                .ok_or_else(|| {
                    self.error(
                        key_at,
                        format!(
                            "{what} has a key `{}`: its keys must be \"0\" to \"{}\"",
                            quoted(name.as_bytes()),
                            len.saturating_sub(1)
                        ),
                    )
                })?;
            let value_at = self.pos;
            let key = self.key.len();
            self.key.push('.');
            self.key.push_str(name);
            let value = item(self, value_at)?;
            self.key.truncate(key);
            items.push((index, key_at, value));
        }
        items.sort_by_key(|&(index, _, _)| index);
        // `len` keys below `len`: all are there unless one is twice.
        for pair in items.windows(2) {
            if let [(first, _, _), (second, key_at, _)] = pair
                && first == second
            {
                return Err(self.twice(*key_at, &second.to_string()));
            }
        }
        Ok(items.into_iter().map(|(_, _, value)| value).collect())
    }
}

/// `tree` without its entries that are empty dicts (whose own empty dicts were taken out
/// already), as Python's flattening drops them.
fn without_empty_dicts(mut tree: Tree) -> Tree {
    let empty: Vec<String> = tree
        .iter()
        .filter(|(_, node)| matches!(node, Node::Tree(dict) if dict.is_empty()))
        .map(|(name, _)| name.clone())
        .collect();
    for name in empty {
        tree.remove(&name);
    }
    tree
}

/// The safetensors dtype of a numpy dtype name (`arr.dtype.name`), or why there is none.
fn numpy_dtype(name: &[u8]) -> Result<Dtype, String> {
    Ok(match name {
        b"bool" => Dtype::BOOL,
        b"int8" => Dtype::I8,
        b"int16" => Dtype::I16,
        b"int32" => Dtype::I32,
        b"int64" => Dtype::I64,
        b"uint8" => Dtype::U8,
        b"uint16" => Dtype::U16,
        b"uint32" => Dtype::U32,
        b"uint64" => Dtype::U64,
        b"float16" => Dtype::F16,
        b"bfloat16" => Dtype::BF16,
        b"float32" => Dtype::F32,
        b"float64" => Dtype::F64,
        _ if name.starts_with(b"complex") => {
            return Err(format!(
                "refused: the dtype `{}` is complex, and safetensors (as Python safejax writes \
                 it) has no complex dtype",
                quoted(name)
            ));
        }
        _ => {
            return Err(format!(
                "the dtype `{}` has no safetensors counterpart (bool, int8 to int64, uint8 to \
                 uint64, float16, bfloat16, float32, float64)",
                quoted(name)
            ));
        }
    })
}

/// Whether `marker` starts an extension value.
fn is_ext(marker: Marker) -> bool {
    matches!(
        marker,
        Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32
    )
}

/// The bytes that follow the marker of a scalar (nil, a boolean, a number).
fn scalar_len(marker: Marker) -> usize {
    match marker {
        Marker::U8 | Marker::I8 => 1,
        Marker::U16 | Marker::I16 => 2,
        Marker::U32 | Marker::I32 | Marker::F32 => 4,
        Marker::U64 | Marker::I64 | Marker::F64 => 8,
        _ => 0,
    }
}

/// What kind of value `marker` starts, for messages.
fn kind(marker: Marker) -> &'static str {
    match marker {
        Marker::FixPos(_)
        | Marker::FixNeg(_)
        | Marker::U8
        | Marker::U16
        | Marker::U32
        | Marker::U64
        | Marker::I8
        | Marker::I16
        | Marker::I32
        | Marker::I64 => "an integer",
        Marker::F32 | Marker::F64 => "a float",
        Marker::True | Marker::False => "a boolean",
        Marker::Null => "nil",
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => "a string",
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => "binary data",
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => "an array",
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => "a map",
        Marker::Reserved => "the reserved byte 0xc1",
        _ => "an extension value",
    }
}

/// Why a length or header could not be read.
fn value_error(error: ValueReadError<std::io::Error>, what: &str) -> String {
    match error {
        ValueReadError::TypeMismatch(marker) => format!("expected {what}, found {}", kind(marker)),
        ValueReadError::InvalidMarkerRead(_) | ValueReadError::InvalidDataRead(_) => {
            format!("the data ends inside the header of {what}")
        }
    }
}

/// Bytes of a name or dtype for a message: lossy UTF-8, cut after [`QUOTED`] characters.
fn quoted(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut cut: String = text.chars().take(QUOTED).collect();
    if cut.len() < text.len() {
        cut.push_str("...");
    }
    cut
}
