//! Key paths: the structured name of every tensor, before a [`Style`] renders it.
//!
//! A [`KeyPath`] is what a value sees while it is visited: the segments its parents pushed (field
//! names, list indices, tuple positions, map keys), the Objax class of every module on the way,
//! the Haiku separator before each module, and the collection the leaf belongs to. Rendering it
//! with a style gives the flat key Python safejax writes.

use std::borrow::Cow;
use std::fmt;

use crate::style::Style;

/// The string that joins a Haiku module to the module it was created in.
///
/// Haiku joins a submodule created in its parent's constructor with `/~/` (`mlp/~/linear_0`) and
/// one created while the parent runs (inside `__call__`) with a plain `/` (`encoder/block/proj`).
/// Flax and Objax ignore it.
///
/// ```
/// use safejax_core::HaikuSep;
/// assert_eq!(HaikuSep::Constructor.as_str(), "/~/");
/// assert_eq!(HaikuSep::Call.as_str(), "/");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HaikuSep {
    /// `/~/`: created in the parent's `__init__` (the default).
    #[default]
    Constructor,
    /// `/`: created inside the parent's `__call__`.
    Call,
}

impl HaikuSep {
    /// The separator as it appears in a key.
    pub const fn as_str(self) -> &'static str {
        match self {
            HaikuSep::Constructor => "/~/",
            HaikuSep::Call => "/",
        }
    }
}

/// How the elements of a list field are named in Flax and Haiku keys (Objax always writes
/// `[i]`).
///
/// ```
/// use safejax_core::Numbering;
/// assert_eq!(Numbering::default(), Numbering::Index);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Numbering {
    /// `blocks_0`, `blocks_1`, ...: the element's index joined to the list's name (the default).
    #[default]
    Index,
    /// `layer_norm`, `layer_norm_1`, `layer_norm_2`, ...: Haiku's names for modules created with
    /// the same name in one scope, the first without a number.
    Haiku,
    /// `layer.0`, `layer.1`, ...: the list is a module whose elements are its children named by
    /// their index (`name=str(i)` submodules, Hugging Face's Flax models).
    Nested,
}

/// What names one step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SegmentName {
    /// A named field (after any rename): `Dense_0`, `kernel`.
    Field(Cow<'static, str>),
    /// The `i`-th field of a tuple struct: Flax/Haiku `layers_<i>`, Objax `[i]`.
    Position(usize),
    /// The `i`-th element of a list (`Vec`, array): joined to the list's own name as `blocks_<i>`
    /// in Flax/Haiku, `[i]` in Objax.
    Index(usize),
    /// A map entry: joined like a list element (`heads_<key>`, Objax `[key]`).
    Key(String),
}

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    /// The name of the step.
    pub name: SegmentName,
    /// The Objax class of the module this step leads to (`Linear`, `Sequential`), if it is one.
    pub class: Option<Cow<'static, str>>,
    /// How Haiku joins this step to the module before it.
    pub sep: HaikuSep,
    /// How the elements of the list this step leads to are named, if it is one.
    pub numbering: Numbering,
}

impl Segment {
    /// A named field step with no class and the default Haiku separator.
    pub fn field(name: impl Into<Cow<'static, str>>) -> Self {
        Segment {
            name: SegmentName::Field(name.into()),
            class: None,
            sep: HaikuSep::default(),
            numbering: Numbering::default(),
        }
    }

    fn anonymous(name: SegmentName) -> Self {
        Segment {
            name,
            class: None,
            sep: HaikuSep::default(),
            numbering: Numbering::default(),
        }
    }

    /// Whether the step joins onto the one before it (`blocks` + `[0]` gives `blocks_0`).
    pub(crate) fn is_element(&self) -> bool {
        matches!(self.name, SegmentName::Index(_) | SegmentName::Key(_))
    }
}

/// The static description of a field, as `#[derive(SafeParams)]` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    /// The key segment: the field name, or its `rename`. `None` for an unrenamed tuple field.
    pub name: Option<&'static str>,
    /// The tuple position, used when `name` is `None`.
    pub position: usize,
    /// The `class` attribute: the child's Objax class, or a list's container class.
    pub class: Option<&'static str>,
    /// The `collection` attribute of the field.
    pub collection: Option<&'static str>,
    /// The `sep` attribute of the field (or of its struct).
    pub sep: HaikuSep,
    /// The `numbering` attribute of a list field.
    pub numbering: Numbering,
}

/// The static description of a derived type, as `#[derive(SafeParams)]` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeInfo {
    /// The Objax class name (`class` attribute, default: the Rust type's name).
    pub class: &'static str,
    /// The type's own `collection` attribute.
    pub collection: Option<&'static str>,
}

