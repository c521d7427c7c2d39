//! numpy `.npy` arrays (format versions 1.0, 2.0 and 3.0), read strictly and without pickles.
//!
//! A file is the magic `\x93NUMPY`, the version, the length of the header (`u16` in 1.0, `u32`
//! in 2.0 and 3.0), the header itself, a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces to a line
//! (Latin-1 in 1.0 and 2.0, UTF-8 in 3.0), then the elements. The dict must have exactly those
//! three keys; `descr` must be one of the numeric dtypes safetensors holds (`|b1`, `|i1`, `|u1`,
//! `<i2`..`<i8`, `<u2`..`<u8`, `<f2`, `<f4`, `<f8`, each also big-endian with `>`) or a fixed
//! width unicode string (`<U38`); object arrays (`|O`, which hold pickles), structured, void,
//! complex and datetime dtypes are refused. Big-endian elements are swapped to little-endian
//! and Fortran-ordered arrays are transposed to row-major order, so a tensor always holds what
//! safetensors writes.

use std::io::{self, Read};

use safetensors::Dtype;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The magic string that starts every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header read, as numpy's own reader allows by default (`max_header_size`): a
/// header only grows past it with a structured dtype, which is refused anyway.
pub const MAX_HEADER_LEN: usize = 10_000;

/// An array of an `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NpyArray {
    /// A numeric or boolean array: little-endian, row-major.
    Tensor(Tensor),
    /// A fixed-width unicode array (`<U38`), as Objax's list of variable names is saved.
    Strings {
        /// The shape.
        shape: Vec<usize>,
        /// The strings in row-major order, without the NUL padding of their fixed width.
        values: Vec<String>,
    },
}

impl NpyArray {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            NpyArray::Tensor(tensor) => tensor.shape(),
            NpyArray::Strings { shape, .. } => shape,
        }
    }
}

/// Reads an `.npy` file.
///
/// ```
/// use safejax_core::Dtype;
/// use safejax_core::legacy::npz::npy::{self, NpyArray};
///
/// // np.save of np.array([1.5, -2.0], dtype='>f4'): big-endian, swapped on reading.
/// let mut bytes = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
/// let header = "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }";
/// bytes.extend(format!("{header:<117}\n").bytes());
/// bytes.extend([0x3f, 0xc0, 0, 0, 0xc0, 0, 0, 0]);
/// let NpyArray::Tensor(tensor) = npy::read(&bytes)? else { unreachable!() };
/// assert_eq!(tensor.dtype(), Dtype::F32);
/// assert_eq!(tensor.to_array::<f32, ndarray::Ix1>()?, ndarray::array![1.5, -2.0]);
///
/// // Object arrays are pickles: refused.
/// let mut bytes = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
/// let header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }";
/// bytes.extend(format!("{header:<117}\n").bytes());
/// let err = npy::read(&bytes).unwrap_err().to_string();
/// assert!(err.contains("object arrays"), "{err}");
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub fn read(bytes: &[u8]) -> Result<NpyArray> {
    let mut reader = bytes;
    read_from(&mut reader, bytes.len() as u64, "", &|offset, error| {
        Error::legacy("npy", offset, "", format!("cannot read: {error}"))
    })
}

