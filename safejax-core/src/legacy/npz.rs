//! numpy `.npz` archives of Haiku and Objax parameters.
//!
//! An npz is a zip archive of `.npy` arrays, stored by `np.savez` or deflated by
//! `np.savez_compressed`. Its arrays are read with [`npy`], strictly and without pickles, and
//! the archive is read without trusting its sizes: each member's data must lie inside the
//! archive and apart from every other member's, and its declared size must be one its data can
//! have, all checked before anything is inflated; a member never inflates past its declared
//! size, and its CRC is checked.
//!
//! Two layouts of parameters are read:
//! - Haiku's, as AlphaFold saves its weights: one member per parameter, named
//!   `scope//name` (`mlp/~/linear_0//w`), read into the two-level dict Haiku uses
//!   ([`haiku_from_slice`]);
//! - Objax's `objax.io.save_var_collection`: a unicode array `names` of the variables' paths and
//!   their values as members `0`, `1`, ... in the same order, read into a
//!   [`VarCollection`] ([`objax_from_slice`]).
//!
//! Both write, through [`haiku::serialize`](crate::haiku::serialize) and
//! [`objax::serialize`](crate::objax::serialize), the files Python safejax writes for the same
//! parameters.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::tree::{Node, Tree, Var, VarCollection, VarKind};

mod archive;
pub mod npy;

pub use npy::NpyArray;

/// Every array of the npz in `bytes`, in archive order, each named as its member without
/// `.npy` (the name `np.load` gives it); unicode arrays are [`NpyArray::Strings`].
///
/// ```
/// use safejax_core::legacy::npz::{self, NpyArray};
///
/// let bytes = std::fs::read(concat!(
///     env!("CARGO_MANIFEST_DIR"),
///     "/../tests/fixtures/legacy/objax_mlp.npz"
/// ))?;
/// let members = npz::members_from_slice(&bytes)?;
/// let names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
/// assert_eq!(names, ["names", "0", "1", "2", "3"]);
/// assert!(matches!(&members[0].1, NpyArray::Strings { values, .. } if values.len() == 4));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn members_from_slice(bytes: &[u8]) -> Result<Vec<(String, NpyArray)>> {
    archive::from_slice(bytes)
}

/// Like [`members_from_slice`], from a file, reading only the archive's directory and its
/// members' data.
pub fn members_from_file(path: impl AsRef<Path>) -> Result<Vec<(String, NpyArray)>> {
    archive::from_file(path.as_ref())
}

/// Every array of the npz in `bytes` as a tensor, in archive order, each named as its member
/// without `.npy`; a unicode array is an error.
///
/// ```
/// use safejax_core::legacy::npz;
///
/// let bytes = std::fs::read(concat!(
///     env!("CARGO_MANIFEST_DIR"),
///     "/../tests/fixtures/legacy/haiku_mlp_af.npz"
/// ))?;
/// let arrays = npz::arrays_from_slice(&bytes)?;
/// assert_eq!(arrays[0].0, "mlp/~/linear_0//w");
/// assert_eq!(arrays[0].1.shape(), &[8, 16]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn arrays_from_slice(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    tensors(members_from_slice(bytes)?)
}

/// Like [`arrays_from_slice`], from a file.
pub fn arrays_from_file(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    tensors(members_from_file(path)?)
}

fn tensors(members: Vec<(String, NpyArray)>) -> Result<Vec<(String, Tensor)>> {
    members
        .into_iter()
        .map(|(name, array)| match array {
            NpyArray::Tensor(tensor) => Ok((name, tensor)),
            NpyArray::Strings { .. } => Err(Error::legacy(
                "npz",
                0,
                name,
                "is an array of strings, not of numbers",
            )),
        })
        .collect()
}