/// The structured key of the value being visited.
///
/// ```
/// use safejax_core::{KeyPath, Segment, Style};
///
/// let mut path = KeyPath::new();
/// path.push(Segment::field("Dense_0"));
/// path.push(Segment::field("kernel"));
/// path.set_collection(Some("params".into()));
/// assert_eq!(path.render(Style::Flax), "params.Dense_0.kernel");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath {
    root_class: Option<Cow<'static, str>>,
    segments: Vec<Segment>,
    collection: Option<Cow<'static, str>>,
    /// Set by a field's own `collection`, which beats the child type's declaration.
    collection_pinned: bool,
}

/// What [`KeyPath::enter_field`] and [`KeyPath::enter_node`] change, to be undone on leave.
#[derive(Debug)]
#[must_use = "pass it back to the matching `leave_*` call"]
pub struct Saved {
    collection: Option<Option<Cow<'static, str>>>,
    pinned: bool,
    set_class: bool,
    set_root: bool,
}

impl KeyPath {
    /// An empty path: the root of a value.
    pub fn new() -> Self {
        KeyPath::default()
    }

    /// The steps from the root to the current value.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The steps, mutably.
    pub(crate) fn segments_mut(&mut self) -> &mut [Segment] {
        &mut self.segments
    }

    /// The Objax class of the root, if the root declared one.
    pub fn root_class(&self) -> Option<&str> {
        self.root_class.as_deref()
    }

    /// The collection of the current value (Flax `params`, Haiku `state`, Objax `StateVar`).
    pub fn collection(&self) -> Option<&str> {
        self.collection.as_deref()
    }

    /// Sets the collection of the current value.
    pub fn set_collection(&mut self, collection: Option<Cow<'static, str>>) {
        self.collection = collection;
    }

    /// Sets the Objax class of the root.
    pub fn set_root_class(&mut self, class: Option<Cow<'static, str>>) {
        self.root_class = class;
    }

    /// Appends a step.
    pub fn push(&mut self, segment: Segment) {
        self.segments.push(segment);
    }

    /// Removes the last step.
    pub fn pop(&mut self) -> Option<Segment> {
        self.segments.pop()
    }

    /// The last step, if any.
    pub fn last(&self) -> Option<&Segment> {
        self.segments.last()
    }

    /// Appends the `i`-th element of the list the current value is.
    pub fn push_index(&mut self, index: usize) {
        self.push(Segment::anonymous(SegmentName::Index(index)));
    }

    /// Appends the map entry `key` of the map the current value is.
    pub fn push_key(&mut self, key: impl Into<String>) {
        self.push(Segment::anonymous(SegmentName::Key(key.into())));
    }

    /// Gives the current step an Objax class unless it already has one; on the root, sets the
    /// root class. Returns whether it set anything.
    pub fn default_class(&mut self, class: &'static str) -> bool {
        match self.segments.last_mut() {
            Some(segment) if segment.class.is_none() => {
                segment.class = Some(Cow::Borrowed(class));
                true
            }
            Some(_) => false,
            None if self.root_class.is_none() => {
                self.root_class = Some(Cow::Borrowed(class));
                true
            }
            None => false,
        }
    }

    fn clear_class(&mut self, root: bool) {
        if root {
            self.root_class = None;
        } else if let Some(segment) = self.segments.last_mut() {
            segment.class = None;
        }
    }

    /// Enters a field: pushes its segment and applies its `collection`.
    pub fn enter_field(&mut self, field: &FieldInfo) -> Saved {
        let name = match field.name {
            Some(name) => SegmentName::Field(Cow::Borrowed(name)),
            None => SegmentName::Position(field.position),
        };
        self.push(Segment {
            name,
            class: field.class.map(Cow::Borrowed),
            sep: field.sep,
            numbering: field.numbering,
        });
        let saved = Saved {
            collection: field
                .collection
                .map(|c| self.collection.replace(Cow::Borrowed(c))),
            pinned: self.collection_pinned,
            set_class: false,
            set_root: false,
        };
        self.collection_pinned = field.collection.is_some();
        saved
    }

    /// Leaves a field entered with [`KeyPath::enter_field`].
    pub fn leave_field(&mut self, saved: Saved) {
        self.pop();
        self.restore_collection(saved);
    }

