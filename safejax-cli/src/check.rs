//! `safejax check`: every file validated completely, one line per file.
//!
//! A file is ok when its header is valid JSON of the format's shape, every tensor has a known
//! dtype and the size its shape needs, the tensors' offsets tile the data exactly (no gap, no
//! overlap, nothing after the last tensor), and every byte of a bool tensor is 0 or 1. The
//! first problem in the file's order is reported with its byte offset (from the start of the
//! file) and the tensor it concerns. With `--values`, NaN and infinite values of every `F16`,
//! `BF16`, `F32` and `F64` tensor are counted, and any makes the check fail.

use std::io::Write;

use safejax_core::format::Parsed;
use safejax_core::{Dtype, Error};

use crate::checkpoint::{CHUNK, Checkpoint, Chunks, File, cause};
use crate::output::write_failed;
use crate::values::{float_blocks, is_float};
use crate::{CheckArgs, Failure, Outcome};

/// Runs `safejax check`.
pub fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let mut outcome = Outcome::Clean;
    for path in &args.files {
        let checkpoint = Checkpoint::open(path)?;
        // What a load only warns of (an index's `total_size` that disagrees with its shards)
        // fails a check: the files are not what their index says.
        for warning in checkpoint.warnings() {
            writeln!(out, "{}: {warning}", path.display()).map_err(write_failed)?;
            outcome = Outcome::Found;
        }
        for problem in checkpoint.problems() {
            writeln!(out, "{}: {problem}", path.display()).map_err(write_failed)?;
            outcome = Outcome::Found;
        }
        for file in checkpoint.files() {
            if !check_file(file, args.values, out)? {
                outcome = Outcome::Found;
            }
        }
    }
    Ok(outcome)
}

/// Checks one file and writes its lines; whether it is ok.
fn check_file(file: &File, values: bool, out: &mut dyn Write) -> Result<bool, Failure> {
    let name = file.path().display();
    let parsed = match file.parse() {
        Ok(parsed) => parsed,
        Err(error) => {
            writeln!(out, "{name}: {}", problem(&error)).map_err(write_failed)?;
            return Ok(false);
        }
    };
    if let Some((offset, reason)) = bad_bool(file, &parsed) {
        writeln!(out, "{name}: problem at byte {offset}: {reason}").map_err(write_failed)?;
        return Ok(false);
    }
    let summary = format!("{} tensors, {} bytes", parsed.len(), file.len());
    if !values {
        writeln!(out, "{name}: ok ({summary})").map_err(write_failed)?;
        return Ok(true);
    }
    let counts = count_non_finite(file, &parsed);
    let floats = counts.len();
    let bad: Vec<_> = counts.iter().filter(|c| c.nan + c.inf > 0).collect();
    if bad.is_empty() {
        writeln!(
            out,
            "{name}: ok ({summary}; {floats} float tensors, every value finite)"
        )
        .map_err(write_failed)?;
        return Ok(true);
    }
    writeln!(
        out,
        "{name}: non-finite values in {} of {floats} float tensors ({summary})",
        bad.len()
    )
    .map_err(write_failed)?;
    for count in bad {
        writeln!(
            out,
            "{name}: tensor `{}` at byte {}: {} NaN, {} infinite of {} values",
            count.name, count.offset, count.nan, count.inf, count.len
        )
        .map_err(write_failed)?;
    }
    Ok(false)
}

/// How a problem the library found is reported: its offset first.
fn problem(error: &Error) -> String {
    match error {
        Error::Format { offset, reason } => format!("problem at byte {offset}: {reason}"),
        other => cause(other),
    }
}

/// The first byte of a bool tensor that is neither 0 nor 1: its offset in the file, and what
/// is wrong there.
fn bad_bool<'f>(file: &'f File, parsed: &Parsed<'f>) -> Option<(u64, String)> {
    parsed
        .iter()
        .filter(|(_, tensor)| tensor.dtype() == Dtype::BOOL)
        .find_map(|(name, tensor)| {
            let mut seen = 0;
            for chunk in Chunks::new(file, &tensor, CHUNK) {
                if let Some(at) = chunk.iter().position(|&b| b > 1) {
                    let element = seen + at;
                    return Some((
                        tensor.offset() + element as u64,
                        format!(
                            "tensor `{name}`: bool element {element} is byte {}, expected 0 or 1",
                            chunk[at]
                        ),
                    ));
                }
                seen += chunk.len();
            }
            None
        })
}

/// The non-finite values of one float tensor.
struct NonFinite<'p> {
    name: &'p str,
    offset: u64,
    len: usize,
    nan: usize,
    inf: usize,
}

/// The NaN and infinite values of every float tensor, a block at a time.
fn count_non_finite<'p, 'f>(file: &'f File, parsed: &'p Parsed<'f>) -> Vec<NonFinite<'p>> {
    parsed
        .iter()
        .filter(|(_, tensor)| is_float(tensor.dtype()))
        .map(|(name, tensor)| {
            let mut count = NonFinite {
                name,
                offset: tensor.offset(),
                len: 0,
                nan: 0,
                inf: 0,
            };
            for chunk in Chunks::new(file, &tensor, CHUNK) {
                float_blocks(tensor.dtype(), chunk, |block| {
                    count.len += block.len();
                    count.nan += block.iter().filter(|x| x.is_nan()).count();
                    count.inf += block.iter().filter(|x| x.is_infinite()).count();
                });
            }
            count
        })
        .collect()
}
