//! Inputs of `safejax convert` in the formats that came before safetensors: Flax msgpack
//! (`.msgpack`), pickles of Haiku parameters (`.pkl`, `.pickle`), and npz archives of Haiku
//! (`scope//name` members, as AlphaFold saves them) or Objax (`objax.io.save_var_collection`)
//! parameters. They are read by the library's readers, which build the tensors in Rust and
//! execute nothing: a pickle's globals are allowed by name, never called.
//!
//! How the keys are named in the output (`--style`):
//! - a nested dict (msgpack, pickle, Haiku npz) in Flax style joins its levels with `.`
//!   (`params.Dense_0.kernel`); in Haiku style, the modules between the collection and the
//!   parameter are joined with `/~/` (`params.mlp/~/linear_0.w`), which leaves a dict of Haiku
//!   modules (`{'params': {'mlp/~/linear_0': {'w': ..}}}`) as it is. The first level is taken
//!   for a collection when it is one the frameworks write (`params`, `state`, `batch_stats`,
//!   ...). Objax keys name each module's class, which a nested dict does not record: refused.
//! - an Objax npz is named in Objax style only: each variable's path, then its kind, which the
//!   npz does not record: `--var-kind 'REGEX=KIND'` rules (the first that matches wins), then
//!   `--state-vars REGEX` (`StateVar`), else `TrainVar`.

use std::path::Path;

use regex::Regex;
use safejax_core::legacy::{msgpack, npz, pickle};
use safejax_core::{Node, Tensor, Tree, VarKind};

use crate::checkpoint::cause;
use crate::convert::compile;
use crate::{ConvertArgs, Failure, StyleArg};

/// A format `convert` reads besides safetensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `flax.serialization.to_bytes`.
    Msgpack,
    /// `pickle.dump` of a dict of numpy or jax arrays.
    Pickle,
    /// `np.savez` / `np.savez_compressed`: Haiku `scope//name` or Objax's layout.
    Npz,
}

impl Format {
    /// The format of `path`, by its extension; `None` for safetensors (and anything else).
    pub fn of(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "msgpack" => Some(Format::Msgpack),
            "pkl" | "pickle" => Some(Format::Pickle),
            "npz" => Some(Format::Npz),
            _ => None,
        }
    }
}

/// The collections the frameworks write, which a nested dict's first level may be.
const COLLECTIONS: &[&str] = &[
    "params",
    "state",
    "batch_stats",
    "cache",
    "intermediates",
    "constants",
    "losses",
];

/// The tensors of the file at `path` in `format`, named as `args` asks, in key order.
pub fn read(
    path: &Path,
    format: Format,
    args: &ConvertArgs,
) -> Result<Vec<(String, Tensor)>, Failure> {
    let fail = |e: safejax_core::Error| Failure::at(path, cause(&e));
    let style = args.style.filter(|&s| s != StyleArg::Auto);
    let tree: Tree = match format {
        Format::Msgpack => msgpack::from_file(path).map_err(fail)?,
        Format::Pickle => pickle::from_file(path).map_err(fail)?,
        Format::Npz => {
            let members = npz::members_from_file(path).map_err(fail)?;
            if members.iter().any(|(name, _)| name == "names") {
                if let Some(style) = style.filter(|&s| s != StyleArg::Objax) {
                    return Err(Failure::at(
                        path,
                        format!(
                            "is an Objax npz (its `names` lists variable paths), which is named in \
                             objax style only, not {}",
                            style_name(style)
                        ),
                    ));
                }
                let kinds = Kinds::parse(args)?;
                let vars = npz::objax_from_members(members, |name| kinds.of(name)).map_err(fail)?;
                return Ok(vars
                    .into_iter()
                    .map(|(name, var)| (format!("{name}::{}", var.kind.as_str()), var.tensor))
                    .collect());
            }
            npz::haiku_from_members(members, None).map_err(fail)?
        }
    };
    if args.state_vars.is_some() || !args.var_kinds.is_empty() {
        return Err(Failure::at(
            path,
            "--state-vars and --var-kind give the kinds of an Objax npz's variables; this input \
             has none",
        ));
    }
    let style = style.unwrap_or(match format {
        Format::Msgpack => StyleArg::Flax,
        _ => StyleArg::Haiku,
    });
    if style == StyleArg::Objax {
        return Err(Failure::at(
            path,
            "objax keys name each module's class, which a nested dict does not record: convert \
             with --style flax or --style haiku",
        ));
    }
    Ok(into_flat(tree)
        .into_iter()
        .map(|(key, tensor)| (name(&key, style), tensor))
        .collect())
}

