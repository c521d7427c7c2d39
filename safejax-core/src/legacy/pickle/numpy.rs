//! The allowed globals, and the numpy dtypes and arrays that `REDUCE` and `BUILD` make of them.
//!
//! Each global is a name for something built here in Rust: `REDUCE` of `numpy.dtype` with
//! `("f4", False, True)` is a [`DtypeSpec`], not a call.

use std::borrow::Cow;

use safetensors::Dtype;

use super::machine::{Item, Machine, Object, Value};
use crate::dtype::byte_size;
use crate::error::Result;
use crate::tensor::Tensor;

/// The most dimensions an array may have (numpy 2's limit).
const MAX_DIMS: usize = 64;

/// Why a shape is refused.
const SHAPE: &str = "an ndarray's shape is not a tuple of at most 64 non-negative ints";

/// An allowed global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
    /// `numpy.core.multiarray._reconstruct`: an empty array, given its contents by `BUILD`.
    Reconstruct,
    /// `numpy.ndarray`, the class handed to `_reconstruct`.
    Ndarray,
    /// `numpy.dtype`.
    Dtype,
    /// `numpy.core.numeric._frombuffer`: an array of protocol 5.
    FromBuffer,
    /// `_codecs.encode`, as protocol 2 turns a latin-1 string back into bytes.
    Encode,
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `jax._src.array._reconstruct_array`.
    ReconstructArray,
    /// An element type of `ml_dtypes`, handed to `numpy.dtype`.
    MlDtype(Dtype),
}

/// Every allowed global: module, name, meaning. A name has one entry per module numpy has
/// kept it in (`numpy.core` before numpy 2, `numpy._core` since).
const GLOBALS: &[(&str, &str, Global)] = &[
    ("numpy.core.multiarray", "_reconstruct", Global::Reconstruct),
    (
        "numpy._core.multiarray",
        "_reconstruct",
        Global::Reconstruct,
    ),
    ("numpy", "ndarray", Global::Ndarray),
    ("numpy", "dtype", Global::Dtype),
    ("numpy.core.numeric", "_frombuffer", Global::FromBuffer),
    ("numpy._core.numeric", "_frombuffer", Global::FromBuffer),
    ("_codecs", "encode", Global::Encode),
    ("collections", "OrderedDict", Global::OrderedDict),
    (
        "jax._src.array",
        "_reconstruct_array",
        Global::ReconstructArray,
    ),
    ("ml_dtypes", "bfloat16", Global::MlDtype(Dtype::BF16)),
    (
        "ml_dtypes",
        "float8_e4m3fn",
        Global::MlDtype(Dtype::F8_E4M3),
    ),
    ("ml_dtypes", "float8_e5m2", Global::MlDtype(Dtype::F8_E5M2)),
    (
        "ml_dtypes",
        "float8_e4m3fnuz",
        Global::MlDtype(Dtype::F8_E4M3FNUZ),
    ),
    (
        "ml_dtypes",
        "float8_e5m2fnuz",
        Global::MlDtype(Dtype::F8_E5M2FNUZ),
    ),
    (
        "ml_dtypes",
        "float8_e8m0fnu",
        Global::MlDtype(Dtype::F8_E8M0),
    ),
];

impl Global {
    /// The allowed global of this name, if it is one.
    pub(super) fn resolve(module: &str, name: &str) -> Option<Global> {
        GLOBALS
            .iter()
            .find(|(m, n, _)| *m == module && *n == name)
            .map(|&(_, _, global)| global)
    }

    /// The global's full name, as first listed.
    pub(super) fn name(self) -> String {
        GLOBALS
            .iter()
            .find(|(_, _, global)| *global == self)
            .map_or_else(String::new, |(module, name, _)| format!("{module}.{name}"))
    }
}

/// The byte order of a dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// `<`.
    Little,
    /// `>`: swapped to little-endian when the tensor is built.
    Big,
    /// `|`: elements of one byte.
    None,
    /// `=`, the writer's own: what a dtype is until its `BUILD` state says which.
    Native,
}

/// A numpy dtype that safetensors has an element type for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DtypeSpec {
    pub dtype: Dtype,
    pub order: Order,
}

/// A numpy array: its element type, shape, and the bytes object holding its data, which is
/// copied into a tensor only if the array ends up in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Array {
    spec: DtypeSpec,
    shape: Vec<usize>,
    /// Whether the data is in Fortran order (first index fastest).
    fortran: bool,
    /// The index of an [`Object::Bytes`] of exactly the array's size.
    data: usize,
}

