//! `safejax diff`: two checkpoints compared key by key and value by value.
//!
//! Keys only in one file, and common keys whose dtype or shape differ, are differences. Common
//! tensors of the same dtype and shape are compared element by element, a block at a time (the
//! memory used does not grow with the files):
//!
//! - floats (`F16`, `BF16`, `F32`, `F64`): `a` and `b` are equal when `|a - b| <= atol + rtol *
//!   |b|`, numpy's `allclose` (so the tolerance is relative to B); equal values are always
//!   equal; an infinity equals only the same infinity, NaN only NaN. The report
//!   gives the largest `|a - b|` and the largest `|a - b| / |b|`, where a `b` of zero gives 0
//!   if `a` is zero too and infinity otherwise; pairs with one NaN are counted apart and left
//!   out of both maxima;
//! - integers and bools: compared exactly, whatever the tolerances;
//! - other dtypes (F8, sub-byte, complex): compared byte for byte.
//!
//! Metadata differences are shown as a note and do not count.

use std::collections::BTreeSet;
use std::io::Write;

use safejax_core::Dtype;
use safejax_core::format::TensorRef;

use crate::checkpoint::{CHUNK, Checkpoint, Entry};
use crate::output::write_failed;
use crate::values::{BLOCK, decode_floats, decode_ints, is_float, is_int, width};
use crate::{DiffArgs, Failure, Outcome};

/// Runs `safejax diff`.
pub fn run(args: &DiffArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let tolerance = Tolerance::new(args.atol, args.rtol)?;
    let (a, b) = (Checkpoint::open(&args.a)?, Checkpoint::open(&args.b)?);
    let (ta, tb) = (a.parse()?, b.parse()?);
    let (ma, mb) = (ta.by_name(), tb.by_name());
    let mut w = |line: String| writeln!(out, "{line}").map_err(write_failed);
    w(format!("A: {} ({} tensors)", args.a.display(), ma.len()))?;
    w(format!("B: {} ({} tensors)", args.b.display(), mb.len()))?;
    let keys: BTreeSet<&str> = ma.keys().chain(mb.keys()).copied().collect();
    let mut counts = Counts::default();
    for key in keys {
        match (ma.get(key), mb.get(key)) {
            (Some(x), None) => {
                counts.only_a += 1;
                w(format!("only in A: {key} ({})", describe(&x.tensor)))?;
            }
            (None, Some(y)) => {
                counts.only_b += 1;
                w(format!("only in B: {key} ({})", describe(&y.tensor)))?;
            }
            (Some(x), Some(y)) => {
                let line = compare(key, x, y, tolerance, &mut counts);
                x.release();
                y.release();
                if let Some(line) = line {
                    w(line)?;
                }
            }
            (None, None) => {}
        }
    }
    if ta.metadata != tb.metadata {
        w("note: the metadata differs (not counted as a difference)".to_owned())?;
    }
    w(counts.summary())?;
    Ok(if counts.differences() == 0 {
        Outcome::Clean
    } else {
        Outcome::Found
    })
}

/// `--atol` and `--rtol`, checked.
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    atol: f64,
    rtol: f64,
}

impl Tolerance {
    fn new(atol: f64, rtol: f64) -> Result<Self, Failure> {
        for (name, value) in [("--atol", atol), ("--rtol", rtol)] {
            if value.is_nan() || value < 0.0 {
                return Err(Failure(format!(
                    "{name} must be a number at least 0, not {value}"
                )));
            }
        }
        Ok(Tolerance { atol, rtol })
    }
}

/// How the common tensors compared, and how many keys are in one file only.
#[derive(Debug, Default)]
struct Counts {
    only_a: usize,
    only_b: usize,
    identical: usize,
    within: usize,
    different: usize,
}

impl Counts {
    fn differences(&self) -> usize {
        self.only_a + self.only_b + self.different
    }

    fn summary(&self) -> String {
        let common = self.identical + self.within + self.different;
        let verdict = if self.differences() == 0 {
            "equal"
        } else {
            "different"
        };
        format!(
            "{verdict}: {common} common tensors ({} identical, {} equal within tolerance, {} different), {} only in A, {} only in B",
            self.identical, self.within, self.different, self.only_a, self.only_b
        )
    }
}

fn describe(tensor: &TensorRef<'_, '_>) -> String {
    format!("{} {:?}", tensor.dtype(), tensor.shape())
}

