//! A file's keys as a tree of modules, and the merge of the modules of a run into one.

use std::collections::{BTreeMap, BTreeSet};

use safejax_core::{Dtype, HaikuSep, Style};

/// A tensor: what its field's type must say, and the shapes seen for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// Element type.
    pub dtype: Dtype,
    /// Number of dimensions.
    pub rank: usize,
    /// Flax/Haiku prefix or Objax `::Kind`.
    pub collection: Option<String>,
    /// Every shape the tensor has where the field is used.
    pub shapes: BTreeSet<Vec<usize>>,
}

/// A module: its Objax class and its children by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Module {
    /// The Objax class written after the step that leads here (the root class for the root).
    pub class: Option<String>,
    /// Children by their name in the key.
    pub children: BTreeMap<String, Child>,
    /// Where the module is in the file, as its keys start (one entry per place, for docs).
    pub places: Vec<String>,
}

/// What a child is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A tensor.
    Leaf(Leaf),
    /// A module.
    Module(Module),
}

/// One step below a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// Written as `[...]` (an Objax index).
    pub indexed: bool,
    /// The Haiku separator before the step.
    pub sep: Option<HaikuSep>,
    /// Absent from some of the modules merged into this one.
    pub optional: bool,
    /// Tensor or module.
    pub kind: Kind,
}

impl Kind {
    /// The collections of every tensor below.
    pub fn collections(&self) -> BTreeSet<Option<String>> {
        let mut out = BTreeSet::new();
        self.collect_collections(&mut out);
        out
    }

    fn collect_collections(&self, out: &mut BTreeSet<Option<String>>) {
        match self {
            Kind::Leaf(leaf) => {
                out.insert(leaf.collection.clone());
            }
            Kind::Module(module) => {
                for child in module.children.values() {
                    child.kind.collect_collections(out);
                }
            }
        }
    }

    /// The number of tensors per collection below.
    pub fn count_collections(&self, counts: &mut BTreeMap<Option<String>, usize>) {
        match self {
            Kind::Leaf(leaf) => *counts.entry(leaf.collection.clone()).or_default() += 1,
            Kind::Module(module) => {
                for child in module.children.values() {
                    child.kind.count_collections(counts);
                }
            }
        }
    }
}

/// A key's parts, as the style reads them.
pub struct KeyParts<'k> {
    /// The whole key, for messages.
    pub key: &'k str,
    /// The parsed key.
    pub parsed: safejax_core::ParsedKey,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
}