impl Array {
    /// The array's size in bytes.
    pub(super) fn byte_len(&self) -> usize {
        array_len(self.spec.dtype, &self.shape).unwrap_or(0)
    }

    /// The array as a little-endian, C-ordered tensor; `data` is its bytes.
    pub(super) fn tensor(&self, data: &[u8]) -> std::result::Result<Tensor, String> {
        let mut bytes = data.to_vec();
        let size = byte_size(self.spec.dtype);
        if self.spec.order == Order::Big && size > 1 {
            // A complex number is two floats, each swapped on its own.
            let unit = if self.spec.dtype == Dtype::C64 {
                4
            } else {
                size
            };
            bytes.chunks_exact_mut(unit).for_each(<[u8]>::reverse);
        }
        if self.fortran && self.shape.len() > 1 {
            bytes = fortran_to_c(&bytes, &self.shape, size);
        }
        if self.spec.dtype == Dtype::BOOL
            && let Some(at) = bytes.iter().position(|&b| b > 1)
        {
            return Err(format!("bool element {at} is neither 0 nor 1"));
        }
        Tensor::new(self.spec.dtype, self.shape.clone(), bytes).map_err(|e| e.to_string())
    }
}

/// The size in bytes of an array of `dtype` and `shape`, if it fits in memory.
fn array_len(dtype: Dtype, shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(byte_size(dtype), |n, &d| n.checked_mul(d))
        .filter(|&n| isize::try_from(n).is_ok())
}

/// The bytes of a Fortran-ordered array (first index fastest) laid out in C order (last index
/// fastest), elements of `size` bytes.
fn fortran_to_c(data: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    // Element strides of the Fortran layout.
    let mut strides = Vec::with_capacity(shape.len());
    let mut stride = 1usize;
    for &d in shape {
        strides.push(stride);
        stride = stride.saturating_mul(d);
    }
    if shape.contains(&0) {
        return out;
    }
    // Walks the index in C order, keeping the element's Fortran offset up to date.
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    loop {
        let at = offset * size;
        out.extend_from_slice(data.get(at..at + size).unwrap_or_default());
        let mut axis = shape.len();
        loop {
            let Some(k) = axis.checked_sub(1) else {
                return out;
            };
            axis = k;
            let (Some(i), Some(&d), Some(&s)) = (index.get_mut(k), shape.get(k), strides.get(k))
            else {
                return out;
            };
            if *i + 1 < d {
                *i += 1;
                offset += s;
                break;
            }
            offset -= *i * s;
            *i = 0;
        }
    }
}

/// The element type of a numpy type code (`f4`, `<i8`), if safetensors has it.
fn parse_code(code: &str) -> Option<DtypeSpec> {
    let (order, kind) = match code.as_bytes().first() {
        Some(b'<') => (Order::Little, code.get(1..)?),
        Some(b'>') => (Order::Big, code.get(1..)?),
        Some(b'|') => (Order::None, code.get(1..)?),
        Some(b'=') => (Order::Native, code.get(1..)?),
        _ => (Order::Native, code),
    };
    let dtype = match kind {
        "b1" => Dtype::BOOL,
        "i1" => Dtype::I8,
        "i2" => Dtype::I16,
        "i4" => Dtype::I32,
        "i8" => Dtype::I64,
        "u1" => Dtype::U8,
        "u2" => Dtype::U16,
        "u4" => Dtype::U32,
        "u8" => Dtype::U64,
        "f2" => Dtype::F16,
        "f4" => Dtype::F32,
        "f8" => Dtype::F64,
        "c8" => Dtype::C64,
        _ => return None,
    };
    Some(DtypeSpec { dtype, order })
}

impl<'a> Machine<'a> {
    /// `REDUCE`: what calling the allowed global `callable` with `args` would make.
    pub(super) fn reduce(&mut self, callable: Item, args: Item) -> Result<Value> {
        let Value::Global(global) = callable.value else {
            return Err(self.fail(format!(
                "REDUCE calls {}; only allowed globals are interpreted",
                self.kind(callable.value)
            )));
        };
        let args = self.args(global, args)?;
        let object = match global {
            Global::Reconstruct => {
                self.reconstruct(&args)?;
                Object::BlankArray
            }
            Global::Dtype => Object::Dtype(self.dtype(&args)?),
            Global::FromBuffer => Object::Array(self.frombuffer(&args)?),
            Global::Encode => Object::Bytes(Cow::Owned(self.encode(&args)?)),
            Global::OrderedDict => {
                if !args.is_empty() {
                    return Err(self.wrong_args(global, "no arguments"));
                }
                Object::Dict(Vec::new())
            }
            Global::ReconstructArray => Object::Array(self.jax_array(&args)?),
            Global::Ndarray | Global::MlDtype(_) => {
                return Err(self.fail(format!(
                    "global `{}` is not interpreted as a call",
                    global.name()
                )));
            }
        };
        Ok(self.new_object(object))
    }

