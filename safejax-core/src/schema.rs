//! The static key layout of a [`SafeParams`](crate::SafeParams) type: what it reads and writes, known to the compiler.
//!
//! Every `SafeParams` type has a [`Kind`] ([`SafeParams::KIND`](crate::SafeParams::KIND)): a leaf with its element dtype and
//! rank, a struct with its fields, a list, an array, an option or a map. `#[derive(SafeParams)]`
//! builds the kind of a struct from its fields' kinds, so the kind of a model describes every key
//! the model can have, without an instance. It is what the header-only check
//! ([`crate::Loader::check`]) and the compile-time `#[safejax(expect = "...")]` walk, and what
//! [`SafeParams::schema`](crate::SafeParams::schema) renders for people.
//!
//! ```
//! use safejax_core::SafeParams;
//! use safejax_core::schema::Kind;
//!
//! assert!(matches!(<Vec<ndarray::Array2<f32>> as SafeParams>::KIND, Kind::List(_)));
//! ```

use std::fmt;

use crate::Dtype;
use crate::key::{FieldInfo, KeyPath, NodeInfo, Numbering, Segment, SegmentName};
use crate::params::{LIST_CLASS, MAP_CLASS};
use crate::style::Style;

/// What a [`SafeParams`](crate::SafeParams) type is, as far as its keys are concerned.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// One tensor.
    Leaf(LeafKind),
    /// A struct: named or positional fields, each a key segment.
    Struct(&'static StructSchema),
    /// A list of a length the file decides (`Vec`): elements `0..n`.
    List(&'static Kind),
    /// A list of a fixed length (`[T; N]`).
    Array(usize, &'static Kind),
    /// A value that may be absent: read when the file has keys under it.
    Optional(&'static Kind),
    /// A string-keyed map: one entry per name the file has under it.
    Map(&'static Kind),
    /// Nothing stored (`()`, `PhantomData`).
    Empty,
    /// A type that holds itself (`Option<Box<Self>>`): its kind, behind a function so that the
    /// kind stays finite. The header-only checks do not follow it.
    Recursive(fn() -> &'static Kind),
    /// A type that implements `SafeParams` by hand and describes no kind.
    Opaque,
}

/// A tensor leaf: its element dtype and rank, where the type fixes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafKind {
    /// The element dtype; `None` for any (`Tensor`).
    pub dtype: Option<Dtype>,
    /// The rank; `None` for any (`ArrayD`, `Tensor`).
    pub rank: Option<usize>,
}

/// A struct's kind: its name, Objax class, collection and stored fields.
#[derive(Debug, Clone, Copy)]
pub struct StructSchema {
    /// The Rust type's name.
    pub name: &'static str,
    /// Its class and collection, as its values enter the key path.
    pub node: NodeInfo,
    /// The stored fields, in order.
    pub fields: &'static [FieldSchema],
}

/// One stored field of a struct.
#[derive(Debug, Clone, Copy)]
pub struct FieldSchema {
    /// The Rust field name (or position, for a tuple struct).
    pub rust_name: &'static str,
    /// Its key segment, class, collection, separator and numbering.
    pub info: FieldInfo,
    /// `#[safejax(default)]`: read when present, else `Default`.
    pub default: bool,
    /// `#[safejax(flatten)]`: its elements take positions of the struct itself.
    pub flatten: bool,
    /// The field type's kind.
    pub kind: &'static Kind,
}

/// One key pattern of a type's schema: a key with `{i}` where a list index goes, `{key}` where a
/// map key goes, and what the leaf holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    /// The key, in the schema's style.
    pub key: String,
    /// The leaf's dtype and rank.
    pub leaf: LeafKind,
    /// Whether the key may be absent (under an `Option`, a `default` field or a list).
    pub optional: bool,
}

/// The key patterns of a type in a style, one line each when displayed:
/// `params.blocks_{i}.dense.kernel  f32 rank 2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// The style the patterns are rendered in.
    pub style: Style,
    /// The patterns, in the order the type visits its fields.
    pub patterns: Vec<KeyPattern>,
    /// Paths the patterns stop at: recursive fields, and types that describe no kind.
    pub unknown: Vec<String>,
}

impl Schema {
    /// The schema of `kind` rendered in `style`.
    ///
    /// ```
    /// use safejax_core::schema::{Kind, Schema};
    /// use safejax_core::{SafeParams, Style};
    ///
    /// let schema = Schema::of(&<Vec<ndarray::Array2<f32>> as SafeParams>::KIND, Style::Flax);
    /// assert_eq!(schema.to_string(), "{i}  f32 rank 2  (optional)\n");
    /// ```
    pub fn of(kind: &Kind, style: Style) -> Schema {
        let mut schema = Schema {
            style,
            patterns: Vec::new(),
            unknown: Vec::new(),
        };
        schema.walk(kind, &mut KeyPath::new(), false);
        schema
    }

    fn walk(&mut self, kind: &Kind, path: &mut KeyPath, optional: bool) {
        if path.segments().len() > crate::key::MAX_DEPTH {
            self.unknown
                .push(format!("{} (too deep)", self.style.prefix(path)));
            return;
        }
        match kind {
            Kind::Leaf(leaf) => self.patterns.push(KeyPattern {
                // Element 0 of a Haiku-numbered list has no suffix: `linear`, `linear_1`.
                key: self
                    .style
                    .render(path, true)
                    .replace(&format!("_{HAIKU_INDEX}"), "{_i}")
                    .replace(HAIKU_INDEX, "{_i}"),
                leaf: *leaf,
                optional,
            }),
            Kind::Struct(schema) => self.structure(schema, path, optional),
            Kind::List(element) => self.elements(element, path, true),
            Kind::Array(_, element) => self.elements(element, path, optional),
            Kind::Optional(inner) => self.walk(inner, path, true),
            Kind::Map(element) => {
                let set = path.default_class(MAP_CLASS);
                path.push_key("{key}");
                self.walk(element, path, true);
                path.pop();
                if set {
                    clear_class(path);
                }
            }
            Kind::Empty => {}
            Kind::Recursive(_) => self
                .unknown
                .push(format!("{} (recursive)", self.style.prefix(path))),
            Kind::Opaque => self
                .unknown
                .push(format!("{} (no schema)", self.style.prefix(path))),
        }
    }

    fn elements(&mut self, element: &Kind, path: &mut KeyPath, optional: bool) {
        let haiku = path
            .last()
            .is_some_and(|list| list.numbering == Numbering::Haiku)
            && self.style != Style::Objax;
        let set = path.default_class(LIST_CLASS);
        path.push_key(if haiku { HAIKU_INDEX } else { "{i}" });
        self.walk(element, path, optional);
        path.pop();
        if set {
            clear_class(path);
        }
    }

    fn structure(&mut self, schema: &StructSchema, path: &mut KeyPath, optional: bool) {
        let saved = path.enter_node(&schema.node);
        // Positions after a flattened list move by its length less one: by `n - 1` for a
        // `Vec` of `n` elements, by a number for an array.
        let mut shift: isize = 0;
        let mut variable = false;
        for field in schema.fields {
            let position = field.info.position.wrapping_add_signed(shift);
            if field.flatten {
                let element = match field.kind {
                    Kind::List(element) | Kind::Array(_, element) => *element,
                    other => other,
                };
                let label = self.position(position, variable, "+{j}");
                path.push(self.positional(field, label));
                self.walk(element, path, true);
                path.pop();
                match field.kind {
                    Kind::Array(n, _) => shift += *n as isize - 1,
                    _ => {
                        variable = true;
                        shift -= 1;
                    }
                }
                continue;
            }
            let saved = if variable && field.info.name.is_none() {
                let label = self.position(position, true, "");
                path.push(self.positional(field, label));
                None
            } else {
                let info = crate::key::FieldInfo {
                    position,
                    ..field.info
                };
                Some(path.enter_field(&info))
            };
            self.walk(field.kind, path, optional || field.default);
            match saved {
                Some(saved) => path.leave_field(saved),
                None => {
                    path.pop();
                }
            }
        }
        path.leave_node(saved);
    }

    /// A position as a pattern: `3`, or `{n}+3` after a flattened `Vec` of `n` elements.
    fn position(&self, position: usize, variable: bool, then: &str) -> String {
        match variable {
            true => format!("{{n}}+{position}{then}"),
            false if then.is_empty() => position.to_string(),
            false => format!("{position}{then}"),
        }
    }

    /// The segment of a position given as a pattern (`[2+{j}]` in Objax, `layers_2+{j}`).
    fn positional(&self, field: &FieldSchema, label: String) -> Segment {
        let name = match self.style {
            Style::Objax => SegmentName::Key(label),
            _ => SegmentName::Field(format!("layers_{label}").into()),
        };
        Segment {
            name,
            class: field.info.class.map(Into::into),
            sep: field.info.sep,
            numbering: Numbering::Index,
        }
    }
}

/// Where an element of a Haiku-numbered list goes, until the key is rendered.
const HAIKU_INDEX: &str = "\u{1}";

fn clear_class(path: &mut KeyPath) {
    match path.segments_mut().last_mut() {
        Some(segment) => segment.class = None,
        None => path.set_root_class(None),
    }
}

impl fmt::Display for LeafKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dtype {
            Some(dtype) => write!(f, "{}", crate::check::dtype_name(dtype))?,
            None => f.write_str("any dtype")?,
        }
        match self.rank {
            Some(rank) => write!(f, " rank {rank}"),
            None => f.write_str(" any rank"),
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pattern in &self.patterns {
            write!(f, "{}  {}", pattern.key, pattern.leaf)?;
            if pattern.optional {
                f.write_str("  (optional)")?;
            }
            writeln!(f)?;
        }
        for unknown in &self.unknown {
            writeln!(f, "{unknown}")?;
        }
        Ok(())
    }
}
