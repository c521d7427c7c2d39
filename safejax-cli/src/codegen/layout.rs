//! The structs that hold a tree: fields, their types and attributes, one struct per distinct
//! module shape.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use safejax_core::{Dtype, HaikuSep, Style};

use super::names::{field_ident, parse_index, singular, split_index, strip_number};
use super::tree::{Child, Kind, Leaf, Module, has_common, merge_all, merge_pair};

/// The type of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// A tensor of this element type and rank.
    Leaf(Dtype, usize),
    /// A generated struct, by its index in [`Layout::structs`].
    Struct(usize),
    /// A run of elements.
    Vec(Box<Ty>),
    /// What only some of a run's elements have.
    Option(Box<Ty>),
    /// The entries of an Objax `ModuleDict`.
    Map(Box<Ty>),
    /// A position of an Objax `Sequential` that holds no tensors (a function such as `relu`).
    Unit,
}

// `Dtype` is not `Hash`: its variant stands for it.
impl std::hash::Hash for Ty {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Ty::Leaf(dtype, rank) => {
                std::mem::discriminant(dtype).hash(state);
                rank.hash(state);
            }
            Ty::Struct(i) => i.hash(state),
            Ty::Vec(inner) | Ty::Option(inner) | Ty::Map(inner) => inner.hash(state),
            Ty::Unit => {}
        }
    }
}

/// One field of a struct.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// The Rust name; `None` in a tuple struct.
    pub ident: Option<String>,
    /// The items of its `#[safejax(...)]`, written out (`rename = "Dense_0"`).
    pub attrs: Vec<String>,
    /// Its type.
    pub ty: Ty,
}

/// A struct, as it is written, without its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    /// The Objax class of the module.
    pub class: Option<String>,
    /// `#[safejax(sep = "/")]` on the struct.
    pub sep_call: bool,
    /// Positional fields (an Objax `Sequential` or `ModuleList`).
    pub tuple: bool,
    /// The fields.
    pub fields: Vec<Field>,
}

/// What a struct's uses tell about it, beyond its shape.
#[derive(Debug, Clone, Default)]
pub struct Uses {
    /// The Python names of the places it is used (numbers stripped), for its own name.
    pub names: Vec<String>,
    /// Where it is in the file, for its docs.
    pub places: Vec<String>,
    /// Per field, the shapes of the tensors it holds (empty for fields holding modules).
    pub shapes: Vec<BTreeSet<Vec<usize>>>,
}

/// Every struct needed for a file.
#[derive(Debug)]
pub struct Layout {
    /// The structs below the root, in the order they were first made (children first).
    pub structs: Vec<(Shape, Uses)>,
    /// The root struct.
    pub root: (Shape, Uses),
    /// The collection the root declares.
    pub root_collection: Option<String>,
}

/// Lays out the structs that load `root`, read in `style`.
pub fn lay_out(style: Style, root: &Module) -> Result<Layout, String> {
    let root_kind = Kind::Module(root.clone());
    let mut counts = BTreeMap::new();
    root_kind.count_collections(&mut counts);
    let preferred = |c: &Option<String>| match c.as_deref() {
        Some("params" | "TrainVar") => 0,
        _ => 1,
    };
    let main = counts
        .iter()
        .max_by(|(a, n), (b, m)| {
            n.cmp(m)
                .then(preferred(b).cmp(&preferred(a)))
                .then(b.cmp(a))
        })
        .and_then(|(c, _)| c.clone());
    let mixed = counts.len() > 1;
    let mut builder = Builder {
        style,
        main: main.clone(),
        structs: Vec::new(),
        index: HashMap::new(),
    };
    let root = builder.shape_of(root, mixed, None)?;
    let root_collection = match (style, main) {
        (Style::Objax, Some(c)) if c == safejax_core::style::OBJAX_DEFAULT_KIND => None,
        (_, main) => main,
    };
    Ok(Layout {
        structs: builder.structs,
        root,
        root_collection,
    })
}

struct Builder {
    style: Style,
    /// The collection of every struct that holds tensors of several collections.
    main: Option<String>,
    /// The structs made so far, and the index of each shape among them.
    structs: Vec<(Shape, Uses)>,
    index: HashMap<Shape, usize>,
}

/// A field before it is written: the children it stands for and how they are named.
struct Plan<'m> {
    /// The Python name of the field (the base name of a run).
    name: String,
    /// The children, in order: none for an empty position of a tuple struct.
    items: Vec<&'m Child>,
    /// How they make one field.
    arrangement: Arrangement,
}

