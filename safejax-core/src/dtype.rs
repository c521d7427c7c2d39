//! Element types: the Rust scalar behind each safetensors dtype, and the dtype policy of loads.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use half::{bf16, f16};
use safetensors::Dtype;

use crate::error::LeafProblem;

/// Whether a load may convert between dtypes.
///
/// ```
/// use safejax_core::DtypePolicy;
/// assert_eq!(DtypePolicy::default(), DtypePolicy::Exact);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtypePolicy {
    /// The file's dtype must be the leaf's (the default).
    #[default]
    Exact,
    /// Floating-point tensors convert between `f16`, `bf16`, `f32` and `f64` (rounding to
    /// nearest when narrowing). Integer and bool tensors still must match exactly.
    ConvertFloats,
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust scalar type that is a safetensors element type.
///
/// Implemented for `f32`, `f64`, [`half::f16`], [`half::bf16`], `i8`, `i16`, `i32`, `i64`, `u8`,
/// `u16`, `u32`, `u64` and `bool`. Bytes on disk are little-endian whatever the host.
///
/// ```
/// use safejax_core::{Dtype, Element};
/// assert_eq!(<half::bf16 as Element>::DTYPE, Dtype::BF16);
/// assert_eq!(<i32 as Element>::read_le(&[1, 0, 0, 0]), 1);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tensor element type safejax can store",
    label = "not a safetensors element type",
    note = "tensor elements are f32, f64, half::f16, half::bf16, i8, i16, i32, i64, u8, u16, u32, u64 or bool"
)]
pub trait Element: Copy + Default + Send + Sync + 'static + sealed::Sealed {
    /// The safetensors dtype.
    const DTYPE: Dtype;
    /// Bytes per element.
    const SIZE: usize;

    /// Reads one element from exactly [`Element::SIZE`] little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;

    /// The little-endian bytes of `data`: borrowed on little-endian hosts.
    fn slice_le_bytes(data: &[Self]) -> Cow<'_, [u8]>;

    /// Appends the little-endian bytes of `self`.
    fn extend_le(self, out: &mut Vec<u8>);

    /// Checks that bytes of `dtype` can be decoded into `Self` under `policy`.
    fn check(dtype: Dtype, bytes: &[u8], policy: DtypePolicy) -> Result<(), LeafProblem> {
        if dtype == Self::DTYPE
            || (policy == DtypePolicy::ConvertFloats && Self::converts_from(dtype))
        {
            Ok(())
        } else {
            Err(LeafProblem::Dtype {
                expected: Self::DTYPE,
                found: dtype,
            })
        }
        .and_then(|()| Self::check_values(bytes))
    }

    /// Decodes bytes of `dtype` (already accepted by [`Element::check`]) into `out`, which has
    /// one slot per element. Without conversion it is a copy.
    fn decode_into(dtype: Dtype, bytes: &[u8], out: &mut [Self]) {
        if dtype == Self::DTYPE {
            Self::copy_le(bytes, out);
        } else {
            Self::decode_converted(dtype, bytes, out);
        }
    }

    #[doc(hidden)]
    fn copy_le(bytes: &[u8], out: &mut [Self]) {
        for (slot, chunk) in out.iter_mut().zip(bytes.chunks_exact(Self::SIZE)) {
            *slot = Self::read_le(chunk);
        }
    }

    #[doc(hidden)]
    fn converts_from(_dtype: Dtype) -> bool {
        false
    }

    #[doc(hidden)]
    fn decode_converted(_dtype: Dtype, _bytes: &[u8], _out: &mut [Self]) {}

    #[doc(hidden)]
    fn check_values(_bytes: &[u8]) -> Result<(), LeafProblem> {
        Ok(())
    }

    /// `bytes` seen as values, without a copy: an error where they are not aligned for the type,
    /// hold a value that is not one (bool), or the host is big-endian.
    #[doc(hidden)]
    fn view_le(bytes: &[u8]) -> Result<&[Self], String>;

    /// `n` values whose little-endian bytes `fill` writes in place, with no copy in between and
    /// no zeroing first: `None` where not every byte pattern is a value (bool) or the host is
    /// big-endian. `fill` must initialize every byte when it returns `Ok`.
    #[doc(hidden)]
    fn filled_le<E>(
        n: usize,
        fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<(), E>,
    ) -> Option<Result<Vec<Self>, E>> {
        let _ = (n, fill);
        None
    }
}

