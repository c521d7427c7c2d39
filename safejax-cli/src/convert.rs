//! `safejax convert`: a checkpoint rewritten with other float dtypes, other key names, a subset
//! of its tensors, or in shards.
//!
//! - `--only PREFIX` keeps the tensors whose key, as the input has it (before any renaming),
//!   starts with one of the prefixes.
//! - `--rename 'REGEX=REPLACEMENT'` rules apply in the order given, each to the key the
//!   previous one produced, replacing every match (`Regex::replace_all`, like Python's
//!   `re.sub`); the replacement may name groups as `$1` or `${name}`. The pattern ends at the
//!   first `=` (write `\x3D` for a `=` inside it). Two keys renamed to one, or a key renamed to
//!   nothing, are refused before anything is written.
//! - `--dtype` converts every `F16`, `BF16`, `F32` and `F64` tensor, rounding to nearest (ties
//!   to even); integer, bool and other float formats (F8) are copied as they are.
//! - The metadata is carried over.
//!
//! Tensors are converted one at a time while the output is written, so the memory used is that
//! of one converted tensor whatever the size of the input. The output replaces its file
//! atomically: a failed conversion leaves the old file, or none.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use regex::Regex;
use safejax_core::{Dtype, Leaf, Metadata, Saver, Tensor};

use crate::checkpoint::{CHUNK, Checkpoint, Entry, cause, is_index};
use crate::legacy::{self, Format};
use crate::output::write_failed;
use crate::units::parse_size;
use crate::values::{convert_floats, is_float, width};
use crate::{ConvertArgs, Failure, Outcome};

/// Inputs from this size on show a progress bar, when standard error is a terminal.
pub const PROGRESS_FROM: u64 = 64 << 20;

/// Runs `safejax convert`.
pub fn run(args: &ConvertArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let max_shard_size = args
        .max_shard_size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| Failure(format!("--max-shard-size: {e}")))?;
    let target = args.dtype.as_deref().map(target_dtype).transpose()?;
    let rules = args
        .renames
        .iter()
        .map(|spec| Rename::parse(spec))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(format) = Format::of(&args.input) {
        let tensors = legacy::read(&args.input, format, args)?;
        let total = tensors.len();
        let (selected, renamed) = select(
            tensors.iter().map(|(key, tensor)| (key.as_str(), tensor)),
            args,
            &rules,
        )?;
        let leaves: Vec<InMemory<'_>> = selected
            .into_iter()
            .map(|(name, tensor)| InMemory::new(name, tensor, target))
            .collect();
        let converted = leaves.iter().filter(|leaf| leaf.to.is_some()).count();
        let named: Vec<(String, &dyn Leaf)> = leaves
            .iter()
            .map(|leaf| (leaf.name.clone(), leaf as &dyn Leaf))
            .collect();
        write_output(&named, &Metadata::new(), &args.output, max_shard_size)?;
        let counts = Counts {
            written: named.len(),
            converted,
            renamed,
            total,
        };
        return report(args, target, &rules, counts, out);
    }
    if args.style.is_some() || args.state_vars.is_some() || !args.var_kinds.is_empty() {
        return Err(Failure::at(
            &args.input,
            "--style, --state-vars and --var-kind say how a file of another format (.msgpack, \
             .pkl, .npz) is named; a safetensors file keeps its keys (rename them with --rename)",
        ));
    }
    let input = Checkpoint::open(&args.input)?;
    let tensors = input.parse()?;
    let writing = Writing {
        progress: progress_bar(input.total_bytes()),
        borrowed: Cell::new(None),
    };
    let (selected, renamed) = select(tensors.by_name().into_iter(), args, &rules)?;
    let leaves: Vec<Converting<'_, '_, '_>> = selected
        .into_iter()
        .map(|(name, entry)| Converting::new(name, entry, target, &writing))
        .collect();
    let converted = leaves.iter().filter(|leaf| leaf.converts()).count();
    let named: Vec<(String, &dyn Leaf)> = leaves
        .iter()
        .map(|leaf| (leaf.name.clone(), leaf as &dyn Leaf))
        .collect();
    let written = write_output(&named, &tensors.metadata, &args.output, max_shard_size);
    writing.progress.finish_and_clear();
    writing.release_borrowed();
    written?;
    let counts = Counts {
        written: named.len(),
        converted,
        renamed,
        total: tensors.len(),
    };
    report(args, target, &rules, counts, out)
}