/// How the children of a [`Plan`] make one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrangement {
    /// One child (or none), as it is.
    Single,
    /// A run named `<name>_0`, `<name>_1`, ...
    Index,
    /// A run named `<name>`, `<name>_1`, ...
    Haiku,
    /// One child whose children `0`, `1`, ... are the run.
    Nested,
    /// A run of positions of a tuple struct.
    Flatten,
}

impl Builder {
    /// The shape of a struct for `module`, and what its fields' uses say. `mixed`: the module
    /// holds tensors of several collections, so its fields name theirs.
    fn shape_of(
        &mut self,
        module: &Module,
        mixed: bool,
        use_name: Option<&str>,
    ) -> Result<(Shape, Uses), String> {
        let indexed = module.children.values().filter(|c| c.indexed).count();
        if indexed > 0 && indexed < module.children.len() {
            return Err(format!(
                "`{}` has both attributes and indexed elements",
                place(module)
            ));
        }
        let tuple = indexed > 0;
        let plans = if tuple {
            self.positions(module)?
        } else {
            self.runs(module)
        };
        let mut fields = Vec::new();
        let mut shapes = Vec::new();
        let module_seps: Vec<HaikuSep> = plans
            .iter()
            .filter_map(|p| p.items.first())
            .filter(|c| matches!(c.kind, Kind::Module(_)))
            .filter_map(|c| c.sep)
            .collect();
        let calls = module_seps.iter().filter(|s| **s == HaikuSep::Call).count();
        let sep_call = self.style == Style::Haiku && calls * 2 > module_seps.len();
        let mut taken = BTreeSet::new();
        let mut made = Vec::with_capacity(plans.len());
        for plan in &plans {
            made.push(self.field(plan, tuple, mixed, sep_call, &mut taken)?);
        }
        if !tuple {
            made.sort_by(|(a, _), (b, _)| a.ident.cmp(&b.ident));
        }
        for (field, field_shapes) in made {
            fields.push(field);
            shapes.push(field_shapes);
        }
        let shape = Shape {
            class: module.class.clone(),
            sep_call,
            tuple,
            fields,
        };
        let uses = Uses {
            names: use_name.map(str::to_owned).into_iter().collect(),
            places: module.places.clone(),
            shapes,
        };
        Ok((shape, uses))
    }