    /// `BUILD`: sets the state of a dtype (its byte order) or of an array made by
    /// `_reconstruct` (its contents).
    pub(super) fn build(&mut self, target: Item, state: Item) -> Result<()> {
        match self.object(target.value) {
            Some(Object::Dtype(spec)) => {
                let spec = self.dtype_state(*spec, state)?;
                if let Some(object) = self.object_mut(target.value) {
                    *object = Object::Dtype(spec);
                }
            }
            Some(Object::BlankArray) => {
                let array = self.array_state(state)?;
                if let Some(object) = self.object_mut(target.value) {
                    *object = Object::Array(array);
                }
            }
            _ => {
                return Err(self.fail(format!(
                    "BUILD of {} is not supported (only of numpy dtypes and arrays)",
                    self.kind(target.value)
                )));
            }
        }
        Ok(())
    }

    /// The items of the argument tuple of a call of `global`.
    fn args(&self, global: Global, args: Item) -> Result<Vec<Item>> {
        match self.object(args.value) {
            // No global takes more: a long tuple is refused before it is copied.
            Some(Object::Tuple(items)) if items.len() > 4 => Err(self.fail(format!(
                "REDUCE of `{}` with {} arguments",
                global.name(),
                items.len()
            ))),
            Some(Object::Tuple(items)) => Ok(items.clone()),
            _ => Err(self.fail(format!(
                "REDUCE of `{}` with {} as its arguments, not a tuple",
                global.name(),
                self.kind(args.value)
            ))),
        }
    }

    fn wrong_args(&self, global: Global, expected: &str) -> crate::Error {
        self.fail(format!(
            "`{}` is interpreted only with {expected}",
            global.name()
        ))
    }

