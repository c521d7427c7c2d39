//! Keys two fields of a struct can both write: found at compile time, from the struct's kind.
//!
//! One struct sees its own fields' names, but not what its fields' types make of them: a field
//! renamed `blocks_0` beside a list `blocks`, a renamed field `layers_2` beside a flattened list, a
//! child whose collection puts its keys where a sibling's are. For each pair of fields and each
//! style, the check compares the patterns of their keys (a list index, a map key and a position
//! are wildcards). It stays near-linear: the full patterns of two fields are compared only when
//! the starts of their keys (collection and first step) could agree, which in a real model is
//! never, or nearly.

use super::path::{ANY_DIGITS, ANY_HAIKU_SUFFIX, ANY_NAME, Buf, MAX_KEY, Name, Path};
use super::report::Message;
use crate::params::{LIST_CLASS, MAP_CLASS};
use crate::schema::{FieldSchema, Kind, StructSchema};
use crate::style::Style;

/// How many collections the leaves of one field may have for the quick comparison; a field
/// with more is compared in full with every other.
const MAX_HEADS: usize = 8;

/// Room for the patterns of one field in a full comparison.
const ARENA: usize = 1 << 16;
const MAX_PATTERNS: usize = 1024;

/// The most fields of one struct whose collections are worked out once; the fields past it work
/// theirs out for each pair.
const MAX_FIELDS: usize = 256;