/// Reads an `.npy` file of `len` bytes from `reader`; errors name `key`, and `io` turns a
/// failed read at an offset into the error to return. Nothing larger than `len` is allocated.
pub(crate) fn read_from(
    reader: &mut impl Read,
    len: u64,
    key: &str,
    io: &dyn Fn(u64, io::Error) -> Error,
) -> Result<NpyArray> {
    let fail = |offset: u64, reason: String| Error::legacy("npy", offset, key, reason);
    let mut preamble = [0u8; 8];
    if len < preamble.len() as u64 + 2 {
        return Err(fail(
            len,
            format!("ends after {len} bytes, inside the magic, version and header length"),
        ));
    }
    reader
        .read_exact(&mut preamble)
        .map_err(|error| io(0, error))?;
    let (magic, version) = preamble.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(fail(
            0,
            format!("starts with {magic:02x?}, not the magic `\\x93NUMPY`"),
        ));
    }
    let (header_len, header_start) = match version {
        [1, 0] => {
            let mut n = [0u8; 2];
            reader.read_exact(&mut n).map_err(|error| io(8, error))?;
            (u64::from(u16::from_le_bytes(n)), 10u64)
        }
        [2 | 3, 0] => {
            let mut n = [0u8; 4];
            reader.read_exact(&mut n).map_err(|error| io(8, error))?;
            (u64::from(u32::from_le_bytes(n)), 12u64)
        }
        _ => {
            return Err(fail(
                6,
                format!("has format version {version:?}; versions 1.0, 2.0 and 3.0 are read"),
            ));
        }
    };
    if header_len > MAX_HEADER_LEN as u64 {
        return Err(fail(
            8,
            format!("declares a header of {header_len} bytes, more than the {MAX_HEADER_LEN} read"),
        ));
    }
    let data_start = header_start + header_len;
    if data_start > len {
        return Err(fail(
            8,
            format!("declares a header of {header_len} bytes, past the end at byte {len}"),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    reader
        .read_exact(&mut header)
        .map_err(|error| io(header_start, error))?;
    if version == [3, 0]
        && let Err(e) = std::str::from_utf8(&header)
    {
        return Err(fail(
            header_start + e.valid_up_to() as u64,
            "has a header that is not UTF-8".to_owned(),
        ));
    }
    let parsed = Parser {
        bytes: &header,
        at: 0,
        base: header_start,
        key,
    }
    .header()?;
    let data_len = parsed
        .shape
        .iter()
        .try_fold(parsed.dtype.size(), |n, &dim| n.checked_mul(dim))
        .filter(|&n| n as u64 <= u64::MAX - data_start)
        .ok_or_else(|| {
            fail(
                header_start,
                format!(
                    "has shape {:?} of {}-byte elements, whose size overflows",
                    parsed.shape,
                    parsed.dtype.size()
                ),
            )
        })?;
    let end = data_start + data_len as u64;
    if end != len {
        let reason = if end > len {
            format!(
                "holds {} bytes of data where shape {:?} of {}-byte elements needs {data_len}",
                len - data_start,
                parsed.shape,
                parsed.dtype.size()
            )
        } else {
            format!(
                "has {} bytes after the {data_len} bytes of its shape {:?}",
                len - end,
                parsed.shape
            )
        };
        return Err(fail(data_start, reason));
    }
    let mut data = vec![0u8; data_len];
    reader
        .read_exact(&mut data)
        .map_err(|error| io(data_start, error))?;
    if parsed.fortran_order && parsed.shape.len() > 1 {
        data = fortran_to_c(&data, &parsed.shape, parsed.dtype.size());
    }
    parsed.dtype.array(data, parsed.shape, data_start, &fail)
}

/// The element type of a header's `descr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Descr {
    /// A dtype safetensors holds, and whether the file stores it big-endian.
    Number {
        dtype: Dtype,
        /// Bytes per element.
        size: usize,
        big_endian: bool,
    },
    /// Fixed-width unicode of this many UCS-4 characters.
    Unicode { chars: usize, big_endian: bool },
}

impl Descr {
    /// The size of one element in bytes.
    fn size(self) -> usize {
        match self {
            Descr::Number { size, .. } => size,
            // Checked not to overflow when parsed.
            Descr::Unicode { chars, .. } => chars * 4,
        }
    }

    /// Parses a `descr` string such as `<f4`, `|b1` or `<U38`; the error says why one is not
    /// read.
    fn parse(descr: &str) -> Result<Self, String> {
        let mut chars = descr.chars();
        let order = chars.next();
        let kind = chars.next();
        let digits = chars.as_str();
        let big_endian = match order {
            Some('<') => false,
            Some('>') => true,
            Some('|') => false,
            _ => return Err(format!("dtype `{descr}` has no byte order `<`, `>` or `|`")),
        };
        let size = if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            digits.parse::<usize>().ok()
        };
        let (dtype, size) = match (kind, size) {
            (Some('O'), _) => {
                return Err(format!(
                    "dtype `{descr}` is an object array, which numpy stores as a pickle; object arrays are not read"
                ));
            }
            (Some('U'), Some(chars)) if order != Some('|') => {
                if chars == 0 || chars.checked_mul(4).is_none() {
                    return Err(format!("dtype `{descr}` has no width numpy saves"));
                }
                return Ok(Descr::Unicode { chars, big_endian });
            }
            (Some('b'), Some(1)) => (Dtype::BOOL, 1),
            (Some('i'), Some(1)) => (Dtype::I8, 1),
            (Some('u'), Some(1)) => (Dtype::U8, 1),
            (Some('i'), Some(2)) => (Dtype::I16, 2),
            (Some('u'), Some(2)) => (Dtype::U16, 2),
            (Some('f'), Some(2)) => (Dtype::F16, 2),
            (Some('i'), Some(4)) => (Dtype::I32, 4),
            (Some('u'), Some(4)) => (Dtype::U32, 4),
            (Some('f'), Some(4)) => (Dtype::F32, 4),
            (Some('i'), Some(8)) => (Dtype::I64, 8),
            (Some('u'), Some(8)) => (Dtype::U64, 8),
            (Some('f'), Some(8)) => (Dtype::F64, 8),
            (Some('V'), _) => {
                return Err(format!(
                    "dtype `{descr}` is raw bytes (numpy saves bfloat16 and other ml_dtypes types so, and they cannot be told apart)"
                ));
            }
            _ => {
                return Err(format!(
                    "dtype `{descr}` is not read: bool, int, uint and float dtypes of safetensors and unicode strings are"
                ));
            }
        };
        if size > 1 && order == Some('|') {
            return Err(format!(
                "dtype `{descr}` has {size} bytes but no byte order"
            ));
        }
        Ok(Descr::Number {
            dtype,
            size,
            big_endian,
        })
    }

    /// The array of `data` (row-major, of this dtype's byte order) and `shape`; `data_start` is
    /// the data's offset in the file, for errors.
    fn array(
        self,
        mut data: Vec<u8>,
        shape: Vec<usize>,
        data_start: u64,
        fail: &dyn Fn(u64, String) -> Error,
    ) -> Result<NpyArray> {
        match self {
            Descr::Number {
                dtype,
                size,
                big_endian,
            } => {
                if big_endian {
                    data.chunks_exact_mut(size).for_each(<[u8]>::reverse);
                }
                if dtype == Dtype::BOOL
                    && let Some(at) = data.iter().position(|&b| b > 1)
                {
                    return Err(fail(
                        data_start + at as u64,
                        format!(
                            "has a bool of value {}, neither 0 nor 1",
                            data.get(at).copied().unwrap_or_default()
                        ),
                    ));
                }
                Tensor::new(dtype, shape, data)
                    .map(NpyArray::Tensor)
                    .map_err(|e| fail(data_start, e.to_string()))
            }
            Descr::Unicode { chars, big_endian } => {
                // The width is not zero (see `parse`), so there is one item per element.
                let mut values = Vec::new();
                for (i, item) in data.chunks_exact(chars * 4).enumerate() {
                    let offset = data_start + (i * chars * 4) as u64;
                    values.push(ucs4(item, big_endian).map_err(|(at, code)| {
                        fail(
                            offset + at as u64,
                            format!("has {code:#x}, which is not a unicode character"),
                        )
                    })?);
                }
                Ok(NpyArray::Strings { shape, values })
            }
        }
    }
}

