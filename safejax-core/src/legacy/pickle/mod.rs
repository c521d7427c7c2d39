//! Pickled parameter dicts (protocols 2 to 5), read by an allowlist without executing anything.
//!
//! A pickle is a program for a stack machine, and Python's `pickle.load` runs it: a global it
//! names is imported and called, which is how a pickle runs `os.system`. This reader interprets
//! only the opcodes that build nested dicts, lists and tuples of numpy arrays and plain scalars,
//! and only the globals that describe numpy arrays. Interpreting one of these globals builds the
//! value it describes in Rust; nothing is imported, called or executed, ever.
//!
//! # What is read
//!
//! The pickled value must be a dict with string keys (a `dict` or a `collections.OrderedDict`),
//! as `pickle.dump(params, f)` writes Haiku parameters (`{"linear": {"w": ..}}`) or a dict of
//! collections (`{"params": .., "state": ..}`). It becomes a [`Tree`]:
//!
//! - a nested dict becomes a nested [`Tree`];
//! - a list or a tuple becomes a [`Tree`] whose entries are named by position, `"0"`, `"1"`, ...,
//!   the names JAX's tree flattening gives the elements of a sequence;
//! - a numpy array (or a jax array, pickled through numpy) becomes a [`Tensor`](crate::Tensor)
//!   with the same dtype, shape and values, in C order and little-endian;
//! - `None` is skipped: JAX's tree utilities treat it as a subtree with no leaves;
//! - any other value (a Python `int`, `float`, `bool`, `str` or `bytes`) is refused, naming its
//!   key: it is not a parameter, and dropping it silently would lose data without a word.
//!
//! A dict key must be a string, non-empty and free of `.` (keys are joined with `.` when the
//! tree is saved).
//!
//! # Opcodes
//!
//! `PROTO` (2 to 5), `FRAME`, `STOP`; `MARK`, `POP`, `POP_MARK`, `DUP`; `NONE`, `NEWTRUE`,
//! `NEWFALSE`, `BININT`, `BININT1`, `BININT2`, `LONG1`, `LONG4` (up to 64 bits), `BINFLOAT`;
//! `SHORT_BINUNICODE`, `BINUNICODE`, `BINUNICODE8`; `SHORT_BINBYTES`, `BINBYTES`, `BINBYTES8`,
//! `BYTEARRAY8`, `READONLY_BUFFER`; `EMPTY_TUPLE`, `TUPLE`, `TUPLE1`, `TUPLE2`, `TUPLE3`,
//! `EMPTY_LIST`, `LIST`, `APPEND`, `APPENDS`, `EMPTY_DICT`, `DICT`, `SETITEM`, `SETITEMS`;
//! `BINPUT`, `LONG_BINPUT`, `MEMOIZE`, `BINGET`, `LONG_BINGET`; `GLOBAL`, `STACK_GLOBAL`,
//! `REDUCE`, `BUILD`, applied only to the globals below. Any other opcode is refused, naming
//! it: among them `PERSID` and `BINPERSID` (persistent ids load objects from outside the
//! pickle), `NEXT_BUFFER` (an out-of-band buffer, and none is supplied), `INST`, `OBJ`,
//! `NEWOBJ` and `NEWOBJ_EX` (instances of arbitrary classes), and the text opcodes of
//! protocols 0 and 1.
//!
//! # Globals
//!
//! | Global | Interpreted as |
//! |---|---|
//! | `numpy.core.multiarray._reconstruct`, `numpy._core.multiarray._reconstruct` | an empty `ndarray`, whose `BUILD` state `(1, shape, dtype, is_fortran, data)` gives it its contents |
//! | `numpy.ndarray` | the class `_reconstruct` is given |
//! | `numpy.dtype` | `dtype(code, False, True)`: a dtype, whose `BUILD` state gives its byte order |
//! | `numpy.core.numeric._frombuffer`, `numpy._core.numeric._frombuffer` | an array of protocol 5: `_frombuffer(data, dtype, shape, order)` |
//! | `_codecs.encode` | `encode(text, "latin1")`: bytes, as protocol 2 stores an array's data |
//! | `collections.OrderedDict` | `OrderedDict()`: a dict |
//! | `ml_dtypes.bfloat16`, `ml_dtypes.float8_e4m3fn`, `ml_dtypes.float8_e5m2`, `ml_dtypes.float8_e4m3fnuz`, `ml_dtypes.float8_e5m2fnuz`, `ml_dtypes.float8_e8m0fnu` | the element type of `dtype(ml_dtypes.bfloat16, False, True)` |
//! | `jax._src.array._reconstruct_array` | a jax array: `_reconstruct_array(_reconstruct, args, state, aval)` is the numpy array `_reconstruct(*args)` given `state`; `aval` (weak type, named shape) is ignored |
//!
//! Any other global is refused when it is named, with its full name (`posix.system`) and
//! byte offset.
//!
//! Element types are those of numpy that safetensors has: `bool`, `int8` to `int64`, `uint8`
//! to `uint64`, `float16`, `float32`, `float64` and `complex64`, with the `ml_dtypes` float types
//! above. Big-endian data is swapped to little-endian, and Fortran-ordered data is transposed to
//! C order. Structured, object, string, datetime and other complex dtypes are refused.
//!
//! # Bounds
//!
//! A pickle cannot make the reader use memory or time out of proportion to its size: a declared
//! length is checked against the bytes left before anything is read (strings and bytes are then
//! borrowed from the input, not copied); the stack, the marks and the memo are bounded; an array
//! has at most 64 dimensions; `_codecs.encode` makes at most as many bytes as the pickle has; a
//! tree deeper than 1024 levels is an error, and so is a cycle; and the tensors and names of the
//! tree hold at most four times the pickle's size, since an array, a name or a dict shared under
//! several keys becomes a copy under each. Nothing recurses, so no pickle can overflow the
//! thread's stack.
//!
//! Errors are [`Error::Legacy`] with format `pickle`, the byte offset of the opcode concerned
//! and, once the value is being turned into a tree, the key path.