/// The collections of one field's leaves: up to [`MAX_HEADS`], and how many there are.
#[derive(Clone, Copy)]
struct Heads {
    collections: [Option<&'static str>; MAX_HEADS],
    count: usize,
}

const NO_HEADS: Heads = Heads {
    collections: [None; MAX_HEADS],
    count: 0,
};

/// The first pair of keys two fields of the struct of `kind` can both write, described; `None`
/// when there is none (or `kind` is not a struct).
///
/// Const evaluation takes about a microsecond a step, and every struct of a model is checked:
/// the pairs of fields are screened with a few comparisons of names each,
/// and only a pair that passes has its key patterns rendered and compared, in each style.
pub const fn collision_message(kind: &Kind) -> Option<Message> {
    let Kind::Struct(schema) = kind else {
        return None;
    };
    if schema.fields.len() < 2 {
        return None;
    }
    let mut known = [NO_HEADS; MAX_FIELDS];
    let mut i = 0;
    while i < schema.fields.len() && i < MAX_FIELDS {
        known[i] = collections(schema, &schema.fields[i]);
        i += 1;
    }
    let mut i = 0;
    while i < schema.fields.len() {
        let a = heads_of(schema, &known, i);
        let mut j = i + 1;
        while j < schema.fields.len() {
            let b = heads_of(schema, &known, j);
            if may_collide(schema, (i, &a), (j, &b)) {
                let styles = [Style::Flax, Style::Haiku, Style::Objax];
                let mut s = 0;
                while s < styles.len() {
                    if let Some(message) = compare(schema, i, j, styles[s]) {
                        return Some(message);
                    }
                    s += 1;
                }
            }
            j += 1;
        }
        i += 1;
    }
    None
}

const fn heads_of(schema: &StructSchema, known: &[Heads; MAX_FIELDS], i: usize) -> Heads {
    if i < MAX_FIELDS {
        known[i]
    } else {
        collections(schema, &schema.fields[i])
    }
}

/// Whether two fields' keys could start alike, in any style. A Flax or Haiku key starts with its
/// collection (if any) and the field's step; Objax keys with the step, so the same test covers
/// them. A list or a map (joined with `_`) or a flattened list can go on past its name.
const fn may_collide(
    schema: &StructSchema,
    (i, a_heads): (usize, &Heads),
    (j, b_heads): (usize, &Heads),
) -> bool {
    let (a, b) = (&schema.fields[i], &schema.fields[j]);
    // Positions after a flattened list move by its length: they never meet its elements; and
    // two positions are never the same.
    let (a_position, b_position) = (
        a.flatten || a.info.name.is_none(),
        b.flatten || b.info.name.is_none(),
    );
    if a_position && b_position {
        return false;
    }
    if a_heads.count > MAX_HEADS || b_heads.count > MAX_HEADS {
        return true;
    }
    let mut x = 0;
    while x < a_heads.count {
        let mut y = 0;
        while y < b_heads.count {
            if starts_alike((a_heads.collections[x], a), (b_heads.collections[y], b)) {
                return true;
            }
            y += 1;
        }
        x += 1;
    }
    false
}

/// Whether keys of two fields, in these collections, could share their first two components.
const fn starts_alike(
    (a_collection, a): (Option<&str>, &FieldSchema),
    (b_collection, b): (Option<&str>, &FieldSchema),
) -> bool {
    match (a_collection, b_collection) {
        (Some(x), Some(y)) => eq(x, y) && steps_alike(a, b),
        (None, None) => steps_alike(a, b),
        // `c.step...` against `name...`: only where the name is the collection.
        (Some(c), None) => step_is(b, c),
        (None, Some(c)) => step_is(a, c),
    }
}

/// Whether the steps of two fields (one at least named) could render alike.
const fn steps_alike(a: &FieldSchema, b: &FieldSchema) -> bool {
    match (a.info.name, b.info.name) {
        (Some(x), Some(y)) => eq(x, y) || opens_to(a, x, y) || opens_to(b, y, x),
        (Some(name), None) => position_named(b, name),
        (None, Some(name)) => position_named(a, name),
        (None, None) => false,
    }
}

/// Whether a positional field's step (`layers_<p>`, or any `layers_<n>` if flattened) can be
/// `name`, or start it.
const fn position_named(field: &FieldSchema, name: &str) -> bool {
    starts_with(name, "layers_") || (open(field) && starts_with("layers_", name))
}

/// Whether a field's step can be `name`, the first component of the other key.
const fn step_is(field: &FieldSchema, name: &str) -> bool {
    match field.info.name {
        Some(own) => eq(own, name) || opens_to(field, own, name),
        None => starts_with(name, "layers_"),
    }
}

/// Whether a field's step can go on past its name: a list or a map whose elements are joined to
/// it with `_` (`blocks_0`), or a flattened list's positions.
const fn open(field: &FieldSchema) -> bool {
    if field.flatten {
        return true;
    }
    match unwrapped(field.kind) {
        Kind::List(_) | Kind::Array(..) => {
            !matches!(field.info.numbering, crate::key::Numbering::Nested)
        }
        Kind::Map(_) => true,
        _ => false,
    }
}

/// Whether a field named `name` can go on past its name as far as `other` (which starts with
/// it): a flattened list's positions anywhere, a map's entry after `_`, a list's element after
/// `_` and a digit. So `blocks_a` is no element of `blocks`, and such a pair is not compared in
/// full, which would walk both fields' keys in every style.
const fn opens_to(field: &FieldSchema, name: &str, other: &str) -> bool {
    if !open(field) || !starts_with(other, name) {
        return false;
    }
    let rest = other.as_bytes().split_at(name.len()).1;
    if field.flatten {
        return true;
    }
    let joined = rest.len() >= 2 && rest[0] == b'_';
    match unwrapped(field.kind) {
        Kind::Map(_) => joined,
        _ => joined && rest[1].is_ascii_digit(),
    }
}

/// `kind` without the options around it.
const fn unwrapped(kind: &Kind) -> &Kind {
    let mut kind = kind;
    while let Kind::Optional(inner) = kind {
        kind = inner;
    }
    kind
}

const fn eq(a: &str, b: &str) -> bool {
    super::eq(a.as_bytes(), b.as_bytes())
}

const fn starts_with(text: &str, prefix: &str) -> bool {
    super::starts_with(text.as_bytes(), prefix.as_bytes())
}

/// The collections of a field's leaves, the struct being the root of its keys.
const fn collections(schema: &StructSchema, field: &FieldSchema) -> Heads {
    let mut heads = NO_HEADS;
    let inherited = schema.node.collection;
    let (collection, pinned) = match field.info.collection {
        Some(c) => (Some(c), true),
        None => (inherited, false),
    };
    collect_collections(field.kind, collection, pinned, &mut heads);
    heads
}

/// The distinct collections of the leaves of `kind`, entered with `collection` in force (pinned
/// by the field above, or not: a struct's own collection counts only where none is pinned, as
/// [`crate::KeyPath::enter_node`] has it), counted past [`MAX_HEADS`].
const fn collect_collections(
    kind: &Kind,
    collection: Option<&'static str>,
    pinned: bool,
    heads: &mut Heads,
) {
    if heads.count > MAX_HEADS {
        return;
    }
    match kind {
        Kind::Leaf(_) => {
            // A model's leaves are most of the walk: compared in few calls (a call costs const
            // evaluation more than a dozen steps).
            let wanted: &[u8] = match collection {
                Some(c) => c.as_bytes(),
                None => b"",
            };
            let mut k = 0;
            while k < heads.count && k < MAX_HEADS {
                let known = match heads.collections[k] {
                    Some(c) => c.as_bytes(),
                    None => b"",
                };
                // Names are never empty: `b""` is none.
                if same_bytes(known, wanted) {
                    return;
                }
                k += 1;
            }
            if heads.count < MAX_HEADS {
                heads.collections[heads.count] = collection;
            }
            heads.count += 1;
        }
        Kind::Struct(schema) => {
            let collection = match schema.node.collection {
                Some(own) if !pinned => Some(own),
                _ => collection,
            };
            let fields = schema.fields;
            let mut i = 0;
            let n = fields.len();
            while i < n {
                let field = &fields[i];
                match field.info.collection {
                    Some(c) => collect_collections(field.kind, Some(c), true, heads),
                    None => collect_collections(field.kind, collection, false, heads),
                }
                i += 1;
            }
        }
        Kind::List(inner) | Kind::Array(_, inner) | Kind::Optional(inner) | Kind::Map(inner) => {
            collect_collections(inner, collection, pinned, heads)
        }
        Kind::Empty | Kind::Recursive(_) | Kind::Opaque => {}
    }
}

/// Whether two byte strings are equal, by indexing: no library call past the lengths.
const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let mut i = 0;
    while i < n {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The patterns of one field, kept for comparison with another's.
struct Patterns {
    bytes: [u8; ARENA],
    len: usize,
    /// Each pattern's start, length, and the start and length of its Rust path.
    spans: [(usize, usize, usize, usize); MAX_PATTERNS],
    count: usize,
}

/// What a walk over a field's leaves does with each: keep it, or compare it with those kept.
struct Walk<'p> {
    path: Path<'static>,
    rust: Buf,
    keep: Option<&'p mut Patterns>,
    against: Option<&'p Patterns>,
    /// The first match: the index of the kept pattern, and this leaf's pattern and Rust path.
    found: Option<(usize, Buf, Buf)>,
}

/// Compares every key pattern of fields `i` and `j`; the first pair that can be equal, described.
const fn compare(schema: &StructSchema, i: usize, j: usize, style: Style) -> Option<Message> {
    let mut kept = Patterns {
        bytes: [0; ARENA],
        len: 0,
        spans: [(0, 0, 0, 0); MAX_PATTERNS],
        count: 0,
    };
    let mut walk = Walk {
        path: Path::new(style),
        rust: Buf::new(),
        keep: Some(&mut kept),
        against: None,
        found: None,
    };
    walk.field(schema, &schema.fields[i]);
    let mut walk = Walk {
        path: Path::new(style),
        rust: Buf::new(),
        keep: None,
        against: Some(&kept),
        found: None,
    };
    walk.field(schema, &schema.fields[j]);
    let Some((k, pattern, rust)) = walk.found else {
        return None;
    };
    let (start, len, rust_start, rust_len) = kept.spans[k];
    let (first, _) = kept.bytes.split_at(start + len);
    let (_, first) = first.split_at(start);
    let (first_rust, _) = kept.bytes.split_at(rust_start + rust_len);
    let (_, first_rust) = first_rust.split_at(rust_start);
    let mut m = Message::new();
    m.push("safejax: two fields of `");
    m.push(schema.name);
    m.push("` can write the same key in ");
    m.push(super::report::style_name(style));
    m.push(" style:\n  `");
    m.push_bytes(first_rust);
    m.push("` as `");
    push_pattern(&mut m, first);
    m.push("`\n  `");
    m.push_bytes(rust.as_bytes());
    m.push("` as `");
    push_pattern(&mut m, pattern.as_bytes());
    m.push("`\nrename one of them, or give it another collection");
    Some(m)
}

/// A pattern as people read it: `{i}` for an index, `{key}` for a map key.
const fn push_pattern(m: &mut Message, pattern: &[u8]) {
    let mut i = 0;
    let mut start = 0;
    while i <= pattern.len() {
        if i == pattern.len() || is_wild(pattern[i]) {
            let (head, _) = pattern.split_at(i);
            let (_, literal) = head.split_at(start);
            m.push_bytes(literal);
            if i < pattern.len() {
                m.push(match pattern[i] {
                    ANY_DIGITS => "{i}",
                    ANY_HAIKU_SUFFIX => "{_i}",
                    _ => "{key}",
                });
            }
            start = i + 1;
        }
        i += 1;
    }
}

impl Walk<'_> {
    /// Enters a field; a flattened list's positions are a wildcard.
    const fn enter(&mut self, field: &FieldSchema) -> super::path::Saved {
        if field.flatten {
            self.rust.push_str("[j]");
            return self.path.enter_field_as(field, Name::AnyPosition);
        }
        self.path.enter_field(field, field.info.position)
    }

