//! The unpickled value turned into a [`Tree`], with a loop and a stack of its own.

use std::collections::HashSet;

use super::machine::{Item, Machine, Object, Value};
use super::{MAX_DEPTH, MAX_TENSOR_FACTOR};
use crate::error::{Error, Result};
use crate::tree::Tree;

/// A dict, list or tuple being turned into a tree.
struct Level {
    /// Its index in the arena.
    object: usize,
    /// The position of its next entry.
    next: usize,
    tree: Tree,
    /// Its name in its parent.
    name: String,
    /// The length of the parent's key path.
    parent_len: usize,
}

/// The tree of the value `root`, which must be a dict.
pub(super) fn tree(machine: &Machine<'_>, root: Item) -> Result<Tree> {
    let Value::Object(object) = root.value else {
        return Err(refused(root.at, "", machine.kind(root.value), "the pickle"));
    };
    if !matches!(machine.objects.get(object), Some(Object::Dict(_))) {
        return Err(refused(root.at, "", machine.kind(root.value), "the pickle"));
    }
    let mut walk = Walk {
        machine,
        bytes_left: machine.input_len().saturating_mul(MAX_TENSOR_FACTOR),
        path: String::new(),
    };
    let mut parents: Vec<Level> = Vec::new();
    // The objects of the levels being walked: one met again is a cycle.
    let mut on_path = HashSet::from([object]);
    let mut level = Level {
        object,
        next: 0,
        tree: Tree::new(),
        name: String::new(),
        parent_len: 0,
    };
    loop {
        let Some((name, item)) = walk.entry(&level)? else {
            // The level is complete: into its parent it goes.
            let Some(mut parent) = parents.pop() else {
                return Ok(level.tree);
            };
            walk.path.truncate(level.parent_len);
            on_path.remove(&level.object);
            parent.tree.insert(level.name, level.tree);
            level = parent;
            continue;
        };
        level.next += 1;
        let parent_len = walk.path.len();
        if !walk.path.is_empty() {
            walk.path.push('.');
        }
        walk.path.push_str(&name);
        match walk.node(item)? {
            Node::Skip => walk.path.truncate(parent_len),
            Node::Tensor(tensor) => {
                level.tree.insert(name, tensor);
                walk.path.truncate(parent_len);
            }
            Node::Nested(object) => {
                if !on_path.insert(object) {
                    return Err(Error::legacy(
                        "pickle",
                        item.at,
                        walk.path.clone(),
                        format!("{} holds itself", machine.kind(item.value)),
                    ));
                }
                if parents.len() + 1 >= MAX_DEPTH {
                    return Err(Error::legacy(
                        "pickle",
                        item.at,
                        walk.path.clone(),
                        format!("the tree is deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let child = Level {
                    object,
                    next: 0,
                    tree: Tree::new(),
                    name,
                    parent_len,
                };
                parents.push(std::mem::replace(&mut level, child));
            }
        }
    }
}

/// What an entry becomes.
enum Node {
    /// Nothing: `None`.
    Skip,
    Tensor(crate::Tensor),
    /// A dict, list or tuple, by its index in the arena.
    Nested(usize),
}

/// The state of the walk beside its levels.
struct Walk<'m, 'a> {
    machine: &'m Machine<'a>,
    /// How many more bytes the tensors and the names may hold.
    bytes_left: usize,
    /// The key path of the entry at hand.
    path: String,
}

impl Walk<'_, '_> {
    /// The next entry of `level`, with its name checked.
    fn entry(&mut self, level: &Level) -> Result<Option<(String, Item)>> {
        let (name, item) = match self.machine.objects.get(level.object) {
            Some(Object::Dict(pairs)) => {
                let Some(&(key, value)) = pairs.get(level.next) else {
                    return Ok(None);
                };
                let Some(Object::Str(name)) = self.machine.object(key.value) else {
                    return Err(Error::legacy(
                        "pickle",
                        key.at,
                        self.path.clone(),
                        format!(
                            "has a key that is {}: keys must be strings",
                            self.machine.kind(key.value)
                        ),
                    ));
                };
                if name.is_empty() || name.contains('.') {
                    return Err(Error::legacy(
                        "pickle",
                        key.at,
                        self.path.clone(),
                        format!("has key `{name}`: keys must be non-empty and free of `.`"),
                    ));
                }
                (self.charge(key.at, name)?.to_owned(), value)
            }
            Some(Object::List(items) | Object::Tuple(items)) => {
                let Some(&item) = items.get(level.next) else {
                    return Ok(None);
                };
                let name = level.next.to_string();
                self.charge(item.at, &name)?;
                (name, item)
            }
            _ => return Ok(None),
        };
        Ok(Some((name, item)))
    }

    /// What the entry `item`, at key path `self.path`, becomes.
    fn node(&mut self, item: Item) -> Result<Node> {
        let object = match item.value {
            Value::None => return Ok(Node::Skip),
            Value::Object(index) => index,
            _ => return Err(self.refused(item)),
        };
        match self.machine.objects.get(object) {
            Some(Object::Dict(_) | Object::List(_) | Object::Tuple(_)) => Ok(Node::Nested(object)),
            Some(Object::Array(array)) => {
                self.charge_len(item.at, array.byte_len())?;
                let data = self.machine.array_data(array);
                let tensor = array.tensor(data).map_err(|e| self.error(item.at, e))?;
                Ok(Node::Tensor(tensor))
            }
            _ => Err(self.refused(item)),
        }
    }

    /// Counts the bytes of a name against the budget of the tree, returning it.
    fn charge<'n>(&mut self, at: u64, name: &'n str) -> Result<&'n str> {
        self.charge_len(at, name.len())?;
        Ok(name)
    }

    /// Counts `len` bytes of a name or a tensor against the budget of the tree.
    fn charge_len(&mut self, at: u64, len: usize) -> Result<()> {
        self.bytes_left = self.bytes_left.checked_sub(len).ok_or_else(|| {
            self.error(
                at,
                format!(
                    "the tree's tensors and names would hold more than {MAX_TENSOR_FACTOR} times \
                     the pickle's size: arrays, names or dicts are shared under too many keys"
                ),
            )
        })?;
        Ok(())
    }

    fn error(&self, at: u64, reason: impl Into<String>) -> Error {
        Error::legacy("pickle", at, self.path.clone(), reason)
    }

    fn refused(&self, item: Item) -> Error {
        refused(
            item.at,
            &self.path,
            self.machine.kind(item.value),
            "a value",
        )
    }
}

/// A value that is neither an array, a container nor `None`.
fn refused(at: u64, path: &str, kind: String, what: &str) -> Error {
    let reason = if path.is_empty() {
        format!("{what} is {kind}, not a dict")
    } else {
        format!("{what} is {kind}: only arrays, dicts, lists, tuples and None are read")
    };
    Error::legacy("pickle", at, path, reason)
}
