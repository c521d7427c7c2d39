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

/// The first pair of keys two fields of the struct of `kind` can both write, described; `None`
/// when there is none (or `kind` is not a struct).
pub const fn collision_message(kind: &Kind) -> Option<Message> {
    let Kind::Struct(schema) = kind else {
        return None;
    };
    let styles = [Style::Flax, Style::Haiku, Style::Objax];
    let mut s = 0;
    while s < styles.len() {
        let style = styles[s];
        let mut i = 0;
        while i < schema.fields.len() {
            let mut j = i + 1;
            while j < schema.fields.len() {
                if may_collide(schema, i, j, style)
                    && let Some(message) = compare(schema, i, j, style)
                {
                    return Some(message);
                }
                j += 1;
            }
            i += 1;
        }
        s += 1;
    }
    None
}

/// Whether the starts of fields `i` and `j`'s keys could agree in `style`.
const fn may_collide(schema: &StructSchema, i: usize, j: usize, style: Style) -> bool {
    let (a, b) = (&schema.fields[i], &schema.fields[j]);
    // Positions after a flattened list move by its length: they never meet its elements.
    let (a_position, b_position) = (
        a.flatten || a.info.name.is_none(),
        b.flatten || b.info.name.is_none(),
    );
    if a_position && b_position && (a.flatten || b.flatten) {
        return false;
    }
    let (a_heads, a_count) = heads(schema, a, style);
    let (b_heads, b_count) = heads(schema, b, style);
    if a_count > MAX_HEADS || b_count > MAX_HEADS {
        return true;
    }
    let mut x = 0;
    while x < a_count {
        let mut y = 0;
        while y < b_count {
            if prefix_compatible(a_heads[x].as_bytes(), b_heads[y].as_bytes()) {
                return true;
            }
            y += 1;
        }
        x += 1;
    }
    false
}

/// The starts of a field's keys, one per collection its leaves have, up to the first wildcard;
/// a count over [`MAX_HEADS`] means too many to list.
const fn heads(
    schema: &StructSchema,
    field: &FieldSchema,
    style: Style,
) -> ([Buf; MAX_HEADS], usize) {
    let mut collections: [Option<&'static str>; MAX_HEADS] = [None; MAX_HEADS];
    let mut count = 0;
    let mut path = Path::new(style);
    let node = path.enter_node(schema.node.class, schema.node.collection);
    let saved = path.enter_field(field, field.info.position);
    if field.flatten {
        path.segs[path.len - 1].name = Name::AnyPosition;
    }
    collect_collections(&mut path, field.kind, &mut collections, &mut count);
    let mut heads = [
        Buf::new(),
        Buf::new(),
        Buf::new(),
        Buf::new(),
        Buf::new(),
        Buf::new(),
        Buf::new(),
        Buf::new(),
    ];
    let mut k = 0;
    while k < count && k < MAX_HEADS {
        path.collection = collections[k];
        let head = match style {
            Style::Objax => path.render_prefix(),
            _ => path.render_key(true),
        };
        heads[k] = literal_prefix(head);
        k += 1;
    }
    path.leave_field(saved);
    path.leave_node(node);
    (heads, count)
}

/// The part of `buf` before its first wildcard.
const fn literal_prefix(mut buf: Buf) -> Buf {
    let mut i = 0;
    while i < buf.len {
        if is_wild(buf.bytes[i]) {
            buf.len = i;
            break;
        }
        i += 1;
    }
    buf
}

/// The distinct collections of the leaves under the path, counted past [`MAX_HEADS`].
const fn collect_collections(
    path: &mut Path<'_>,
    kind: &Kind,
    out: &mut [Option<&'static str>; MAX_HEADS],
    count: &mut usize,
) {
    match kind {
        Kind::Leaf(_) => {
            let c = path.collection;
            let mut k = 0;
            while k < *count && k < MAX_HEADS {
                if same(out[k], c) {
                    return;
                }
                k += 1;
            }
            if *count < MAX_HEADS {
                out[*count] = c;
            }
            *count += 1;
        }
        Kind::Struct(schema) => {
            let node = path.enter_node(schema.node.class, schema.node.collection);
            let mut i = 0;
            while i < schema.fields.len() && *count <= MAX_HEADS {
                let field = &schema.fields[i];
                let saved = path.enter_field(field, field.info.position);
                collect_collections(path, field.kind, out, count);
                path.leave_field(saved);
                i += 1;
            }
            path.leave_node(node);
        }
        Kind::List(inner) | Kind::Array(_, inner) | Kind::Optional(inner) | Kind::Map(inner) => {
            collect_collections(path, inner, out, count)
        }
        Kind::Empty | Kind::Recursive(_) | Kind::Opaque => {}
    }
}

const fn same(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => super::eq(a.as_bytes(), b.as_bytes()),
        _ => false,
    }
}

const fn prefix_compatible(a: &[u8], b: &[u8]) -> bool {
    let n = if a.len() < b.len() { a.len() } else { b.len() };
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
    const fn field(&mut self, schema: &StructSchema, field: &FieldSchema) {
        let node = self
            .path
            .enter_node(schema.node.class, schema.node.collection);
        self.rust.push_str(field.rust_name);
        let saved = self.path.enter_field(field, field.info.position);
        let element = match (field.flatten, field.kind) {
            (true, Kind::List(element) | Kind::Array(_, element)) => {
                self.path.segs[self.path.len - 1].name = Name::AnyPosition;
                self.rust.push_str("[j]");
                *element
            }
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
                    let saved = self.path.enter_field(field, field.info.position);
                    match (field.flatten, field.kind) {
                        (true, Kind::List(element) | Kind::Array(_, element)) => {
                            self.path.segs[self.path.len - 1].name = Name::AnyPosition;
                            self.rust.push_str("[j]");
                            self.leaves(element);
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
        let key = self.path.render_key(true);
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