    const fn field(&mut self, schema: &StructSchema, field: &FieldSchema) {
        let node = self
            .path
            .enter_node(schema.node.class, schema.node.collection);
        self.rust.push_str(field.rust_name);
        let saved = self.enter(field);
        let element = match (field.flatten, field.kind) {
            (true, Kind::List(element) | Kind::Array(_, element)) => *element,
            (_, kind) => kind,
        };
        self.leaves(element);
        self.path.leave_field(saved);
        self.path.leave_node(node);
    }

    const fn leaves(&mut self, kind: &Kind) {
        if self.found.is_some() || self.path.too_deep() {
            return;
        }
        match kind {
            Kind::Leaf(_) => self.leaf(),
            Kind::Struct(schema) => {
                let node = self
                    .path
                    .enter_node(schema.node.class, schema.node.collection);
                let mut i = 0;
                while i < schema.fields.len() {
                    let field = &schema.fields[i];
                    let rust = self.rust.len;
                    self.rust.push(b'.');
                    self.rust.push_str(field.rust_name);
                    let saved = self.enter(field);
                    match (field.flatten, field.kind) {
                        (true, Kind::List(element) | Kind::Array(_, element)) => {
                            self.leaves(element)
                        }
                        (_, kind) => self.leaves(kind),
                    }
                    self.path.leave_field(saved);
                    self.rust.len = rust;
                    i += 1;
                }
                self.path.leave_node(node);
            }
            Kind::List(element) | Kind::Array(_, element) => {
                self.elements(element, Name::AnyIndex, LIST_CLASS, "[i]")
            }
            Kind::Map(element) => self.elements(element, Name::AnyKey, MAP_CLASS, "[key]"),
            Kind::Optional(inner) => self.leaves(inner),
            Kind::Empty | Kind::Recursive(_) | Kind::Opaque => {}
        }
    }