/// Why bytes cannot be viewed as values of alignment `align`.
fn view_error(error: bytemuck::PodCastError, align: usize) -> String {
    match error {
        bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned => {
            format!(
                "its bytes are not aligned to {align} bytes (copy it: load it as an owned array)"
            )
        }
        other => format!("{other:?}"),
    }
}

/// Checks `bytes` of `dtype` with [`Element::check`] and decodes them into a vector of `T`.
pub(crate) fn decode_vec<T: Element>(
    dtype: Dtype,
    bytes: &[u8],
    policy: DtypePolicy,
) -> Result<Vec<T>, LeafProblem> {
    T::check(dtype, bytes, policy)?;
    Ok(decoded(dtype, bytes))
}

/// Decodes `bytes` of `dtype`, already checked, into a vector of `T`.
pub(crate) fn decoded<T: Element>(dtype: Dtype, bytes: &[u8]) -> Vec<T> {
    let mut out = vec![T::default(); bytes.len() / byte_size(dtype).max(1)];
    T::decode_into(dtype, bytes, &mut out);
    out
}

/// Bytes per element of `dtype`, for the whole-byte dtypes (0 for sub-byte ones).
pub fn byte_size(dtype: Dtype) -> usize {
    dtype.bitsize() / 8
}

macro_rules! plain_element {
    ($($ty:ident => $dtype:ident),* $(,)?) => {$(
        impl sealed::Sealed for $ty {}
        impl Element for $ty {
            const DTYPE: Dtype = Dtype::$dtype;
            const SIZE: usize = std::mem::size_of::<$ty>();

            fn read_le(bytes: &[u8]) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$ty>()];
                raw.copy_from_slice(bytes);
                <$ty>::from_le_bytes(raw)
            }

            fn slice_le_bytes(data: &[Self]) -> Cow<'_, [u8]> {
                if cfg!(target_endian = "little") {
                    Cow::Borrowed(bytemuck::cast_slice(data))
                } else {
                    let mut out = Vec::with_capacity(data.len() * Self::SIZE);
                    data.iter().for_each(|x| x.extend_le(&mut out));
                    Cow::Owned(out)
                }
            }

            fn extend_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }

            fn filled_le<E>(
                n: usize,
                fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<(), E>,
            ) -> Option<Result<Vec<Self>, E>> {
                if cfg!(target_endian = "big") {
                    return None;
                }
                let mut out: Vec<Self> = Vec::with_capacity(n);
                let spare = &mut out.spare_capacity_mut()[..n];
                let bytes = std::mem::size_of_val(spare);
                // SAFETY: the spare capacity is `n` values of `Self`, `bytes` bytes of memory
                // that `out` owns; `MaybeUninit<u8>` has alignment 1 and may hold anything.
                let raw = unsafe {
                    std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<MaybeUninit<u8>>(), bytes)
                };
                if let Err(e) = fill(raw) {
                    return Some(Err(e));
                }
                // SAFETY: `fill` initialized every byte of the `n` values (its contract), and
                // every byte pattern is a value of `Self`, a plain number.
                unsafe { out.set_len(n) };
                Some(Ok(out))
            }

            fn view_le(bytes: &[u8]) -> Result<&[Self], String> {
                if cfg!(target_endian = "big") {
                    return Err("views of little-endian data need a little-endian host".into());
                }
                bytemuck::try_cast_slice(bytes).map_err(|e| view_error(e, std::mem::align_of::<Self>()))
            }

            fn copy_le(bytes: &[u8], out: &mut [Self]) {
                let target: &mut [u8] = bytemuck::cast_slice_mut(out);
                if cfg!(target_endian = "little") && target.len() == bytes.len() {
                    target.copy_from_slice(bytes);
                } else {
                    for (slot, chunk) in out.iter_mut().zip(bytes.chunks_exact(Self::SIZE)) {
                        *slot = Self::read_le(chunk);
                    }
                }
            }

            float_conversions!($ty);
        }
    )*};
}