/// The tensors `--only` keeps, each with its name after `--rename`, and how many were renamed;
/// refused when two end up with one name, or when none is kept.
fn select<'k, T>(
    tensors: impl Iterator<Item = (&'k str, T)>,
    args: &ConvertArgs,
    rules: &[Rename],
) -> Result<(Vec<(String, T)>, usize), Failure> {
    let mut selected = Vec::new();
    let mut origin: HashMap<String, &str> = HashMap::new();
    let mut renamed = 0;
    for (key, tensor) in tensors {
        if !args.only.is_empty() && !args.only.iter().any(|prefix| key.starts_with(prefix)) {
            continue;
        }
        let name = rename(key, rules);
        if name.is_empty() || name == safejax_core::format::METADATA_KEY {
            return Err(Failure(format!(
                "--rename turns `{key}` into `{name}`, which cannot name a tensor; nothing was written"
            )));
        }
        if let Some(first) = origin.insert(name.clone(), key) {
            return Err(Failure(format!(
                "--rename turns both `{first}` and `{key}` into `{name}`; nothing was written"
            )));
        }
        renamed += usize::from(name != key);
        selected.push((name, tensor));
    }
    if selected.is_empty() {
        return Err(Failure(format!(
            "--only {}: no key of `{}` starts with these prefixes; nothing was written",
            args.only.join(" "),
            args.input.display()
        )));
    }
    Ok((selected, renamed))
}

/// What a conversion did, for its report.
struct Counts {
    written: usize,
    converted: usize,
    renamed: usize,
    /// The input's tensors.
    total: usize,
}

/// Prints what was written.
fn report(
    args: &ConvertArgs,
    target: Option<Dtype>,
    rules: &[Rename],
    counts: Counts,
    out: &mut dyn Write,
) -> Result<Outcome, Failure> {
    let mut what = vec![format!("{} tensors", counts.written)];
    if let Some(dtype) = target {
        what.push(format!("{} converted to {dtype}", counts.converted));
    }
    if !rules.is_empty() {
        what.push(format!("{} renamed", counts.renamed));
    }
    if !args.only.is_empty() {
        what.push(format!("{} left out", counts.total - counts.written));
    }
    let bytes = std::fs::metadata(&args.output).map_or(0, |m| m.len());
    writeln!(
        out,
        "wrote {}: {} ({bytes} bytes)",
        args.output.display(),
        what.join(", ")
    )
    .map_err(write_failed)?;
    Ok(Outcome::Clean)
}

/// Writes the output: one file, or (with an index as `path`) shards and their index. Every
/// output goes through here.
///
/// `max_shard_size` bounds the tensor bytes of one file. A single-file output that would be
/// larger is refused before anything is written: shards are written only when `path` is an
/// index, and writing shards needs safejax-core's shard support, which this build does not
/// have yet, so an index as `path` is refused too.
pub fn write_output(
    tensors: &[(String, &dyn Leaf)],
    metadata: &Metadata,
    path: &Path,
    max_shard_size: Option<u64>,
) -> Result<(), Failure> {
    if is_index(path) {
        let max = max_shard_size.unwrap_or(safejax_core::shard::DEFAULT_MAX_SHARD_SIZE);
        return Saver::new()
            .metadata(metadata.clone())
            .max_shard_size(max)
            .save_tensors(tensors, path)
            .map_err(|e| Failure::at(path, cause(&e)));
    }
    if let Some(max) = max_shard_size {
        let total: u64 = tensors.iter().map(|(_, leaf)| leaf.data_len() as u64).sum();
        if total > max {
            return Err(Failure::at(
                path,
                format!(
                    "the tensors take {total} bytes, more than --max-shard-size ({max} bytes): \
                     give an index (`*.safetensors.index.json`) as the output to write shards"
                ),
            ));
        }
    }
    Saver::new()
        .metadata(metadata.clone())
        .save_tensors(tensors, path)
        .map_err(|e| Failure::at(path, cause(&e)))
}

/// The dtype `--dtype` names.
fn target_dtype(name: &str) -> Result<Dtype, Failure> {
    match name {
        "f16" => Ok(Dtype::F16),
        "bf16" => Ok(Dtype::BF16),
        "f32" => Ok(Dtype::F32),
        "f64" => Ok(Dtype::F64),
        other => Err(Failure(format!(
            "--dtype {other}: expected f16, bf16, f32 or f64"
        ))),
    }
}

/// One `--rename` rule.
#[derive(Debug)]
struct Rename {
    pattern: Regex,
    replacement: String,
}

impl Rename {
    /// Reads `REGEX=REPLACEMENT`.
    fn parse(spec: &str) -> Result<Self, Failure> {
        let Some((pattern, replacement)) = spec.split_once('=') else {
            return Err(Failure(format!(
                "--rename `{spec}`: expected REGEX=REPLACEMENT"
            )));
        };
        Ok(Rename {
            pattern: compile("--rename", spec, pattern)?,
            replacement: replacement.to_owned(),
        })
    }
}

/// The regex `pattern` of the option `flag` given as `spec`, or a one-line failure saying why
/// it is not one.
pub(crate) fn compile(flag: &str, spec: &str, pattern: &str) -> Result<Regex, Failure> {
    Regex::new(pattern).map_err(|e| {
        // The crate's message spans lines (the pattern, a caret); its last line says why.
        let text = e.to_string();
        let why = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Failure(format!(
            "{flag} `{spec}`: invalid regex `{pattern}`: {}",
            why.trim().trim_start_matches("error: ")
        ))
    })
}

