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
//! most common collection and a field whose tensors are all in another names it. In Haiku an
//! `Option` tensor field is never read (the loader looks for it as a module), so a Haiku run
//! whose elements differ in a tensor, rather than in a module, stays separate fields.

mod layout;
mod names;
mod render;
mod tree;

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use safejax_core::format::{LEN_BYTES, MAX_HEADER_LEN, METADATA_KEY, parse_dtype};
use safejax_core::key::{MAX_DEPTH, check_name};
use safejax_core::{Dtype, Style};

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
    if path.extension().is_some_and(|e| e == "json") {
        return Err(Failure::at(
            path,
            "codegen reads one `.safetensors` file, not the index of a sharded checkpoint",
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

/// The tensors of a safetensors file's header, read without its data.
fn read_header(path: &Path) -> Result<Vec<TensorInfo>, Failure> {
    let mut file = File::open(path).map_err(|e| Failure::at(path, e))?;
    let mut len = [0u8; LEN_BYTES];
    file.read_exact(&mut len)
        .map_err(|e| Failure::at(path, format!("cannot read the header's length: {e}")))?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER_LEN {
        return Err(Failure::at(
            path,
            format!("header length {len} exceeds the limit of {MAX_HEADER_LEN} bytes"),
        ));
    }
    let mut text = Vec::new();
    file.take(len)
        .read_to_end(&mut text)
        .map_err(|e| Failure::at(path, format!("cannot read the header: {e}")))?;
    if (text.len() as u64) < len {
        return Err(Failure::at(path, "the file ends inside its header"));
    }
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&text)
        .map_err(|e| Failure::at(path, format!("the header is not a JSON object: {e}")))?;
    let mut tensors = Vec::with_capacity(header.len());
    for (key, entry) in header {
        if key == METADATA_KEY {
            continue;
        }
        let bad = |what: &str| Failure::at(path, format!("tensor `{key}` has {what}"));
        let dtype = entry["dtype"]
            .as_str()
            .and_then(parse_dtype)
            .ok_or_else(|| bad("no known dtype"))?;
        let shape = entry["shape"]
            .as_array()
            .and_then(|dims| {
                dims.iter()
                    .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                    .collect::<Option<Vec<usize>>>()
            })
            .ok_or_else(|| bad("no valid shape"))?;
        tensors.push(TensorInfo { key, dtype, shape });
    }
    Ok(tensors)
}