/// Decodes one fixed-width UCS-4 string, dropping its NUL padding; the error is the byte offset
/// and the value of a code that is no character.
fn ucs4(item: &[u8], big_endian: bool) -> Result<String, (usize, u32)> {
    let mut text = String::new();
    for (i, unit) in item.chunks_exact(4).enumerate() {
        let Ok(bytes) = <[u8; 4]>::try_from(unit) else {
            continue;
        };
        let code = if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        };
        text.push(char::from_u32(code).ok_or((i * 4, code))?);
    }
    text.truncate(text.trim_end_matches('\0').len());
    Ok(text)
}

/// The elements of a column-major (Fortran-ordered) array of `shape`, each `size` bytes, in
/// row-major order.
fn fortran_to_c(data: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    if data.is_empty() {
        return out;
    }
    // Element strides of the column-major layout: the first index moves fastest.
    let mut strides = Vec::with_capacity(shape.len());
    let mut stride = 1usize;
    for &dim in shape {
        strides.push(stride);
        stride = stride.saturating_mul(dim);
    }
    let mut index = vec![0usize; shape.len()];
    let mut element = 0usize;
    for _ in 0..data.len() / size {
        let start = element * size;
        out.extend_from_slice(data.get(start..start + size).unwrap_or_default());
        // The next row-major index: the last dimension moves fastest.
        for ((i, &dim), &stride) in index.iter_mut().zip(shape).zip(&strides).rev() {
            *i += 1;
            element += stride;
            if *i < dim {
                break;
            }
            element -= stride * dim;
            *i = 0;
        }
    }
    out
}

/// The three entries of a header.
struct Header {
    dtype: Descr,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A parser of the header's dict literal; offsets in errors are `base` plus the position.
struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    base: u64,
    key: &'a str,
}

impl<'a> Parser<'a> {
    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::legacy("npy", self.base + self.at as u64, self.key, reason)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<()> {
        self.skip_spaces();
        if self.peek() != Some(byte) {
            return Err(self.unexpected(what));
        }
        self.at += 1;
        Ok(())
    }