    fn str_of(&self, item: Option<&Item>) -> Option<&'a str> {
        match self.object(item?.value)? {
            Object::Str(text) => Some(text),
            _ => None,
        }
    }

    fn tuple_of(&self, item: Option<&Item>) -> Option<&[Item]> {
        match self.object(item?.value)? {
            Object::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The index of the bytes object `item` refers to.
    fn bytes_of(&self, item: Option<&Item>) -> Option<usize> {
        match (item?.value, self.object(item?.value)?) {
            (Value::Object(index), Object::Bytes(_)) => Some(index),
            _ => None,
        }
    }

    fn bool_of(item: Option<&Item>) -> Option<bool> {
        match item?.value {
            Value::Bool(b) => Some(b),
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }

    /// A shape: a tuple of non-negative ints.
    fn shape_of(&self, item: Option<&Item>) -> Option<Vec<usize>> {
        let dims = self.tuple_of(item)?;
        if dims.len() > MAX_DIMS {
            return None;
        }
        dims.iter()
            .map(|d| match d.value {
                Value::Int(n) => usize::try_from(n).ok(),
                _ => None,
            })
            .collect()
    }

    /// `_reconstruct(ndarray, shape, typecode)`: only checked, as the array it makes is empty.
    fn reconstruct(&self, args: &[Item]) -> Result<()> {
        let [class, shape, code] = args else {
            return Err(self.wrong_args(Global::Reconstruct, "three arguments"));
        };
        let code_ok = matches!(
            self.object(code.value),
            Some(Object::Bytes(_) | Object::Str(_))
        );
        if class.value != Value::Global(Global::Ndarray)
            || self.tuple_of(Some(shape)).is_none()
            || !code_ok
        {
            return Err(self.wrong_args(
                Global::Reconstruct,
                "`(numpy.ndarray, shape, typecode)` as arguments",
            ));
        }
        Ok(())
    }

    /// `dtype(code, align, copy)`: the code is a numpy type code (`f4`) or an `ml_dtypes`
    /// type.
    fn dtype(&self, args: &[Item]) -> Result<DtypeSpec> {
        let ([code] | [code, _] | [code, _, _]) = args else {
            return Err(self.wrong_args(Global::Dtype, "one to three arguments"));
        };
        if let Value::Global(Global::MlDtype(dtype)) = code.value {
            return Ok(DtypeSpec {
                dtype,
                order: Order::Native,
            });
        }
        let Some(text) = self.str_of(Some(code)) else {
            return Err(self.fail(format!(
                "`numpy.dtype` of {}, not a type code",
                self.kind(code.value)
            )));
        };
        parse_code(text).ok_or_else(|| {
            self.fail(format!(
                "numpy dtype `{text}` is not supported: safetensors has no such element type"
            ))
        })
    }

    /// A dtype's `BUILD` state: `(version, byteorder, subarray, names, fields, elsize,
    /// alignment, flags[, metadata])`, of which the byte order matters.
    fn dtype_state(&self, spec: DtypeSpec, state: Item) -> Result<DtypeSpec> {
        let items = self.tuple_of(Some(&state)).unwrap_or_default();
        let (Some(version), Some(order), Some(subarray), Some(names), Some(fields)) = (
            items.first(),
            self.str_of(items.get(1)),
            items.get(2),
            items.get(3),
            items.get(4),
        ) else {
            return Err(self.fail(format!(
                "a numpy dtype's state is {}, not `(version, byteorder, ...)`",
                self.kind(state.value)
            )));
        };
        if !matches!(version.value, Value::Int(3 | 4)) || !(8..=9).contains(&items.len()) {
            return Err(self.fail("a numpy dtype's state is not of version 3 or 4"));
        }
        if [subarray, names, fields]
            .iter()
            .any(|item| item.value != Value::None)
        {
            return Err(self.fail("structured and subarray numpy dtypes are not supported"));
        }
        let order = match order {
            "<" => Order::Little,
            ">" => Order::Big,
            "|" => Order::None,
            "=" => Order::Native,
            other => {
                return Err(self.fail(format!("a numpy dtype's byte order is `{other}`")));
            }
        };
        Ok(DtypeSpec { order, ..spec })
    }

    /// The dtype `item` refers to.
    fn spec_of(&self, item: Option<&Item>) -> Result<DtypeSpec> {
        let value = item.map_or(Value::None, |item| item.value);
        match self.object(value) {
            Some(Object::Dtype(spec)) => Ok(*spec),
            _ => Err(self.fail(format!(
                "an array's dtype is {}, not a numpy dtype",
                self.kind(value)
            ))),
        }
    }

    /// An ndarray's `BUILD` state: `(1, shape, dtype, is_fortran, data)`, or the same without
    /// the version.
    fn array_state(&self, state: Item) -> Result<Array> {
        let items = self.tuple_of(Some(&state)).unwrap_or_default();
        let items = match items {
            [version, rest @ ..] if rest.len() == 4 && version.value == Value::Int(1) => rest,
            rest if rest.len() == 4 => rest,
            _ => {
                return Err(self.fail(format!(
                    "an ndarray's state is {}, not `(1, shape, dtype, is_fortran, data)`",
                    self.kind(state.value)
                )));
            }
        };
        let spec = self.spec_of(items.get(1))?;
        let shape = self
            .shape_of(items.first())
            .ok_or_else(|| self.fail(SHAPE))?;
        let fortran = Self::bool_of(items.get(2))
            .ok_or_else(|| self.fail("an ndarray's `is_fortran` is not a bool"))?;
        let data = self.bytes_of(items.get(3)).ok_or_else(|| {
            let found = items.get(3).map_or(Value::None, |item| item.value);
            self.fail(format!(
                "an ndarray's data is {}, not bytes (object arrays are not supported)",
                self.kind(found)
            ))
        })?;
        self.new_array(spec, shape, fortran, data)
    }

    /// `_frombuffer(data, dtype, shape, order)` of protocol 5.
    fn frombuffer(&self, args: &[Item]) -> Result<Array> {
        let [data, dtype, shape, order] = args else {
            return Err(self.wrong_args(Global::FromBuffer, "four arguments"));
        };
        let data = self.bytes_of(Some(data)).ok_or_else(|| {
            self.fail(format!(
                "`_frombuffer` of {}, not bytes",
                self.kind(data.value)
            ))
        })?;
        let spec = self.spec_of(Some(dtype))?;
        let shape = self.shape_of(Some(shape)).ok_or_else(|| self.fail(SHAPE))?;
        let fortran = match self.str_of(Some(order)) {
            Some("C") => false,
            Some("F") => true,
            _ => return Err(self.fail("`_frombuffer`'s order is not `C` or `F`")),
        };
        self.new_array(spec, shape, fortran, data)
    }

    /// `_reconstruct_array(_reconstruct, args, state, aval)` of jax.
    fn jax_array(&self, args: &[Item]) -> Result<Array> {
        let [fun, inner, state, aval] = args else {
            return Err(self.wrong_args(Global::ReconstructArray, "four arguments"));
        };
        if fun.value != Value::Global(Global::Reconstruct) {
            return Err(self.fail(format!(
                "`jax._src.array._reconstruct_array` of {}, not numpy's `_reconstruct`",
                self.kind(fun.value)
            )));
        }
        let inner = self.tuple_of(Some(inner)).ok_or_else(|| {
            self.wrong_args(
                Global::ReconstructArray,
                "a tuple of `_reconstruct`'s arguments",
            )
        })?;
        self.reconstruct(inner)?;
        if !matches!(self.object(aval.value), Some(Object::Dict(_))) {
            return Err(self.fail(format!(
                "a jax array's aval state is {}, not a dict",
                self.kind(aval.value)
            )));
        }
        self.array_state(*state)
    }

    /// `encode(text, "latin1")`: each character is one byte.
    fn encode(&mut self, args: &[Item]) -> Result<Vec<u8>> {
        let [text, encoding] = args else {
            return Err(self.wrong_args(Global::Encode, "two arguments"));
        };
        let (Some(text), Some(encoding)) = (self.str_of(Some(text)), self.str_of(Some(encoding)))
        else {
            return Err(self.wrong_args(Global::Encode, "two strings"));
        };
        if encoding != "latin1" {
            return Err(self.fail(format!(
                "`_codecs.encode` with encoding `{encoding}` is not allowed (only `latin1`)"
            )));
        }
        self.encode_left = self.encode_left.checked_sub(text.len()).ok_or_else(|| {
            self.fail("`_codecs.encode` would make more bytes than the pickle has")
        })?;
        text.chars()
            .map(|c| u8::try_from(c).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| self.fail("`_codecs.encode` of a character that is not latin1"))
    }

    /// An array, after checking that its data has exactly the size of its shape.
    fn new_array(
        &self,
        spec: DtypeSpec,
        shape: Vec<usize>,
        fortran: bool,
        data: usize,
    ) -> Result<Array> {
        let len = match self.objects.get(data) {
            Some(Object::Bytes(bytes)) => bytes.len(),
            _ => 0,
        };
        let Some(needed) = array_len(spec.dtype, &shape) else {
            return Err(self.fail(format!(
                "a {} array of shape {shape:?} is too large",
                spec.dtype
            )));
        };
        if len != needed {
            return Err(self.fail(format!(
                "an array's data has {len} bytes, but a {} array of shape {shape:?} has {needed}",
                spec.dtype
            )));
        }
        if spec.order == Order::Native && byte_size(spec.dtype) > 1 {
            return Err(self.fail(format!(
                "the {} dtype of an array has no byte order (its state was never set)",
                spec.dtype
            )));
        }
        Ok(Array {
            spec,
            shape,
            fortran,
            data,
        })
    }

    /// The bytes an array's data refers to.
    pub(super) fn array_data(&self, array: &Array) -> &[u8] {
        match self.objects.get(array.data) {
            Some(Object::Bytes(bytes)) => bytes,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_is_transposed() {
        // [[1, 2, 3], [4, 5, 6]] in Fortran order is 1 4 2 5 3 6.
        let c = fortran_to_c(&[1, 4, 2, 5, 3, 6], &[2, 3], 1);
        assert_eq!(c, [1, 2, 3, 4, 5, 6]);
        // A 2x2x2 array of 2-byte elements.
        let f: Vec<u8> = (0..8u8).flat_map(|x| [x, 0]).collect();
        let c = fortran_to_c(&f, &[2, 2, 2], 2);
        let order: Vec<u8> = c.chunks(2).map(|e| e[0]).collect();
        assert_eq!(order, [0, 4, 2, 6, 1, 5, 3, 7]);
        assert!(fortran_to_c(&[], &[2, 0], 4).is_empty());
    }

    #[test]
    fn type_codes() {
        assert_eq!(
            parse_code(">i8"),
            Some(DtypeSpec {
                dtype: Dtype::I64,
                order: Order::Big
            })
        );
        assert_eq!(parse_code("f4").map(|s| s.dtype), Some(Dtype::F32));
        assert_eq!(parse_code("c16"), None);
        assert_eq!(parse_code("O8"), None);
        assert_eq!(parse_code(""), None);
    }

    #[test]
    fn globals_resolve_by_full_name() {
        assert_eq!(
            Global::resolve("numpy._core.multiarray", "_reconstruct"),
            Some(Global::Reconstruct)
        );
        assert_eq!(Global::resolve("numpy", "load"), None);
        assert_eq!(Global::resolve("builtins", "eval"), None);
        assert_eq!(
            Global::Reconstruct.name(),
            "numpy.core.multiarray._reconstruct"
        );
    }
}