    /// The fields of an Objax `Sequential` or `ModuleList`: one per position up to the last that
    /// holds tensors, the longest run of alike elements as one flattened `Vec`.
    fn positions<'m>(&self, module: &'m Module) -> Result<Vec<Plan<'m>>, String> {
        let mut by_position = BTreeMap::new();
        for (name, child) in &module.children {
            let Some(i) = parse_index(name) else {
                return Err(format!(
                    "`{}` has the element `[{name}]`, which is not a position",
                    place(module)
                ));
            };
            by_position.insert(i, child);
        }
        let last = by_position.keys().next_back().copied().unwrap_or(0);
        if last > 4 * by_position.len() + 16 {
            return Err(format!(
                "`{}` has elements up to `[{last}]` but only {} hold tensors",
                place(module),
                by_position.len()
            ));
        }
        let slots: Vec<Option<&Child>> = (0..=last).map(|i| by_position.get(&i).copied()).collect();
        // A flattened list cannot be followed by an `Option`, which a merge may make.
        let optional = slots.iter().flatten().any(|c| c.optional);
        let (start, len) = if optional {
            (0, 0)
        } else {
            longest_run(&slots)
        };
        let mut plans = Vec::new();
        let mut i = 0;
        while i < slots.len() {
            if len >= 2 && i == start {
                plans.push(Plan {
                    name: i.to_string(),
                    items: slots[start..start + len]
                        .iter()
                        .flatten()
                        .copied()
                        .collect(),
                    arrangement: Arrangement::Flatten,
                });
                i += len;
                continue;
            }
            plans.push(Plan {
                name: i.to_string(),
                items: slots[i].into_iter().collect(),
                arrangement: Arrangement::Single,
            });
            i += 1;
        }
        Ok(plans)
    }

    /// The fields of a module with named children: runs of numbered modules as one field each.
    fn runs<'m>(&self, module: &'m Module) -> Vec<Plan<'m>> {
        let children = &module.children;
        let mut in_run: BTreeSet<&str> = BTreeSet::new();
        let mut plans = Vec::new();
        if self.style != Style::Objax {
            let mut numbered: BTreeMap<&str, BTreeMap<usize, &str>> = BTreeMap::new();
            for name in children.keys() {
                if let Some((base, i)) = split_index(name) {
                    numbered.entry(base).or_default().insert(i, name);
                }
            }
            for (base, members) in numbered {
                let contiguous =
                    |from: usize| members.keys().copied().eq(from..from + members.len());
                let names: Vec<&str> = if !children.contains_key(base) && contiguous(0) {
                    members.values().copied().collect()
                } else if self.style == Style::Haiku && children.contains_key(base) && contiguous(1)
                {
                    std::iter::once(base)
                        .chain(members.values().copied())
                        .collect()
                } else {
                    continue;
                };
                let arrangement = if names[0] == base {
                    Arrangement::Haiku
                } else {
                    Arrangement::Index
                };
                let items: Vec<&Child> = names.iter().filter_map(|n| children.get(*n)).collect();
                if items.len() < 2 || self.merge(&items).is_none() {
                    continue;
                }
                in_run.extend(names.iter().copied());
                plans.push(Plan {
                    name: base.to_owned(),
                    items,
                    arrangement,
                });
            }
        }
        for (name, child) in children {
            if in_run.contains(name.as_str()) {
                continue;
            }
            let arrangement = if self.nested(child) {
                Arrangement::Nested
            } else {
                Arrangement::Single
            };
            plans.push(Plan {
                name: name.clone(),
                items: vec![child],
                arrangement,
            });
        }
        plans.sort_by(|a, b| a.name.cmp(&b.name));
        plans
    }

    /// Whether a Flax module's children are all its elements `0`, `1`, ... (`numbering =
    /// "nested"`), alike enough to be one list.
    fn nested(&self, child: &Child) -> bool {
        let Kind::Module(module) = &child.kind else {
            return false;
        };
        self.style == Style::Flax
            && module
                .children
                .keys()
                .map(|n| parse_index(n))
                .collect::<Option<BTreeSet<usize>>>()
                .is_some_and(|set| set.into_iter().eq(0..module.children.len()))
            && merge_all(module.children.values()).is_some()
    }

    /// The elements of a run merged into one.
    fn merge(&self, items: &[&Child]) -> Option<Child> {
        merge_all(items.iter().copied())
    }

    /// One field for `plan`, and the shapes of the tensors it holds.
    fn field(
        &mut self,
        plan: &Plan<'_>,
        tuple: bool,
        mixed: bool,
        sep_call: bool,
        taken: &mut BTreeSet<String>,
    ) -> Result<(Field, BTreeSet<Vec<usize>>), String> {
        let mut attrs = Vec::new();
        let ident = if tuple {
            None
        } else {
            let mut ident = field_ident(&plan.name);
            if taken.contains(&ident) {
                ident = (2..)
                    .map(|n| format!("{ident}_{n}"))
                    .find(|candidate| !taken.contains(candidate))
                    .unwrap_or(ident);
            }
            taken.insert(ident.clone());
            if ident != plan.name {
                attrs.push(format!("rename = {:?}", plan.name));
            }
            Some(ident)
        };
        let Some(first) = plan.items.first() else {
            return Ok((
                Field {
                    ident,
                    attrs,
                    ty: Ty::Unit,
                },
                BTreeSet::new(),
            ));
        };
        let child = if plan.items.len() > 1 {
            self.merge(&plan.items)
                .ok_or_else(|| format!("the elements `{}` cannot be one list", plan.name))?
        } else {
            (*first).clone()
        };
        let collections = child.kind.collections();
        if mixed
            && collections.len() == 1
            && let Some(Some(collection)) = collections.first()
            && Some(collection) != self.main.as_ref()
        {
            attrs.push(format!("collection = {collection:?}"));
        }
        if self.style == Style::Haiku
            && let (Some(sep), Kind::Module(_)) = (child.sep, &child.kind)
            && (sep == HaikuSep::Call) != sep_call
        {
            attrs.push(format!("sep = {:?}", sep.as_str()));
        }
        let mut shapes = BTreeSet::new();
        let mut ty = match plan.arrangement {
            Arrangement::Flatten => {
                attrs.push("flatten".to_owned());
                Ty::Vec(Box::new(self.kind_ty(&child, &mut shapes, &plan.name)?))
            }
            Arrangement::Nested => {
                attrs.push("numbering = \"nested\"".to_owned());
                let Kind::Module(list) = &child.kind else {
                    return Err(format!("`{}` is not a list", plan.name));
                };
                let element = merge_all(list.children.values())
                    .ok_or_else(|| format!("the elements of `{}` are not alike", plan.name))?;
                Ty::Vec(Box::new(self.kind_ty(
                    &element,
                    &mut shapes,
                    singular(&plan.name),
                )?))
            }
            Arrangement::Index | Arrangement::Haiku => {
                if plan.arrangement == Arrangement::Haiku {
                    attrs.push("numbering = \"haiku\"".to_owned());
                }
                Ty::Vec(Box::new(self.kind_ty(
                    &child,
                    &mut shapes,
                    singular(&plan.name),
                )?))
            }
            Arrangement::Single => self.child_ty(&child, &mut shapes, &plan.name, &mut attrs)?,
        };
        if child.optional {
            ty = Ty::Option(Box::new(ty));
        }
        Ok((Field { ident, attrs, ty }, shapes))
    }

    /// The type of a single child: an Objax container whose elements are one run is a `Vec`.
    fn child_ty(
        &mut self,
        child: &Child,
        shapes: &mut BTreeSet<Vec<usize>>,
        name: &str,
        attrs: &mut Vec<String>,
    ) -> Result<Ty, String> {
        if self.style == Style::Objax
            && let Kind::Module(module) = &child.kind
            && !module.children.is_empty()
            && module.children.values().all(|c| c.indexed)
        {
            let positions: Option<BTreeSet<usize>> =
                module.children.keys().map(|n| parse_index(n)).collect();
            let contiguous = positions
                .as_ref()
                .is_some_and(|p| p.iter().copied().eq(0..module.children.len()));
            let list = positions.is_some();
            if (contiguous || !list)
                && let Some(element) = merge_all(module.children.values())
            {
                let default = if list { "ModuleList" } else { "ModuleDict" };
                if let Some(class) = &module.class
                    && class != default
                {
                    attrs.push(format!("class = {class:?}"));
                }
                let element = Box::new(self.kind_ty(&element, shapes, name)?);
                return Ok(if list {
                    Ty::Vec(element)
                } else {
                    Ty::Map(element)
                });
            }
        }
        self.kind_ty(child, shapes, name)
    }

    /// The type of a tensor or of a module's struct.
    fn kind_ty(
        &mut self,
        child: &Child,
        shapes: &mut BTreeSet<Vec<usize>>,
        name: &str,
    ) -> Result<Ty, String> {
        match &child.kind {
            Kind::Leaf(Leaf {
                dtype,
                rank,
                shapes: seen,
                ..
            }) => {
                shapes.extend(seen.iter().cloned());
                Ok(Ty::Leaf(*dtype, *rank))
            }
            Kind::Module(module) => {
                if self.style == Style::Objax && module.class.is_none() {
                    return Err(format!("`{}` has no class", place(module)));
                }
                let mixed = child.kind.collections().len() > 1;
                let (shape, uses) = self.shape_of(module, mixed, Some(strip_number(name)))?;
                Ok(Ty::Struct(self.intern(shape, uses)))
            }
        }
    }

    /// The index of the struct of `shape`, made once and shared by every module of that shape.
    fn intern(&mut self, shape: Shape, uses: Uses) -> usize {
        match self.index.get(&shape) {
            Some(&i) => {
                let known = &mut self.structs[i].1;
                known.names.extend(uses.names);
                known.places.extend(uses.places);
                for (all, more) in known.shapes.iter_mut().zip(uses.shapes) {
                    all.extend(more);
                }
                i
            }
            None => {
                let i = self.structs.len();
                self.index.insert(shape.clone(), i);
                self.structs.push((shape, uses));
                i
            }
        }
    }
}

/// Where `module` first is in the file, for messages.
fn place(module: &Module) -> &str {
    module.places.first().map_or("", String::as_str)
}

/// The first longest run of adjacent present elements that can be one list.
fn longest_run(slots: &[Option<&Child>]) -> (usize, usize) {
    let mut best = (0, 0);
    for start in 0..slots.len() {
        let Some(mut merged) = slots[start].cloned() else {
            continue;
        };
        let mut end = start + 1;
        while let Some(Some(next)) = slots.get(end) {
            match merge_pair(&merged, next).filter(has_common) {
                Some(more) => merged = more,
                None => break,
            }
            end += 1;
        }
        if end - start > best.1 {
            best = (start, end - start);
        }
    }
    best
}