    const fn elements(
        &mut self,
        element: &Kind,
        name: Name<'static>,
        class: &'static str,
        rust: &str,
    ) {
        let set = self.path.default_class(class);
        let len = self.rust.len;
        self.rust.push_str(rust);
        self.path.push(name);
        self.leaves(element);
        self.path.pop();
        self.rust.len = len;
        if set {
            self.path.clear_class();
        }
    }

    const fn leaf(&mut self) {
        let mut key = Buf::new();
        self.path.render_key(true, &mut key);
        if let Some(kept) = &mut self.keep {
            let room = kept.len + key.len + self.rust.len;
            if kept.count == MAX_PATTERNS || room > ARENA {
                return;
            }
            let start = kept.len;
            copy_into(&mut kept.bytes, start, key.as_bytes());
            copy_into(&mut kept.bytes, start + key.len, self.rust.as_bytes());
            kept.spans[kept.count] = (start, key.len, start + key.len, self.rust.len);
            kept.len = room;
            kept.count += 1;
        } else if let Some(kept) = self.against {
            let mut k = 0;
            while k < kept.count {
                let (start, len, _, _) = kept.spans[k];
                let (head, _) = kept.bytes.split_at(start + len);
                let (_, pattern) = head.split_at(start);
                if matches(pattern, 0, key.as_bytes(), 0) {
                    let mut rust = Buf::new();
                    rust.push_str_bytes(self.rust.as_bytes());
                    self.found = Some((k, key, rust));
                    return;
                }
                k += 1;
            }
        }
    }
}