/// Compares one common tensor; the line to report, if any.
fn compare(
    key: &str,
    a: &Entry<'_, '_>,
    b: &Entry<'_, '_>,
    tolerance: Tolerance,
    counts: &mut Counts,
) -> Option<String> {
    let (ta, tb) = (&a.tensor, &b.tensor);
    if ta.shape() != tb.shape() {
        counts.different += 1;
        return Some(format!(
            "shape differs: {key}: {} in A, {} in B",
            describe(ta),
            describe(tb)
        ));
    }
    let dtype = ta.dtype();
    if dtype != tb.dtype() {
        counts.different += 1;
        let mut line = format!(
            "dtype differs: {key}: {} in A, {} in B",
            describe(ta),
            describe(tb)
        );
        if is_float(dtype) && is_float(tb.dtype()) {
            line.push_str(&format!(" ({})", float_stats(a, b, tolerance).maxima()));
        }
        return Some(line);
    }
    if a.chunks(CHUNK).zip(b.chunks(CHUNK)).all(|(x, y)| x == y) {
        counts.identical += 1;
        return None;
    }
    if is_float(dtype) {
        let stats = float_stats(a, b, tolerance);
        if stats.not_close == 0 {
            counts.within += 1;
            return Some(format!("within tolerance: {key}: {}", stats.maxima()));
        }
        counts.different += 1;
        return Some(format!(
            "values differ: {key}: {} of {} elements out of tolerance{}; {}",
            stats.not_close,
            stats.elements,
            stats.nan_note(),
            stats.maxima()
        ));
    }
    counts.different += 1;
    if is_int(dtype) {
        let (differing, max) = int_stats(dtype, a, b);
        let elements = ta.byte_len() / width(dtype);
        return Some(format!(
            "values differ: {key}: {differing} of {elements} elements differ; max |a-b| = {max}"
        ));
    }
    let differing: usize = a
        .chunks(CHUNK)
        .zip(b.chunks(CHUNK))
        .map(|(x, y)| x.iter().zip(y).filter(|(p, q)| p != q).count())
        .sum();
    if dtype == Dtype::BOOL {
        return Some(format!(
            "values differ: {key}: {differing} of {} elements differ",
            ta.byte_len()
        ));
    }
    Some(format!(
        "values differ: {key}: {differing} of {} bytes differ ({dtype} is compared byte for byte)",
        ta.byte_len()
    ))
}

/// The elements of the chunks in which two tensors are read together: a chunk of the widest
/// dtype is [`CHUNK`] bytes.
const CHUNK_ELEMENTS: usize = CHUNK / 8;

/// What a float comparison found.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct FloatStats {
    /// Elements compared.
    pub elements: usize,
    /// Elements not equal within the tolerance.
    pub not_close: usize,
    /// Pairs where exactly one value is NaN.
    pub nan_mismatches: usize,
    /// The largest `|a - b|` (pairs with one NaN left out).
    pub max_abs: f64,
    /// The largest `|a - b| / |b|` (pairs with one NaN left out; 0/0 is 0, x/0 infinite).
    pub max_rel: f64,
}

impl FloatStats {
    fn maxima(&self) -> String {
        format!(
            "max |a-b| = {:.3e}, max |a-b|/|b| = {:.3e}",
            self.max_abs, self.max_rel
        )
    }

    fn nan_note(&self) -> String {
        match self.nan_mismatches {
            0 => String::new(),
            n => format!(" ({n} NaN in only one file)"),
        }
    }

    /// Adds the pair `a`, `b`.
    fn add(&mut self, a: f64, b: f64, tolerance: Tolerance) {
        self.elements += 1;
        if a == b || (a.is_nan() && b.is_nan()) {
            return;
        }
        if a.is_nan() || b.is_nan() {
            self.nan_mismatches += 1;
            self.not_close += 1;
            return;
        }
        let abs = (a - b).abs();
        let rel = if b == 0.0 {
            f64::INFINITY
        } else {
            abs / b.abs()
        };
        self.max_abs = self.max_abs.max(abs);
        self.max_rel = self.max_rel.max(rel);
        // Infinities are equal only to themselves (caught above), whatever the tolerance.
        if a.is_infinite() || b.is_infinite() || abs > tolerance.atol + tolerance.rtol * b.abs() {
            self.not_close += 1;
        }
    }
}

/// Compares two float tensors of the same number of elements, a block at a time.
fn float_stats(a: &Entry<'_, '_>, b: &Entry<'_, '_>, tolerance: Tolerance) -> FloatStats {
    let mut stats = FloatStats::default();
    let (da, db) = (a.tensor.dtype(), b.tensor.dtype());
    let chunks_a = a.chunks(CHUNK_ELEMENTS * width(da));
    let chunks_b = b.chunks(CHUNK_ELEMENTS * width(db));
    for (chunk_a, chunk_b) in chunks_a.zip(chunks_b) {
        add_floats(&mut stats, (da, chunk_a), (db, chunk_b), tolerance);
    }
    stats
}

