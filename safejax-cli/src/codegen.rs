//! `safejax codegen`: the Rust source of `#[derive(SafeParams)]` structs that load a file
//! strictly.
//!
//! The file's keys are read in its style (given, or recognised by [`crate::detect`]) into a tree
//! of modules. Each module becomes a struct, one per distinct shape, shared where modules repeat;
//! numbered modules (Flax `blocks_0`, `blocks_1`, Haiku `linear`, `linear_1`, Objax
//! `ModuleList` and `Sequential` elements) become one `Vec` of a struct that holds what each
//! element holds, with `Option` fields for what only some of them have.
//!
//! Flax keys start with their collection when the first part of every key is one Flax writes
//! (`params`, `batch_stats`, ...), Haiku keys when every key has two `.`; the root declares the
//! most common collection and a field whose tensors are all in another names it.

mod layout;
mod names;
mod render;
mod tree;

use std::io::Write;
use std::path::Path;

use safejax_core::key::{MAX_DEPTH, check_name};
use safejax_core::{Dtype, Style};

use crate::checkpoint::{Checkpoint, is_index};
use crate::{CodegenArgs, Failure, Outcome, StyleArg};

/// What to generate, besides the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How the keys are named; `Auto` recognises it from them.
    pub style: StyleArg,
    /// The name of the root struct.
    pub root: String,
    /// Whether the root pins the file with `#[safejax(expect = "<file>")]`, the path written as
    /// given (the derive resolves it against the directory of the crate's `Cargo.toml`).
    pub expect: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            style: StyleArg::Auto,
            root: "Model".to_owned(),
            expect: false,
        }
    }
}

/// One tensor of a file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Its key.
    pub key: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// Runs `safejax codegen`.
pub fn run(args: &CodegenArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let options = Options {
        style: args.style,
        root: args.root.clone(),
        expect: args.expect,
    };
    let source = generate(&args.file, &options)?;
    out.write_all(source.as_bytes())
        .map_err(|e| Failure(format!("cannot write the output: {e}")))?;
    Ok(Outcome::Clean)
}

/// The source of the structs that load the safetensors file at `path` strictly. Only its header
/// is read.
pub fn generate(path: &Path, options: &Options) -> Result<String, Failure> {
    if options.expect && is_index(path) {
        return Err(Failure::at(
            path,
            "`expect` pins a struct to one `.safetensors` file, not to the index of a sharded \
             checkpoint: give one of its shards, or leave out --expect",
        ));
    }
    let tensors = read_header(path)?;
    let expect = match options.expect {
        false => None,
        true => Some(path.to_str().ok_or_else(|| {
            Failure::at(path, "the path is not UTF-8, so `expect` cannot name it")
        })?),
    };
    let file_name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    generate_for(&tensors, options, &file_name, expect).map_err(|cause| Failure::at(path, cause))
}

/// The source of the structs that load a file of `tensors` strictly; `file_name` names it in the
/// first comment, `expect` is the path for `#[safejax(expect = "...")]` when
/// [`Options::expect`] is set. The error says why no struct can load such a file.
pub fn generate_for(
    tensors: &[TensorInfo],
    options: &Options,
    file_name: &str,
    expect: Option<&str>,
) -> Result<String, String> {
    if !names::is_type_ident(&options.root)
        || !options.root.starts_with(|c: char| c.is_ascii_uppercase())
    {
        return Err(format!(
            "`{}` cannot name the root struct: give an UpperCamelCase Rust name",
            options.root
        ));
    }
    if tensors.is_empty() {
        return Err("the file holds no tensors".to_owned());
    }
    let style = match options.style {
        StyleArg::Auto => crate::detect::detect(tensors.iter().map(|t| t.key.as_str())).0,
        StyleArg::Flax => Style::Flax,
        StyleArg::Haiku => Style::Haiku,
        StyleArg::Objax => Style::Objax,
    };
    let with_collection = has_collections(style, tensors);
    let mut sorted: Vec<&TensorInfo> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut keys = Vec::with_capacity(tensors.len());
    for tensor in sorted {
        let parsed = if with_collection {
            style.parse_with_collection(&tensor.key)
        } else {
            style.parse(&tensor.key)
        }
        .map_err(|e| format!("in {style} style, {e}"))?;
        let names = parsed.segments.iter().map(|s| &s.name);
        let classes = parsed.segments.iter().filter_map(|s| s.class.as_ref());
        for name in names.chain(classes).chain(&parsed.root_class) {
            check_name(name).map_err(|why| {
                format!(
                    "`{}`: `{name}` {why}, which no field or class of a struct can be named",
                    tensor.key
                )
            })?;
        }
        if parsed.segments.len() > MAX_DEPTH {
            return Err(format!(
                "`{}` is {} steps deep; a struct reads at most {MAX_DEPTH}",
                tensor.key,
                parsed.segments.len()
            ));
        }
        if style == Style::Objax && parsed.collection.is_none() {
            return Err(format!(
                "`{}` has no `::` variable kind, which every Objax key of a struct has",
                tensor.key
            ));
        }
        if style == Style::Objax && parsed.root_class.is_none() {
            return Err(format!(
                "`{}` has no root class, which every Objax key of a struct has",
                tensor.key
            ));
        }
        keys.push(tree::KeyParts {
            key: &tensor.key,
            parsed,
            dtype: tensor.dtype,
            shape: tensor.shape.clone(),
        });
    }
    let root = tree::build(style, &keys)?;
    let layout = layout::lay_out(style, &root)?;
    let header = render::Header {
        file_name,
        style,
        root: &options.root,
        expect: expect.filter(|_| options.expect),
    };
    Ok(render::render(&layout, &header))
}

/// The collections Flax and Haiku write before a key's path when a whole `variables` dict (or
/// Haiku's params and state together) is saved.
const COLLECTIONS: &[&str] = &[
    "params",
    "batch_stats",
    "state",
    "cache",
    "intermediates",
    "constants",
    "losses",
    "perturbations",
];

/// Whether every key starts with its collection: in Flax, a first part that is a known
/// collection; in Haiku, a `.` before the module path.
fn has_collections(style: Style, tensors: &[TensorInfo]) -> bool {
    match style {
        Style::Objax => false,
        Style::Flax => tensors.iter().all(|t| {
            t.key
                .split_once('.')
                .is_some_and(|(first, _)| COLLECTIONS.contains(&first))
        }),
        Style::Haiku => tensors.iter().all(|t| t.key.matches('.').count() >= 2),
    }
}

/// The tensors of a safetensors file, or of the shards of an index, from their headers: the
/// files are mapped and their data is not read.
fn read_header(path: &Path) -> Result<Vec<TensorInfo>, Failure> {
    let checkpoint = Checkpoint::open(path)?;
    let tensors = checkpoint.parse()?;
    Ok(tensors
        .iter()
        .map(|(key, entry)| TensorInfo {
            key: key.to_owned(),
            dtype: entry.tensor.dtype(),
            shape: entry.tensor.shape().to_vec(),
        })
        .collect())
}