/// The float types convert among themselves under [`DtypePolicy::ConvertFloats`].
macro_rules! float_conversions {
    (f32) => { float_conversions!(@impl |x: f64| x as f32); };
    (f64) => { float_conversions!(@impl |x: f64| x); };
    (f16) => { float_conversions!(@impl f16::from_f64); };
    (bf16) => { float_conversions!(@impl bf16::from_f64); };
    (@impl $from_f64:expr) => {
        fn converts_from(dtype: Dtype) -> bool {
            matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
        }

        fn decode_converted(dtype: Dtype, bytes: &[u8], out: &mut [Self]) {
            let from_f64 = $from_f64;
            let mut slots = out.iter_mut();
            let mut each = |x: Self| {
                if let Some(slot) = slots.next() {
                    *slot = x;
                }
            };
            match dtype {
                Dtype::F16 => bytes.chunks_exact(2).for_each(|c| each(from_f64(f16::read_le(c).to_f64()))),
                Dtype::BF16 => bytes.chunks_exact(2).for_each(|c| each(from_f64(bf16::read_le(c).to_f64()))),
                Dtype::F32 => bytes.chunks_exact(4).for_each(|c| each(from_f64(f64::from(f32::read_le(c))))),
                Dtype::F64 => bytes.chunks_exact(8).for_each(|c| each(from_f64(f64::read_le(c)))),
                _ => {}
            }
        }
    };
    ($other:ty) => {};
}

plain_element! {
    f32 => F32, f64 => F64, f16 => F16, bf16 => BF16,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64,
    u8 => U8, u16 => U16, u32 => U32, u64 => U64,
}

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: Dtype = Dtype::BOOL;
    const SIZE: usize = 1;

    fn read_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }

    fn slice_le_bytes(data: &[Self]) -> Cow<'_, [u8]> {
        Cow::Borrowed(bytemuck::cast_slice(data))
    }

    fn extend_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }

    fn view_le(bytes: &[u8]) -> Result<&[Self], String> {
        bytemuck::checked::try_cast_slice(bytes).map_err(|_| "a bool is neither 0 nor 1".to_owned())
    }

    fn check_values(bytes: &[u8]) -> Result<(), LeafProblem> {
        match bytes.iter().position(|&b| b > 1) {
            Some(at) => Err(LeafProblem::Value(format!(
                "bool element {at} is byte {}, expected 0 or 1",
                bytes[at]
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_convert_only_when_asked() {
        let bytes = 1.5f32.to_le_bytes();
        let exact = decode_vec::<f64>(Dtype::F32, &bytes, DtypePolicy::Exact);
        assert_eq!(
            exact,
            Err(LeafProblem::Dtype {
                expected: Dtype::F64,
                found: Dtype::F32
            })
        );
        assert_eq!(
            decode_vec::<f64>(Dtype::F32, &bytes, DtypePolicy::ConvertFloats),
            Ok(vec![1.5])
        );
        let half = decode_vec::<bf16>(Dtype::F32, &bytes, DtypePolicy::ConvertFloats);
        assert_eq!(half, Ok(vec![bf16::from_f32(1.5)]));
        let ints = decode_vec::<i64>(Dtype::I32, &[1, 0, 0, 0], DtypePolicy::ConvertFloats);
        assert!(ints.is_err());
        let to_int = decode_vec::<i32>(Dtype::F32, &bytes, DtypePolicy::ConvertFloats);
        assert!(to_int.is_err());
    }

    #[test]
    fn bools_accept_only_zero_and_one() {
        assert_eq!(
            decode_vec::<bool>(Dtype::BOOL, &[0, 1, 1], DtypePolicy::Exact),
            Ok(vec![false, true, true])
        );
        let err = decode_vec::<bool>(Dtype::BOOL, &[0, 1, 2], DtypePolicy::Exact);
        assert_eq!(
            err,
            Err(LeafProblem::Value(
                "bool element 2 is byte 2, expected 0 or 1".into()
            ))
        );
    }

    #[test]
    fn bytes_are_little_endian() {
        assert_eq!(&*u32::slice_le_bytes(&[0x0102_0304]), &[4, 3, 2, 1]);
        assert_eq!(<u32 as Element>::read_le(&[4, 3, 2, 1]), 0x0102_0304);
        let mut out = Vec::new();
        (-2i16).extend_le(&mut out);
        assert_eq!(out, [0xfe, 0xff]);
    }
}