/// Haiku parameters from an npz whose members are named `scope//name`, as AlphaFold saves
/// them: the tree `{scope: {name: tensor}}` that `haiku.data_structures.to_mutable_dict`
/// gives, under `collection` when one is given (`Some("params")` for a file that is to hold
/// `params.mlp/~/linear_0.w` beside a `state` collection).
///
/// Each member name must have exactly one `//` with a non-empty scope and name on either
/// side, and no `.` (which would make safetensors keys ambiguous).
///
/// ```
/// use safejax_core::haiku;
/// use safejax_core::legacy::npz;
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/legacy");
/// let params = npz::haiku_from_file(format!("{dir}/haiku_mlp_af.npz"), None)?;
/// assert_eq!(params.tensor("mlp/~/linear_1.b").map(|t| t.shape()), Some(&[4][..]));
/// let expected = std::fs::read(format!("{dir}/haiku_mlp.safetensors"))?;
/// assert_eq!(haiku::serialize(&params, None)?, expected);
///
/// let variables = npz::haiku_from_file(format!("{dir}/haiku_mlp_af.npz"), Some("params"))?;
/// assert!(variables.tensor("params.mlp/~/linear_1.b").is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn haiku_from_slice(bytes: &[u8], collection: Option<&str>) -> Result<Tree> {
    haiku_tree(arrays_from_slice(bytes)?, collection)
}

/// Like [`haiku_from_slice`], from a file.
pub fn haiku_from_file(path: impl AsRef<Path>, collection: Option<&str>) -> Result<Tree> {
    haiku_tree(arrays_from_file(path)?, collection)
}

/// Like [`haiku_from_slice`], from members already read ([`members_from_file`]): for a caller
/// that looks at the members to tell a Haiku npz from an Objax one.
pub fn haiku_from_members(
    members: Vec<(String, NpyArray)>,
    collection: Option<&str>,
) -> Result<Tree> {
    haiku_tree(tensors(members)?, collection)
}

fn haiku_tree(arrays: Vec<(String, Tensor)>, collection: Option<&str>) -> Result<Tree> {
    if let Some(name) = collection
        && (name.is_empty() || name.contains('.'))
    {
        return Err(Error::Invalid {
            key: name.to_owned(),
            reason: "cannot name a collection: names must be non-empty and free of `.`".to_owned(),
        });
    }
    let mut modules: BTreeMap<String, Tree> = BTreeMap::new();
    for (key, tensor) in arrays {
        let fail = |reason: &str| Error::legacy("npz", 0, &*key, reason);
        let Some((scope, name)) = key.split_once("//") else {
            return Err(fail("has no `//` between a module and a parameter name"));
        };
        if name.contains("//") {
            return Err(fail(
                "has more than one `//`, so its module and parameter name are ambiguous",
            ));
        }
        if scope.is_empty() || name.is_empty() {
            return Err(fail(
                "has an empty module or parameter name around its `//`",
            ));
        }
        if key.contains('.') {
            return Err(fail(
                "has a `.`, which would make its safetensors key ambiguous",
            ));
        }
        modules
            .entry(scope.to_owned())
            .or_default()
            .insert(name, tensor);
    }
    let modules: Tree = modules
        .into_iter()
        .map(|(scope, module)| (scope, Node::Tree(module)))
        .collect();
    Ok(match collection {
        Some(name) => {
            let mut root = Tree::new();
            root.insert(name, modules);
            root
        }
        None => modules,
    })
}