/// Builds the tree of `keys`; a key whose path another key uses as a module, or two keys with the
/// same path, are refused with the keys named.
pub fn build(style: Style, keys: &[KeyParts<'_>]) -> Result<Module, String> {
    let mut root = Module::default();
    let mut leaf_keys: BTreeMap<Vec<String>, &str> = BTreeMap::new();
    for parts in keys {
        let parsed = &parts.parsed;
        if style == Style::Objax {
            if root.places.is_empty() {
                root.class = parsed.root_class.clone();
                root.places.push(objax_root(&root.class));
            } else if root.class != parsed.root_class {
                return Err(format!(
                    "`{}` starts with another root class than the keys before it",
                    parts.key
                ));
            }
        } else if root.places.is_empty() {
            root.places.push(String::new());
        }
        let Some((last, steps)) = parsed.segments.split_last() else {
            return Err(format!("`{}` has no parts", parts.key));
        };
        let mut module = &mut root;
        let mut path = Vec::new();
        for step in steps {
            path.push(step.name.clone());
            let parent = module.places.first().map_or("", String::as_str);
            let place = place_of(style, parent, step);
            let child = module
                .children
                .entry(step.name.clone())
                .or_insert_with(|| Child {
                    indexed: step.indexed,
                    sep: step.sep,
                    optional: false,
                    kind: Kind::Module(Module {
                        class: step.class.clone(),
                        children: BTreeMap::new(),
                        places: vec![place],
                    }),
                });
            if child.indexed != step.indexed || child.sep != step.sep {
                return Err(format!(
                    "`{}` joins `{}` to its parent unlike other keys do",
                    parts.key, step.name
                ));
            }
            module = match &mut child.kind {
                Kind::Module(inner) if inner.class == step.class => inner,
                Kind::Module(_) => {
                    return Err(format!(
                        "`{}` gives `{}` another class than other keys do",
                        parts.key, step.name
                    ));
                }
                Kind::Leaf(_) => {
                    return Err(format!(
                        "`{}` uses the tensor `{}` as a module",
                        parts.key,
                        leaf_keys.get(&path).copied().unwrap_or(step.name.as_str())
                    ));
                }
            };
        }
        path.push(last.name.clone());
        if let Some(other) = leaf_keys.insert(path, parts.key) {
            return Err(format!(
                "`{other}` and `{}` name the same tensor",
                parts.key
            ));
        }
        let leaf = Leaf {
            dtype: parts.dtype,
            rank: parts.shape.len(),
            collection: parsed.collection.clone(),
            shapes: BTreeSet::from([parts.shape.clone()]),
        };
        let child = Child {
            indexed: last.indexed,
            sep: last.sep,
            optional: false,
            kind: Kind::Leaf(leaf),
        };
        if module.children.insert(last.name.clone(), child).is_some() {
            return Err(format!(
                "`{}` names a tensor where other keys have a module",
                parts.key
            ));
        }
    }
    Ok(root)
}

fn objax_root(class: &Option<String>) -> String {
    class.as_ref().map_or(String::new(), |c| format!("({c})"))
}

/// How the module a step leads to starts its keys, for the docs.
fn place_of(style: Style, parent: &str, step: &safejax_core::ParsedSegment) -> String {
    let mut place = parent.to_owned();
    match style {
        Style::Objax => {
            if step.indexed {
                place.push_str(&format!("[{}]", step.name));
            } else {
                place.push('.');
                place.push_str(&step.name);
            }
            if let Some(class) = &step.class {
                place.push_str(&format!("({class})"));
            }
        }
        Style::Haiku => {
            if let Some(sep) = step.sep {
                place.push_str(sep.as_str());
            }
            place.push_str(&step.name);
        }
        Style::Flax => {
            if !place.is_empty() {
                place.push('.');
            }
            place.push_str(&step.name);
        }
    }
    place
}

/// The one module that holds what each of `modules` holds, with the children only some have
/// made optional; `None` when two of them disagree on a class, a separator, a dtype or a rank, or
/// when nothing is common to all of them.
pub fn merge_all<'m>(mut items: impl Iterator<Item = &'m Child>) -> Option<Child> {
    let first = items.next()?.clone();
    let merged = items.try_fold(first, |acc, next| merge_pair(&acc, next))?;
    has_common(&merged).then_some(merged)
}

/// Whether something is common to all the modules merged into `child` (always, for a tensor).
pub fn has_common(child: &Child) -> bool {
    match &child.kind {
        Kind::Module(module) => module.children.values().any(|c| !c.optional),
        Kind::Leaf(_) => true,
    }
}

/// Two children merged into one, as [`merge_all`] does; `None` when they disagree.
pub fn merge_pair(a: &Child, b: &Child) -> Option<Child> {
    if a.indexed != b.indexed || a.sep != b.sep {
        return None;
    }
    let kind = match (&a.kind, &b.kind) {
        (Kind::Leaf(x), Kind::Leaf(y)) => {
            if x.dtype != y.dtype || x.rank != y.rank || x.collection != y.collection {
                return None;
            }
            let mut leaf = x.clone();
            leaf.shapes.extend(y.shapes.iter().cloned());
            Kind::Leaf(leaf)
        }
        (Kind::Module(x), Kind::Module(y)) => Kind::Module(merge_modules(x, y)?),
        _ => return None,
    };
    Some(Child {
        indexed: a.indexed,
        sep: a.sep,
        optional: a.optional || b.optional,
        kind,
    })
}

fn merge_modules(a: &Module, b: &Module) -> Option<Module> {
    if a.class != b.class {
        return None;
    }
    let mut children = BTreeMap::new();
    let names: BTreeSet<&String> = a.children.keys().chain(b.children.keys()).collect();
    for name in names {
        let child = match (a.children.get(name), b.children.get(name)) {
            (Some(x), Some(y)) => merge_pair(x, y)?,
            (Some(only), None) | (None, Some(only)) => Child {
                optional: true,
                ..only.clone()
            },
            (None, None) => continue,
        };
        children.insert(name.clone(), child);
    }
    let mut places = a.places.clone();
    places.extend(b.places.iter().cloned());
    Some(Module {
        class: a.class.clone(),
        children,
        places,
    })
}