    /// Enters a derived type: gives the current step its class and applies the type's own
    /// `collection` unless the field that holds it pinned one.
    pub fn enter_node(&mut self, node: &NodeInfo) -> Saved {
        let root = self.segments.is_empty();
        let set = self.default_class(node.class);
        let pinned = self.collection_pinned;
        let collection = match node.collection {
            Some(c) if !pinned => Some(self.collection.replace(Cow::Borrowed(c))),
            _ => None,
        };
        self.collection_pinned = false;
        Saved {
            collection,
            pinned,
            set_class: set && !root,
            set_root: set && root,
        }
    }

    /// Leaves a derived type entered with [`KeyPath::enter_node`].
    pub fn leave_node(&mut self, saved: Saved) {
        if saved.set_class || saved.set_root {
            self.clear_class(saved.set_root);
        }
        self.restore_collection(saved);
    }

    fn restore_collection(&mut self, saved: Saved) {
        if let Some(previous) = saved.collection {
            self.collection = previous;
        }
        self.collection_pinned = saved.pinned;
    }

    /// Renders the key in `style`, with the collection as Python safejax writes it.
    pub fn render(&self, style: Style) -> String {
        style.render(self, true)
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentName::Field(name) => f.write_str(name),
            SegmentName::Position(i) => write!(f, "layers_{i}"),
            SegmentName::Index(i) => write!(f, "{i}"),
            SegmentName::Key(key) => f.write_str(key),
        }
    }
}

/// The most steps a key path may have: deeper values are refused on save and reported on load,
/// so that a recursive type (`Option<Box<Self>>`) meets a file of any depth with an error rather
/// than a stack overflow. Real models nest a few dozen steps at most.
///
/// ```
/// use safejax_core::key::MAX_DEPTH;
/// assert_eq!(MAX_DEPTH, 128); // as serde_json's recursion limit
/// ```
pub const MAX_DEPTH: usize = 128;

/// Why a value deeper than [`MAX_DEPTH`] is refused.
pub(crate) fn depth_reason() -> String {
    format!("is nested deeper than {MAX_DEPTH} levels, the most safejax reads or writes")
}

/// The strings that would make a name ambiguous in at least one style.
pub const RESERVED_SEPARATORS: [&str; 7] = [".", "/", "::", "(", ")", "[", "]"];

/// Checks that `name` can be a key segment in every style: not empty, free of every style's
/// separators (`.`, `/`, `::`, `(`, `)`, `[`, `]`) and of NUL, which no key can be read back
/// with. A lone `~` (Haiku's top-level name) is allowed.
///
/// ```
/// use safejax_core::key::check_name;
/// assert!(check_name("Dense_0").is_ok());
/// assert!(check_name("~").is_ok());
/// assert_eq!(check_name("a.b").unwrap_err(), "contains `.`");
/// assert_eq!(check_name("").unwrap_err(), "is empty");
/// assert_eq!(check_name("a\0b").unwrap_err(), "contains a NUL character");
/// ```
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.contains('\0') {
        return Err("contains a NUL character".to_owned());
    }
    match RESERVED_SEPARATORS.iter().find(|sep| name.contains(**sep)) {
        Some(sep) => Err(format!("contains `{sep}`")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DENSE: FieldInfo = FieldInfo {
        name: Some("Dense_0"),
        position: 0,
        class: None,
        collection: None,
        sep: HaikuSep::Constructor,
        numbering: Numbering::Index,
    };

    #[test]
    fn field_collection_beats_the_child_types_own() {
        let mut path = KeyPath::new();
        let root = path.enter_node(&NodeInfo {
            class: "Net",
            collection: Some("params"),
        });
        let pinned = FieldInfo {
            collection: Some("batch_stats"),
            ..DENSE
        };
        let field = path.enter_field(&pinned);
        let node = path.enter_node(&NodeInfo {
            class: "Dense",
            collection: Some("cache"),
        });
        assert_eq!(path.collection(), Some("batch_stats"));
        path.leave_node(node);
        path.leave_field(field);
        assert_eq!(path.collection(), Some("params"));
        let field = path.enter_field(&DENSE);
        let node = path.enter_node(&NodeInfo {
            class: "Dense",
            collection: Some("cache"),
        });
        assert_eq!(path.collection(), Some("cache"));
        assert_eq!(path.last().and_then(|s| s.class.as_deref()), Some("Dense"));
        path.leave_node(node);
        assert_eq!(path.last().and_then(|s| s.class.as_deref()), None);
        path.leave_field(field);
        path.leave_node(root);
        assert_eq!(path, KeyPath::new());
    }

    #[test]
    fn names_with_separators_are_refused() {
        for bad in ["a.b", "a/b", "a::b", "(a", "a)", "[0", "0]", "", "a\0"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["~", "a:b", "linear_1", "Dense_0", "w"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }
}