/// The tensors of `tree` with their `.`-joined keys, sorted, taken out of it: no tensor is
/// copied, so a converted checkpoint is in memory once. (The readers refuse names that are
/// empty or hold a `.`, which would make the keys ambiguous.)
fn into_flat(tree: Tree) -> Vec<(String, Tensor)> {
    let mut flat = Vec::new();
    let mut dicts = vec![(String::new(), tree)];
    while let Some((prefix, mut dict)) = dicts.pop() {
        let names: Vec<String> = dict.iter().map(|(name, _)| name.clone()).collect();
        for name in names {
            let key = match prefix.is_empty() {
                true => name.clone(),
                false => format!("{prefix}.{name}"),
            };
            match dict.remove(&name) {
                Some(Node::Tensor(tensor)) => flat.push((key, tensor)),
                Some(Node::Tree(inner)) => dicts.push((key, inner)),
                None => {}
            }
        }
    }
    flat.sort_by(|a, b| a.0.cmp(&b.0));
    flat
}

/// `key` (a nested dict's levels joined with `.`) in `style`: as it is in Flax, its modules
/// joined with `/~/` in Haiku.
fn name(key: &str, style: StyleArg) -> String {
    if style != StyleArg::Haiku {
        return key.to_owned();
    }
    let mut segments: Vec<&str> = key.split('.').collect();
    let Some(param) = segments.pop() else {
        return key.to_owned();
    };
    let collection = match segments.first() {
        Some(first) if COLLECTIONS.contains(first) && segments.len() > 1 => {
            Some(segments.remove(0))
        }
        _ => None,
    };
    let mut out = String::new();
    if let Some(collection) = collection {
        out.push_str(collection);
        out.push('.');
    }
    if !segments.is_empty() {
        out.push_str(&segments.join("/~/"));
        out.push('.');
    }
    out.push_str(param);
    out
}

fn style_name(style: StyleArg) -> &'static str {
    match style {
        StyleArg::Auto => "auto",
        StyleArg::Flax => "flax",
        StyleArg::Haiku => "haiku",
        StyleArg::Objax => "objax",
    }
}

/// The kinds of an Objax npz's variables, from `--var-kind` and `--state-vars`.
struct Kinds {
    rules: Vec<(Regex, VarKind)>,
    state: Option<Regex>,
}

impl Kinds {
    fn parse(args: &ConvertArgs) -> Result<Self, Failure> {
        let rules = args
            .var_kinds
            .iter()
            .map(|spec| {
                let Some((pattern, kind)) = spec.rsplit_once('=') else {
                    return Err(Failure(format!("--var-kind `{spec}`: expected REGEX=KIND")));
                };
                if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(Failure(format!(
                        "--var-kind `{spec}`: `{kind}` cannot be a kind (a class name such as \
                         TrainVar or StateVar)"
                    )));
                }
                let kind = match kind.parse::<VarKind>() {
                    Ok(kind) => kind,
                    Err(never) => match never {},
                };
                Ok((compile("--var-kind", spec, pattern)?, kind))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let state = args
            .state_vars
            .as_deref()
            .map(|pattern| compile("--state-vars", pattern, pattern))
            .transpose()?;
        Ok(Kinds { rules, state })
    }

    fn of(&self, name: &str) -> VarKind {
        if let Some((_, kind)) = self.rules.iter().find(|(rule, _)| rule.is_match(name)) {
            return kind.clone();
        }
        match &self.state {
            Some(state) if state.is_match(name) => VarKind::StateVar,
            _ => VarKind::TrainVar,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haiku_names_join_modules_and_keep_the_collection() {
        assert_eq!(
            name("params.mlp/~/linear_0.w", StyleArg::Haiku),
            "params.mlp/~/linear_0.w"
        );
        assert_eq!(
            name("params.block.dense.kernel", StyleArg::Haiku),
            "params.block/~/dense.kernel"
        );
        assert_eq!(
            name("block.dense.kernel", StyleArg::Haiku),
            "block/~/dense.kernel"
        );
        assert_eq!(name("linear.w", StyleArg::Haiku), "linear.w");
        assert_eq!(name("params.w", StyleArg::Haiku), "params.w");
        assert_eq!(name("w", StyleArg::Haiku), "w");
        assert_eq!(
            name("params.block.dense.kernel", StyleArg::Flax),
            "params.block.dense.kernel"
        );
    }

    #[test]
    fn a_tree_flattens_into_its_sorted_keys() {
        let t = |v: f32| Tensor::from_array(&safejax_core::ndarray::array![v]);
        let mut inner = Tree::new();
        inner.insert("w", t(1.0));
        inner.insert("b", t(2.0));
        let mut tree = Tree::new();
        tree.insert("z", t(3.0));
        tree.insert("dense", inner);
        tree.insert("empty", Tree::new());
        let flat = into_flat(tree);
        let keys: Vec<&str> = flat.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["dense.b", "dense.w", "z"]);
        assert_eq!(flat[2].1, t(3.0));
    }

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(
            Format::of(Path::new("a/model.msgpack")),
            Some(Format::Msgpack)
        );
        assert_eq!(Format::of(Path::new("model.PKL")), Some(Format::Pickle));
        assert_eq!(Format::of(Path::new("model.pickle")), Some(Format::Pickle));
        assert_eq!(Format::of(Path::new("model.npz")), Some(Format::Npz));
        assert_eq!(Format::of(Path::new("model.safetensors")), None);
        assert_eq!(Format::of(Path::new("model")), None);
    }
}