/// An Objax `VarCollection` from an npz that `objax.io.save_var_collection` wrote: the
/// unicode array `names` lists the variables' paths (`(MLP).layers(Sequential)[0](Linear).w`),
/// member `i` holds the value of the `i`-th. The npz does not record whether a variable is a
/// `TrainVar` or a `StateVar`: `kind` gives it from the path.
///
/// ```
/// use safejax_core::{VarKind, objax};
/// use safejax_core::legacy::npz;
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/legacy");
/// let bytes = std::fs::read(format!("{dir}/objax_mlp.npz"))?;
/// // BatchNorm statistics are the state of most models; this one has none.
/// let kind = |name: &str| {
///     if name.ends_with(".running_mean") || name.ends_with(".running_var") {
///         VarKind::StateVar
///     } else {
///         VarKind::TrainVar
///     }
/// };
/// let vars = npz::objax_from_slice(&bytes, kind)?;
/// assert_eq!(vars["(OMLP).layers(Sequential)[2](Linear).w"].tensor.shape(), &[16, 4]);
/// let expected = std::fs::read(format!("{dir}/objax_mlp.safetensors"))?;
/// assert_eq!(objax::serialize(&vars, None)?, expected);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn objax_from_slice(bytes: &[u8], kind: impl Fn(&str) -> VarKind) -> Result<VarCollection> {
    objax_vars(members_from_slice(bytes)?, kind)
}

/// Like [`objax_from_slice`], from a file.
pub fn objax_from_file(
    path: impl AsRef<Path>,
    kind: impl Fn(&str) -> VarKind,
) -> Result<VarCollection> {
    objax_vars(members_from_file(path)?, kind)
}

/// Like [`objax_from_slice`], from members already read ([`members_from_file`]).
pub fn objax_from_members(
    members: Vec<(String, NpyArray)>,
    kind: impl Fn(&str) -> VarKind,
) -> Result<VarCollection> {
    objax_vars(members, kind)
}

fn objax_vars(
    members: Vec<(String, NpyArray)>,
    kind: impl Fn(&str) -> VarKind,
) -> Result<VarCollection> {
    let fail = |key: &str, reason: String| Error::legacy("npz", 0, key, reason);
    let mut names = None;
    let mut values = Vec::with_capacity(members.len());
    for (member, array) in members {
        match (member.as_str(), array) {
            ("names", NpyArray::Strings { shape, values }) => {
                if shape.len() != 1 {
                    return Err(fail(
                        "names",
                        format!("has shape {shape:?}; a list of names is 1-d"),
                    ));
                }
                names = Some(values);
            }
            // `np.array([])` of no names is an empty float array.
            ("names", NpyArray::Tensor(tensor)) if tensor.shape() == [0] => {
                names = Some(Vec::new())
            }
            ("names", NpyArray::Tensor(tensor)) => {
                return Err(fail(
                    "names",
                    format!("is a {} array, not the list of names", tensor.dtype()),
                ));
            }
            (_, NpyArray::Strings { .. }) => {
                return Err(fail(
                    &member,
                    "is an array of strings, not a variable's value".to_owned(),
                ));
            }
            (_, NpyArray::Tensor(tensor)) => values.push((member, tensor)),
        }
    }
    let names = names.ok_or_else(|| {
        fail(
            "",
            "has no member `names`, the list of variables Objax saves".to_owned(),
        )
    })?;
    // Members `0`, `1`, ... in any order: each one's index among the names.
    let mut slots: Vec<Option<Tensor>> = vec![None; names.len()];
    for (member, tensor) in values {
        let index = member
            .parse::<usize>()
            .ok()
            .filter(|i| i.to_string() == member && *i < names.len());
        let Some(slot) = index.and_then(|i| slots.get_mut(i)) else {
            return Err(fail(
                &member,
                format!(
                    "is not a variable: the {} names are saved as members `0` to `{}`",
                    names.len(),
                    names.len().saturating_sub(1)
                ),
            ));
        };
        *slot = Some(tensor);
    }
    let mut vars = VarCollection::new();
    for (i, (name, slot)) in names.into_iter().zip(slots).enumerate() {
        let Some(tensor) = slot else {
            return Err(fail(
                &name,
                format!("has no value: member `{i}` is missing"),
            ));
        };
        if name.is_empty() {
            return Err(fail("names", format!("has an empty name at index {i}")));
        }
        let var = Var {
            kind: kind(&name),
            tensor,
        };
        if vars.contains_key(&name) {
            return Err(fail(&name, "is named twice in `names`".to_owned()));
        }
        vars.insert(name, var);
    }
    Ok(vars)
}