/// Adds the pairs of two runs of floats of the same length to `stats`.
fn add_floats(stats: &mut FloatStats, a: (Dtype, &[u8]), b: (Dtype, &[u8]), tolerance: Tolerance) {
    let (mut block_a, mut block_b) = ([0f64; BLOCK], [0f64; BLOCK]);
    let chunks_a = a.1.chunks(BLOCK * width(a.0));
    let chunks_b = b.1.chunks(BLOCK * width(b.0));
    for (chunk_a, chunk_b) in chunks_a.zip(chunks_b) {
        let n = chunk_a.len() / width(a.0);
        decode_floats(a.0, chunk_a, &mut block_a[..n]);
        decode_floats(b.0, chunk_b, &mut block_b[..n]);
        for (&x, &y) in block_a[..n].iter().zip(&block_b[..n]) {
            stats.add(x, y, tolerance);
        }
    }
}

/// Compares two integer tensors of `dtype` exactly: how many elements differ, and the largest
/// difference.
fn int_stats(dtype: Dtype, a: &Entry<'_, '_>, b: &Entry<'_, '_>) -> (usize, i128) {
    let mut found = (0, 0);
    for (chunk_a, chunk_b) in a.chunks(CHUNK).zip(b.chunks(CHUNK)) {
        add_ints(&mut found, dtype, chunk_a, chunk_b);
    }
    found
}

/// Adds the differing elements of two runs of integers of the same length to `found`.
fn add_ints(found: &mut (usize, i128), dtype: Dtype, a: &[u8], b: &[u8]) {
    let (mut block_a, mut block_b) = ([0i128; BLOCK], [0i128; BLOCK]);
    for (chunk_a, chunk_b) in a
        .chunks(BLOCK * width(dtype))
        .zip(b.chunks(BLOCK * width(dtype)))
    {
        let n = chunk_a.len() / width(dtype);
        decode_ints(dtype, chunk_a, &mut block_a[..n]);
        decode_ints(dtype, chunk_b, &mut block_b[..n]);
        for (&x, &y) in block_a[..n].iter().zip(&block_b[..n]) {
            if x != y {
                found.0 += 1;
                found.1 = found.1.max((x - y).abs());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pairs: &[(f64, f64)], atol: f64, rtol: f64) -> FloatStats {
        let mut stats = FloatStats::default();
        let tolerance = Tolerance { atol, rtol };
        pairs.iter().for_each(|&(a, b)| stats.add(a, b, tolerance));
        stats
    }

    #[test]
    fn tolerance_is_numpy_allclose() {
        let s = stats(&[(1.0, 1.1), (2.0, 2.0)], 0.0, 0.1);
        assert_eq!(s.not_close, 0);
        assert!((s.max_abs - 0.1).abs() < 1e-12);
        assert!((s.max_rel - 0.1 / 1.1).abs() < 1e-12);
        assert_eq!(stats(&[(1.0, 1.1)], 0.0, 0.05).not_close, 1);
        assert_eq!(stats(&[(1.0, 1.1)], 0.11, 0.0).not_close, 0);
    }

    #[test]
    fn zeros_nan_and_infinities() {
        let s = stats(&[(0.0, 0.0), (1e-9, 0.0)], 1e-8, 0.0);
        assert_eq!((s.not_close, s.max_rel), (0, f64::INFINITY));
        let s = stats(
            &[(f64::NAN, f64::NAN), (f64::INFINITY, f64::INFINITY)],
            0.0,
            0.0,
        );
        assert_eq!((s.not_close, s.max_abs, s.max_rel), (0, 0.0, 0.0));
        let s = stats(&[(f64::NAN, 1.0), (1.0, 1.0)], 1.0, 1.0);
        assert_eq!((s.not_close, s.nan_mismatches, s.max_abs), (1, 1, 0.0));
        let s = stats(&[(f64::INFINITY, f64::NEG_INFINITY)], 1e300, 1.0);
        assert_eq!(s.not_close, 1);
        let s = stats(&[(f64::INFINITY, 1.0)], 1e300, 1.0);
        assert_eq!(s.not_close, 1);
    }

    #[test]
    fn negative_or_nan_tolerances_are_refused() {
        assert!(Tolerance::new(-1.0, 0.0).is_err());
        assert!(Tolerance::new(0.0, f64::NAN).is_err());
        assert!(Tolerance::new(0.0, 1e-5).is_ok());
    }

    #[test]
    fn integers_compare_exactly() {
        let a: Vec<u8> = [1i32, -5, 7].iter().flat_map(|x| x.to_le_bytes()).collect();
        let b: Vec<u8> = [1i32, 5, 7].iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut found = (0, 0);
        add_ints(&mut found, Dtype::I32, &a, &b);
        assert_eq!(found, (1, 10));
    }
}