    fn unexpected(&self, what: &str) -> Error {
        match self.peek() {
            Some(b) if b.is_ascii_graphic() => self.fail(format!(
                "has `{}` in its header where {what} belongs",
                b as char
            )),
            Some(b) => self.fail(format!(
                "has byte {b:#04x} in its header where {what} belongs"
            )),
            None => self.fail(format!("has a header that ends where {what} belongs")),
        }
    }

    /// The whole header: the dict, then spaces up to the final newline.
    fn header(mut self) -> Result<Header> {
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        self.expect(b'{', "`{`")?;
        loop {
            self.skip_spaces();
            if self.peek() == Some(b'}') {
                break;
            }
            let start = self.at;
            let name = self.string()?;
            self.expect(b':', "`:`")?;
            self.skip_spaces();
            let seen = match name {
                "descr" => {
                    let value_at = self.at;
                    let text = self.string()?;
                    let dtype = Descr::parse(text).map_err(|reason| {
                        Error::legacy("npy", self.base + value_at as u64, self.key, reason)
                    })?;
                    descr.replace(dtype).is_some()
                }
                "fortran_order" => {
                    let value = self.boolean()?;
                    fortran.replace(value).is_some()
                }
                "shape" => {
                    let value = self.tuple()?;
                    shape.replace(value).is_some()
                }
                other => {
                    self.at = start;
                    return Err(self.fail(format!(
                        "has key `{other}` in its header; only `descr`, `fortran_order` and `shape` belong there"
                    )));
                }
            };
            if seen {
                self.at = start;
                return Err(self.fail(format!("has key `{name}` twice in its header")));
            }
            self.skip_spaces();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => break,
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
        self.at += 1;
        self.skip_spaces();
        if self.peek() != Some(b'\n') || self.at + 1 != self.bytes.len() {
            return Err(self.unexpected("the newline that ends the header"));
        }
        let missing = |name: &str| self.fail(format!("has no `{name}` in its header"));
        Ok(Header {
            dtype: descr.ok_or_else(|| missing("descr"))?,
            fortran_order: fortran.ok_or_else(|| missing("fortran_order"))?,
            shape: shape.ok_or_else(|| missing("shape"))?,
        })
    }

    /// A string in single or double quotes, without escapes.
    fn string(&mut self) -> Result<&'a str> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.unexpected("a quoted string")),
        };
        let start = self.at + 1;
        let bytes = self.bytes;
        let rest = bytes.get(start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == quote || b == b'\\') else {
            return Err(self.fail("has an unterminated string in its header"));
        };
        let body = rest.get(..len).unwrap_or_default();
        self.at = start + len;
        if rest.get(len) == Some(&b'\\') {
            return Err(self.fail("has an escape in a string of its header"));
        }
        self.at += 1;
        std::str::from_utf8(body).map_err(|_| {
            Error::legacy(
                "npy",
                self.base + start as u64,
                self.key,
                "has a string in its header that is not text",
            )
        })
    }

    fn boolean(&mut self) -> Result<bool> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if rest.starts_with(word) {
                self.at += word.len();
                return Ok(value);
            }
        }
        Err(self.unexpected("`True` or `False`"))
    }

    /// A tuple of non-negative integers: `()`, `(3,)`, `(3, 4)`.
    fn tuple(&mut self) -> Result<Vec<usize>> {
        self.expect(b'(', "the `(` of the shape")?;
        let mut dims = Vec::new();
        let mut after_comma = false;
        loop {
            self.skip_spaces();
            if self.peek() == Some(b')') {
                // `(3)` is a number in Python, not a tuple.
                if dims.len() == 1 && !after_comma {
                    return Err(
                        self.fail("has a shape `(n)`, which is a number; a 1-d shape is `(n,)`")
                    );
                }
                self.at += 1;
                return Ok(dims);
            }
            dims.push(self.integer()?);
            self.skip_spaces();
            after_comma = self.peek() == Some(b',');
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b')') => {}
                _ => return Err(self.unexpected("`,` or `)` in the shape")),
            }
        }
    }

    fn integer(&mut self) -> Result<usize> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let digits = rest.get(..len).unwrap_or_default();
        if digits.is_empty() {
            return Err(self.unexpected("a dimension"));
        }
        if digits.len() > 1 && digits.first() == Some(&b'0') {
            return Err(self.fail("has a dimension with a leading zero"));
        }
        let value = std::str::from_utf8(digits)
            .ok()
            .and_then(|text| text.parse::<usize>().ok())
            .ok_or_else(|| self.fail("has a dimension too large for this machine"))?;
        self.at += len;
        Ok(value)
    }
}