mod machine;
mod numpy;
mod walk;

#[cfg(test)]
mod tests;

use std::path::Path;

use crate::error::{Error, Result};
use crate::tree::Tree;

/// The deepest a tree of dicts, lists and tuples may be.
const MAX_DEPTH: usize = 1024;

/// The most values the stack may hold at once (and the most marks).
const MAX_STACK: usize = 1 << 20;

/// The most entries the memo may hold.
const MAX_MEMO: usize = 1 << 24;

/// How many times the pickle's size the tensors and names of the tree may hold.
const MAX_TENSOR_FACTOR: usize = 4;

/// An error at byte `offset` of the pickle.
fn fail(offset: u64, reason: impl Into<String>) -> Error {
    Error::legacy("pickle", offset, "", reason)
}

/// Reads a pickled dict of arrays into a [`Tree`], executing nothing.
///
/// ```
/// use safejax_core::{haiku, legacy::pickle};
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/legacy/haiku_bn_p4.pkl");
/// let tree = pickle::from_slice(&std::fs::read(path)?)?;
/// assert_eq!(tree.tensor("params.linear.w").map(|w| w.shape()), Some(&[8, 16][..]));
/// assert_eq!(tree.tensor("state.batch_norm/~/mean_ema.counter").map(|c| c.shape()), Some(&[][..]));
///
/// let expected = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/legacy/haiku_bn.safetensors");
/// assert_eq!(haiku::serialize(&tree, None)?, std::fs::read(expected)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A pickle that would run a program is refused where it names the function:
///
/// ```
/// use safejax_core::legacy::pickle;
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/legacy/evil_eval_p4.pkl");
/// let err = pickle::from_slice(&std::fs::read(path)?).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid pickle data at byte 29: global `builtins.eval` is not allowed",
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_slice(bytes: &[u8]) -> Result<Tree> {
    let mut machine = machine::Machine::new(bytes);
    let root = machine.run()?;
    walk::tree(&machine, root)
}

/// Reads a pickle file of a dict of arrays into a [`Tree`], executing nothing; see
/// [`from_slice`].
///
/// ```
/// use safejax_core::legacy::pickle;
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/legacy/haiku_bn_jax.pkl");
/// let tree = pickle::from_file(path)?;
/// assert_eq!(tree.flatten()?.len(), 12);
/// # Ok::<(), safejax_core::Error>(())
/// ```
pub fn from_file(path: impl AsRef<Path>) -> Result<Tree> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    from_slice(&bytes)
}