/// `key` after every rule, in order.
fn rename(key: &str, rules: &[Rename]) -> String {
    let mut name = key.to_owned();
    for rule in rules {
        if let Cow::Owned(new) = rule.pattern.replace_all(&name, rule.replacement.as_str()) {
            name = new;
        }
    }
    name
}

/// A progress bar on standard error for large inputs; hidden otherwise, and when standard
/// error is not a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    if total < PROGRESS_FROM || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// What the tensors being written share: the progress bar, and the tensor of the input whose
/// bytes the writer was last handed as they are.
struct Writing<'t, 'c> {
    progress: ProgressBar,
    borrowed: Cell<Option<Entry<'t, 'c>>>,
}

impl Writing<'_, '_> {
    /// Hands the pages of the tensor last written as it is back to the kernel: the writer,
    /// which asks for one tensor at a time, is done with it.
    fn release_borrowed(&self) {
        if let Some(entry) = self.borrowed.take() {
            entry.release();
        }
    }
}

/// A tensor of the input as it is written to the output: converted when the writer asks for
/// its data, so that one converted tensor exists at a time, and the input's pages handed back
/// to the kernel as they are read.
struct Converting<'w, 't, 'c> {
    name: String,
    entry: Entry<'t, 'c>,
    to: Option<Dtype>,
    writing: &'w Writing<'t, 'c>,
}

impl<'w, 't, 'c> Converting<'w, 't, 'c> {
    fn new(
        name: String,
        entry: Entry<'t, 'c>,
        target: Option<Dtype>,
        writing: &'w Writing<'t, 'c>,
    ) -> Self {
        let dtype = entry.tensor.dtype();
        let to = target.filter(|&to| is_float(dtype) && to != dtype);
        Converting {
            name,
            entry,
            to,
            writing,
        }
    }

    fn converts(&self) -> bool {
        self.to.is_some()
    }
}

impl Leaf for Converting<'_, '_, '_> {
    fn dtype(&self) -> Dtype {
        self.to.unwrap_or(self.entry.tensor.dtype())
    }

    fn shape(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(self.entry.tensor.shape())
    }

    fn data(&self) -> Cow<'_, [u8]> {
        self.writing.release_borrowed();
        self.writing
            .progress
            .inc(self.entry.tensor.byte_len() as u64);
        let from = self.entry.tensor.dtype();
        let Some(to) = self.to else {
            self.writing.borrowed.set(Some(self.entry));
            return Cow::Borrowed(self.entry.bytes());
        };
        let mut out = Vec::with_capacity(self.data_len());
        // Whole elements per chunk: `CHUNK` is a multiple of every float width.
        for chunk in self.entry.chunks(CHUNK) {
            convert_floats(from, to, chunk, &mut out);
        }
        Cow::Owned(out)
    }

    fn data_len(&self) -> usize {
        let len = self.entry.tensor.byte_len();
        match self.to {
            Some(to) => len / width(self.entry.tensor.dtype()) * width(to),
            None => len,
        }
    }
}

/// A tensor already in memory (read from another format) as it is written: converted when the
/// writer asks for its data, one tensor at a time.
struct InMemory<'t> {
    name: String,
    tensor: &'t Tensor,
    to: Option<Dtype>,
}

impl<'t> InMemory<'t> {
    fn new(name: String, tensor: &'t Tensor, target: Option<Dtype>) -> Self {
        let dtype = tensor.dtype();
        let to = target.filter(|&to| is_float(dtype) && to != dtype);
        InMemory { name, tensor, to }
    }
}

impl Leaf for InMemory<'_> {
    fn dtype(&self) -> Dtype {
        self.to.unwrap_or(self.tensor.dtype())
    }

    fn shape(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(self.tensor.shape())
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let Some(to) = self.to else {
            return Cow::Borrowed(Tensor::data(self.tensor));
        };
        let mut out = Vec::with_capacity(self.data_len());
        convert_floats(self.tensor.dtype(), to, Tensor::data(self.tensor), &mut out);
        Cow::Owned(out)
    }

    fn data_len(&self) -> usize {
        let len = Tensor::data(self.tensor).len();
        match self.to {
            Some(to) => len / width(self.tensor.dtype()) * width(to),
            None => len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(specs: &[&str]) -> Vec<Rename> {
        specs
            .iter()
            .map(|s| Rename::parse(s).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn rules_apply_in_order_to_every_match() {
        let r = rules(&["^params\\.=", "Dense_(\\d+)=dense${1}", "dense0=first"]);
        assert_eq!(rename("params.Dense_0.kernel", &r), "first.kernel");
        assert_eq!(rename("params.Dense_1.bias", &r), "dense1.bias");
        let every = rules(&["_=-"]);
        assert_eq!(rename("a_b_c", &every), "a-b-c");
    }

    #[test]
    fn bad_rules_are_one_line() {
        let err = Rename::parse("(=x").map(drop).unwrap_err().0;
        assert_eq!(err, "--rename `(=x`: invalid regex `(`: unclosed group");
        let err = Rename::parse("nothing").map(drop).unwrap_err().0;
        assert!(err.contains("expected REGEX=REPLACEMENT"), "{err}");
    }
}
