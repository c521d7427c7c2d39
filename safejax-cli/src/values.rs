//! Tensor values decoded a block at a time, so that the memory a command uses does not grow
//! with the tensor: floats of every width as `f64`, integers as `i128`.

use half::{bf16, f16};
use safejax_core::Dtype;

/// How many elements are decoded at a time.
pub const BLOCK: usize = 8192;

/// Whether `dtype` is one of the float dtypes decoded here: `F16`, `BF16`, `F32`, `F64`. (The
/// F8 and sub-byte floats are not.)
pub fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
}

/// Whether `dtype` is an integer dtype.
pub fn is_int(dtype: Dtype) -> bool {
    matches!(
        dtype,
        Dtype::I8
            | Dtype::I16
            | Dtype::I32
            | Dtype::I64
            | Dtype::U8
            | Dtype::U16
            | Dtype::U32
            | Dtype::U64
    )
}

/// Bytes per element of a whole-byte dtype.
pub fn width(dtype: Dtype) -> usize {
    dtype.bitsize() / 8
}

fn array<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut raw = [0u8; N];
    raw.copy_from_slice(chunk);
    raw
}

/// Decodes the little-endian floats of `dtype` (see [`is_float`]) in `bytes` into `out`, one
/// value per slot; exact, as every float of these widths is an `f64`.
pub fn decode_floats(dtype: Dtype, bytes: &[u8], out: &mut [f64]) {
    let slots = out.iter_mut();
    match dtype {
        Dtype::F16 => slots
            .zip(bytes.chunks_exact(2))
            .for_each(|(s, c)| *s = f16::from_le_bytes(array(c)).to_f64()),
        Dtype::BF16 => slots
            .zip(bytes.chunks_exact(2))
            .for_each(|(s, c)| *s = bf16::from_le_bytes(array(c)).to_f64()),
        Dtype::F32 => slots
            .zip(bytes.chunks_exact(4))
            .for_each(|(s, c)| *s = f64::from(f32::from_le_bytes(array(c)))),
        Dtype::F64 => slots
            .zip(bytes.chunks_exact(8))
            .for_each(|(s, c)| *s = f64::from_le_bytes(array(c))),
        _ => {}
    }
}

/// Decodes the little-endian integers of `dtype` (see [`is_int`]) in `bytes` into `out`.
pub fn decode_ints(dtype: Dtype, bytes: &[u8], out: &mut [i128]) {
    macro_rules! ints {
        ($ty:ty, $size:literal) => {
            out.iter_mut()
                .zip(bytes.chunks_exact($size))
                .for_each(|(s, c)| *s = i128::from(<$ty>::from_le_bytes(array(c))))
        };
    }
    match dtype {
        Dtype::I8 => ints!(i8, 1),
        Dtype::I16 => ints!(i16, 2),
        Dtype::I32 => ints!(i32, 4),
        Dtype::I64 => ints!(i64, 8),
        Dtype::U8 => ints!(u8, 1),
        Dtype::U16 => ints!(u16, 2),
        Dtype::U32 => ints!(u32, 4),
        Dtype::U64 => ints!(u64, 8),
        _ => {}
    }
}

/// Appends `values` to `out` as little-endian floats of `dtype` (see [`is_float`]), each
/// rounded to the nearest value of the dtype (ties to even).
pub fn encode_floats(dtype: Dtype, values: &[f64], out: &mut Vec<u8>) {
    match dtype {
        Dtype::F16 => values
            .iter()
            .for_each(|&x| out.extend_from_slice(&f16::from_f64(x).to_le_bytes())),
        Dtype::BF16 => values
            .iter()
            .for_each(|&x| out.extend_from_slice(&bf16::from_f64(x).to_le_bytes())),
        Dtype::F32 => values
            .iter()
            .for_each(|&x| out.extend_from_slice(&(x as f32).to_le_bytes())),
        Dtype::F64 => values
            .iter()
            .for_each(|&x| out.extend_from_slice(&x.to_le_bytes())),
        _ => {}
    }
}

/// Hands the floats of a tensor of `dtype` (see [`is_float`]) to `each`, [`BLOCK`] values at
/// a time.
pub fn float_blocks(dtype: Dtype, bytes: &[u8], mut each: impl FnMut(&[f64])) {
    let mut block = [0f64; BLOCK];
    for chunk in bytes.chunks(BLOCK * width(dtype)) {
        let n = chunk.len() / width(dtype);
        decode_floats(dtype, chunk, &mut block[..n]);
        each(&block[..n]);
    }
}

/// Appends the floats of `bytes`, of dtype `from`, to `out` as floats of dtype `to`.
pub fn convert_floats(from: Dtype, to: Dtype, bytes: &[u8], out: &mut Vec<u8>) {
    float_blocks(from, bytes, |values| encode_floats(to, values, out));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(from: Dtype, to: Dtype, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        convert_floats(from, to, bytes, &mut out);
        out
    }

    #[test]
    fn floats_round_trip_through_every_width() {
        let values = [0.0, -1.5, 3.25, f64::INFINITY, f64::NEG_INFINITY, 65504.0];
        for dtype in [Dtype::F16, Dtype::BF16, Dtype::F32, Dtype::F64] {
            let mut bytes = Vec::new();
            encode_floats(dtype, &values, &mut bytes);
            assert_eq!(bytes.len(), values.len() * width(dtype));
            let mut back = [0f64; 6];
            decode_floats(dtype, &bytes, &mut back);
            let expected = if dtype == Dtype::BF16 {
                65536.0
            } else {
                65504.0
            };
            assert_eq!(&back[..5], &values[..5], "{dtype}");
            assert_eq!(back[5], expected, "{dtype}");
        }
        let nan = convert(Dtype::F64, Dtype::F16, &f64::NAN.to_le_bytes());
        assert!(f16::from_le_bytes(array(&nan)).is_nan());
    }

    #[test]
    fn narrowing_rounds_to_nearest() {
        let bytes = convert(Dtype::F32, Dtype::F16, &(1.0f32 + 1e-4).to_le_bytes());
        assert_eq!(f16::from_le_bytes(array(&bytes)), f16::from_f32(1.0));
        let bytes = convert(Dtype::F16, Dtype::F32, &f16::from_f32(0.5).to_le_bytes());
        assert_eq!(bytes, 0.5f32.to_le_bytes());
    }

    #[test]
    fn integers_keep_their_sign_and_range() {
        let mut out = [0i128; 2];
        decode_ints(Dtype::I8, &[0xff, 0x7f], &mut out);
        assert_eq!(out, [-1, 127]);
        decode_ints(Dtype::U64, &[0xff; 16], &mut out);
        assert_eq!(out, [i128::from(u64::MAX); 2]);
    }

    #[test]
    fn blocks_cover_the_whole_tensor() {
        let values: Vec<f64> = (0..BLOCK * 2 + 3).map(|i| i as f64).collect();
        let mut bytes = Vec::new();
        encode_floats(Dtype::F32, &values, &mut bytes);
        let mut seen = Vec::new();
        float_blocks(Dtype::F32, &bytes, |block| seen.extend_from_slice(block));
        assert_eq!(seen, values);
    }
}