const fn copy_into(to: &mut [u8; ARENA], at: usize, from: &[u8]) {
    let mut i = 0;
    while i < from.len() {
        to[at + i] = from[i];
        i += 1;
    }
}

const fn is_wild(b: u8) -> bool {
    b == ANY_DIGITS || b == ANY_HAIKU_SUFFIX || b == ANY_NAME
}

const fn is_separator(b: u8) -> bool {
    matches!(b, b'.' | b'/' | b'(' | b')' | b'[' | b']' | b':' | 0)
}

/// Whether some key fits both patterns `a[i..]` and `b[j..]`.
const fn matches(a: &[u8], i: usize, b: &[u8], j: usize) -> bool {
    if i == a.len() && j == b.len() {
        return true;
    }
    if i < a.len() && is_wild(a[i]) {
        return wild(a, i, b, j);
    }
    if j < b.len() && is_wild(b[j]) {
        return wild(b, j, a, i);
    }
    if i == a.len() || j == b.len() {
        return false;
    }
    a[i] == b[j] && matches(a, i + 1, b, j + 1)
}

/// `matches`, where `w[i]` is a wildcard.
const fn wild(w: &[u8], i: usize, o: &[u8], j: usize) -> bool {
    if j < o.len() && is_wild(o[j]) {
        // Two wildcards: let them stand for the same text, or one for nothing.
        return matches(w, i + 1, o, j + 1)
            || (w[i] == ANY_HAIKU_SUFFIX && matches(w, i + 1, o, j))
            || (o[j] == ANY_HAIKU_SUFFIX && matches(w, i, o, j + 1));
    }
    match w[i] {
        ANY_DIGITS => digits_then(w, i + 1, o, j),
        ANY_HAIKU_SUFFIX => {
            matches(w, i + 1, o, j)
                || (j < o.len() && o[j] == b'_' && digits_then(w, i + 1, o, j + 1))
        }
        _ => {
            let mut n = j;
            while n < o.len() && !is_separator(o[n]) && !is_wild(o[n]) {
                n += 1;
                if matches(w, i + 1, o, n) {
                    return true;
                }
            }
            false
        }
    }
}

/// One or more digits of `o` from `j` (no leading zero), then `w[i..]`.
const fn digits_then(w: &[u8], i: usize, o: &[u8], j: usize) -> bool {
    let mut n = j;
    while n < o.len() && o[n].is_ascii_digit() {
        n += 1;
        if matches(w, i, o, n) {
            return true;
        }
        if o[j] == b'0' {
            return false;
        }
    }
    false
}

#[allow(dead_code)]
const _: () = assert!(MAX_KEY < ARENA);
