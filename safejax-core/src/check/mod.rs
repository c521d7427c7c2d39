//! The header-only checker: which keys a type would read from a file, walked from its [`Kind`]
//! against a table of the file's names, dtypes and shapes, with no tensor data.
//!
//! It is `const`, so that one implementation serves both [`crate::Loader::check`] at run time and
//! `#[safejax(expect = "...")]` at compile time, where the derive prepares the table from the
//! file's header and the compiler runs the walk. It follows the [`crate::Reader`] step for step:
//! the same rendering of keys, the same search for list elements and map entries, the same rules
//! for absent options; a test holds the two to the same reports.
//!
//! Const code has no allocation: the caller lends the buffers (the used flags, the map entries
//! tried, the findings and their text), sized for the table.

mod collide;
mod path;
mod report;
pub mod tree;

pub use collide::collision_message;
pub use path::MAX_KEY;
pub use report::{Message, expect_message};
pub(crate) use report::{check_headers, sorted_names};

#[cfg(test)]
mod tests;

use self::path::{Buf, Cursor, Name, Path};
use crate::Dtype;
use crate::key::Numbering;
use crate::reader::MAX_ENTRY_CANDIDATES;
use crate::schema::{FieldSchema, Kind, LeafKind, StructSchema};
use crate::style::Style;

/// A name of the table as the searches see it: a tensor's key from byte `start` on (`0`, and for
/// Flax and Haiku also just after the first `.`, so that a search finds keys without their
/// collection).
#[derive(Debug, Clone, Copy)]
pub struct NameRef {
    /// The file, an index into [`Table::parts`].
    pub part: u32,
    /// The tensor, an index into the part's entries.
    pub entry: u32,
    /// Where the searched text starts in the key.
    pub start: u32,
}

/// One file of the table, with the collections it holds (as [`crate::Part`] says).
#[derive(Debug, Clone, Copy)]
pub struct TablePart<'t> {
    /// The collections the file holds; `None` for all.
    pub collections: Option<&'t [&'t str]>,
    /// Whether its keys start with their collection.
    pub with_collection: bool,
    /// How many tensors it has.
    pub len: usize,
    /// Its tensors' names, sorted, one after another ([`tree::tensors`] lays out this and the
    /// next two).
    pub names: &'t str,
    /// Its tensors in that order, [`tree::TENSOR_BYTES`] bytes each: where the name ends in
    /// `names`, where the dimensions start in `dims`, the rank, the dtype's number ([`code`]).
    pub tensors: &'t [u8],
    /// The tensors' dimensions, eight bytes each, big-endian.
    pub dims: &'t [u8],
    /// Where its used flags start in the checker's flags.
    pub first: usize,
    /// The file's name, for messages about a checkpoint of several files.
    pub file: &'t str,
}

impl<'t> TablePart<'t> {
    /// The four-byte number `at` bytes into tensor `e`'s record.
    const fn record(&self, e: usize, at: usize) -> usize {
        be32(self.tensors, e * tree::TENSOR_BYTES + at) as usize
    }

    /// Where tensor `e`'s name starts and ends in [`TablePart::names`].
    const fn name_span(&self, e: usize) -> (usize, usize) {
        let start = if e == 0 { 0 } else { self.record(e - 1, 0) };
        (start, self.record(e, 0))
    }

    /// Tensor `e`'s name.
    pub const fn name(&self, e: usize) -> &'t str {
        let (start, end) = self.name_span(e);
        self.names.split_at(end).0.split_at(start).1
    }

    /// Tensor `e`'s rank.
    pub const fn rank(&self, e: usize) -> usize {
        self.record(e, 8)
    }

    /// Tensor `e`'s dtype's number ([`code`]).
    pub const fn code(&self, e: usize) -> u8 {
        self.tensors[e * tree::TENSOR_BYTES + 12]
    }

    /// Tensor `e`'s dtype.
    pub const fn dtype(&self, e: usize) -> Dtype {
        dtype_of(self.code(e))
    }

    /// Dimension `i` of tensor `e`'s shape.
    pub const fn dim(&self, e: usize, i: usize) -> usize {
        let at = (self.record(e, 4) + i) * 8;
        let high = be32(self.dims, at) as u64;
        let low = be32(self.dims, at + 4) as u64;
        // Dimensions are sizes of arrays in memory: they fit in usize where a header parses.
        (high << 32 | low) as usize
    }

    /// Tensor `e`'s shape.
    pub fn shape(&self, e: usize) -> Vec<usize> {
        (0..self.rank(e)).map(|i| self.dim(e, i)).collect()
    }
}

/// The files a value is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Table<'t> {
    /// The files.
    pub parts: &'t [TablePart<'t>],
    /// Every searchable name, sorted by text, as bytes ([`tree::lists`] lays them out): one
    /// literal, not a constant per name, is what keeps a pinned struct quick to compile. Only
    /// map entries search them.
    pub names: &'t [u8],
    /// The names' texts as a tree ([`tree::lists`] builds it), each text ending in the flag of
    /// its tensor and the number of the collection before it. The checker follows each key
    /// through it as the key is rendered: a key costs the steps of its last segment.
    pub tree: &'t [u8],
    /// The collections the tree's terms are numbered by ([`tree::Lists::collections`]).
    pub collections: &'t [&'t str],
}

/// What one finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// A key the value needs that the files do not have.
    Missing,
    /// A tensor of another rank than the leaf's.
    Rank {
        /// The leaf's rank.
        expected: usize,
        /// The tensor (part, entry).
        found: (u32, u32),
    },
    /// A tensor of another dtype than the leaf's.
    Dtype {
        /// The leaf's dtype.
        expected: Dtype,
        /// The file's.
        found: Dtype,
    },
    /// A key two leaves map to.
    Twice,
    /// A key deeper than [`MAX_DEPTH`](crate::key::MAX_DEPTH).
    TooDeep,
    /// A tensor where the value has a list or a map (part, entry, `true` for a list).
    NotAContainer(u32, u32, bool),
    /// A rendered key longer than [`MAX_KEY`].
    TooLong,
    /// A recursive type, or one without a kind: not checked without loading.
    Unchecked(&'static str),
    /// More map entries than the checker was lent room for.
    TooManyEntries,
}

/// A finding: what, and the key it is about (a span of the findings' text).
#[derive(Debug, Clone, Copy)]
pub struct Finding {
    /// What it is.
    pub what: What,
    /// Where its key starts in the text.
    pub start: usize,
    /// The key's length.
    pub len: usize,
}

/// A blank finding, to fill arrays of them with.
pub const FINDING: Finding = Finding {
    what: What::Missing,
    start: 0,
    len: 0,
};

/// The buffers a check writes into.
pub struct Out<'o, 't> {
    /// One flag per tensor of the table: read by the value.
    pub used: &'o mut [bool],
    /// Room for the map entries tried at one map.
    pub tried: &'o mut [&'t str],
    /// The findings.
    pub findings: &'o mut [Finding],
    /// The findings' keys.
    pub text: &'o mut [u8],
    /// Findings written.
    pub count: usize,
    /// Text written.
    pub text_len: usize,
    /// Whether a finding or its key did not fit.
    pub overflow: bool,
}

enum Presence {
    Absent,
    Present,
    Failed,
}

/// Walks a value's [`Kind`] against a [`Table`], as a strict load would read it.
pub struct Checker<'c, 'o, 't> {
    table: &'c Table<'t>,
    /// Map entries tried, in `out.tried[..tried]`: each map uses the room after its parents'.
    tried: usize,
    style: Style,
    convert_floats: bool,
    out: &'c mut Out<'o, 't>,
    path: Path<'t>,
    hits: usize,
    probing: usize,
    key: Buf,
    probe: Buf,
}

impl<'c, 'o, 't> Checker<'c, 'o, 't> {
    /// A checker of `table` in `style`, accepting any float dtype for a float leaf when
    /// `convert_floats`, writing into `out`.
    pub const fn new(
        table: &'c Table<'t>,
        style: Style,
        convert_floats: bool,
        out: &'c mut Out<'o, 't>,
    ) -> Self {
        Checker {
            table,
            tried: 0,
            style,
            convert_floats,
            out,
            path: Path::over(style, table.tree, table.collections),
            hits: 0,
            probing: 0,
            key: Buf::new(),
            probe: Buf::new(),
        }
    }

    /// Checks a value of `kind` from the root; the tensors it does not read stay unflagged in
    /// [`Out::used`].
    pub const fn run(&mut self, kind: &Kind) -> bool {
        self.walk(kind)
    }

    // ---- The walk: one function per kind, each the const twin of the `read` it mirrors.

    const fn walk(&mut self, kind: &Kind) -> bool {
        match kind {
            Kind::Leaf(leaf) => self.leaf(leaf),
            Kind::Struct(schema) => self.structure(schema),
            Kind::List(element) => {
                self.path.default_class(crate::params::LIST_CLASS);
                self.elements(element)
            }
            Kind::Array(n, element) => {
                self.path.default_class(crate::params::LIST_CLASS);
                let mut ok = true;
                let mut i = 0;
                while i < *n {
                    self.path.push(Name::Index(i));
                    ok &= self.walk(element);
                    self.path.pop();
                    i += 1;
                }
                ok
            }
            Kind::Optional(inner) => !matches!(self.optional(inner), Presence::Failed),
            Kind::Map(element) => {
                self.path.default_class(crate::params::MAP_CLASS);
                self.entries(element)
            }
            Kind::Empty => true,
            Kind::Recursive(_) => self.unchecked("is a recursive type"),
            Kind::Opaque => self.unchecked("implements `SafeParams` by hand, without a `KIND`"),
        }
    }

    const fn unchecked(&mut self, why: &'static str) -> bool {
        self.hits += 1;
        self.path.render_prefix(&mut self.key);
        self.finding(What::Unchecked(why));
        false
    }

    const fn structure(&mut self, schema: &StructSchema) -> bool {
        let saved = self
            .path
            .enter_node(schema.node.class, schema.node.collection);
        let mut ok = true;
        let mut shift: isize = 0;
        let mut i = 0;
        let fields = schema.fields.len();
        while i < fields {
            let field = &schema.fields[i];
            ok &= if field.flatten {
                self.flattened(field, &mut shift)
            } else if self.quick_leaf(field) {
                true
            } else {
                let position = field.info.position.wrapping_add_signed(shift);
                let saved = self.path.enter_field(field, position);
                let ok = if field.default {
                    !matches!(self.optional(field.kind), Presence::Failed)
                } else {
                    self.walk(field.kind)
                };
                self.path.leave_field(saved);
                ok
            };
            i += 1;
        }
        self.path.leave_node(saved);
        ok
    }

    const fn flattened(&mut self, field: &FieldSchema, shift: &mut isize) -> bool {
        let (len, element) = match field.kind {
            Kind::Array(n, element) => (Some(*n), *element),
            Kind::List(element) => (None, *element),
            other => (Some(1), other),
        };
        let mut ok = true;
        let mut taken = 0;
        loop {
            if let Some(n) = len
                && taken == n
            {
                break;
            }
            let position = field
                .info
                .position
                .wrapping_add_signed(*shift)
                .wrapping_add(taken);
            let saved = self.path.enter_field(field, position);
            let presence = match len {
                Some(_) => match self.walk(element) {
                    true => Presence::Present,
                    false => Presence::Failed,
                },
                None => self.optional(element),
            };
            self.path.leave_field(saved);
            match presence {
                Presence::Absent => break,
                Presence::Failed => ok = false,
                Presence::Present => {}
            }
            taken += 1;
        }
        *shift = shift.wrapping_add_unsigned(taken).wrapping_sub(1);
        ok
    }

    const fn leaf(&mut self, leaf: &LeafKind) -> bool {
        let Some((part, entry)) = self.take() else {
            return false;
        };
        let file = &self.table.parts[part];
        if let Some(rank) = leaf.rank
            && rank != file.rank(entry)
        {
            self.set_key(self.table.parts[part].with_collection);
            let found = (part as u32, entry as u32);
            self.finding(What::Rank {
                expected: rank,
                found,
            });
            return false;
        }
        if let Some(dtype) = leaf.dtype
            && !self.accepts(code(dtype), file.code(entry))
        {
            self.set_key(self.table.parts[part].with_collection);
            let what = What::Dtype {
                expected: dtype,
                found: file.dtype(entry),
            };
            self.finding(what);
            return false;
        }
        true
    }

    /// A leaf field (or an option of one) read the short way, when its key is there and fits:
    /// followed through the tree from its parent's cursor, without a push or a rendering, in
    /// few calls (const evaluation spends more on a call than on a dozen steps of a loop).
    /// `false` when anything is unusual or wrong, with nothing changed: the long way then reads
    /// the field, and reports. Most of a model's fields are leaves.
    const fn quick_leaf(&mut self, field: &FieldSchema) -> bool {
        let leaf = match field.kind {
            Kind::Leaf(leaf) | Kind::Optional(Kind::Leaf(leaf)) => leaf,
            _ => return false,
        };
        let Some(name) = field.info.name else {
            return false;
        };
        let (collection, number) = match field.info.collection {
            None => (self.path.collection, self.path.number),
            Some(c) => (Some(c), collection_number(self.table.collections, Some(c))),
        };
        // One file that holds every collection, or the first that holds this one.
        let part = match self.table.parts {
            [
                TablePart {
                    collections: None, ..
                },
            ] => 0,
            _ => match self.part_holding(collection) {
                Some(part) => part,
                None => return false,
            },
        };
        let name = name.as_bytes();
        let cursor = self.path.leaf_cursor(name, name.len(), collection);
        let Some(entry) = self.term(part, cursor, number) else {
            return false;
        };
        let file = &self.table.parts[part];
        let flag = file.first + entry;
        // A key the checker could not render: the long way reports it.
        let (start, end) = file.name_span(entry);
        if end - start > MAX_KEY {
            return false;
        }
        if let Some(rank) = leaf.rank
            && rank != file.rank(entry)
        {
            return false;
        }
        if let Some(dtype) = leaf.dtype
            && !self.accepts(code(dtype), file.code(entry))
        {
            return false;
        }
        if self.out.used[flag] {
            return false;
        }
        self.hits += 1;
        self.out.used[flag] = true;
        true
    }

    /// Whether a leaf of dtype number `leaf` reads a tensor of dtype number `file`.
    const fn accepts(&self, leaf: u8, file: u8) -> bool {
        leaf == file || (self.convert_floats && is_float(leaf) && is_float(file))
    }

    /// The tensor of the current path, flagged as read; a finding where there is none.
    const fn take(&mut self) -> Option<(usize, usize)> {
        let Some(first) = self.part_for() else {
            self.set_key(true);
            self.finding(What::Missing);
            return None;
        };
        if self.path.may_overflow() {
            self.set_key(self.table.parts[first].with_collection);
            if self.key.overflow {
                self.finding(What::TooLong);
                return None;
            }
        }
        // The key is rendered only for a finding.
        let Some((part, Some(entry))) = self.locate() else {
            self.set_key(self.table.parts[first].with_collection);
            self.finding(What::Missing);
            return None;
        };
        let with_collection = self.table.parts[part].with_collection;
        if self.path.too_deep() {
            self.hits += 1;
            self.set_key(with_collection);
            self.finding(What::TooDeep);
            return None;
        }
        let flag = self.table.parts[part].first + entry;
        if self.out.used[flag] && self.probing > 0 {
            self.set_key(with_collection);
            self.finding(What::Missing);
            return None;
        }
        self.hits += 1;
        if self.out.used[flag] {
            self.set_key(with_collection);
            self.finding(What::Twice);
            return None;
        }
        self.out.used[flag] = true;
        Some((part, entry))
    }

    const fn optional(&mut self, kind: &Kind) -> Presence {
        if !self.any_under() {
            return Presence::Absent;
        }
        self.read_found(kind)
    }

    const fn read_found(&mut self, kind: &Kind) -> Presence {
        if self.path.too_deep() {
            self.set_key(true);
            self.finding(What::TooDeep);
            self.hits += 1;
            return Presence::Failed;
        }
        let hits = self.hits;
        let (count, text_len, overflow) = (self.out.count, self.out.text_len, self.out.overflow);
        let ok = self.walk(kind);
        if self.hits == hits {
            self.out.count = count;
            self.out.text_len = text_len;
            self.out.overflow = overflow;
            return Presence::Absent;
        }
        match ok {
            true => Presence::Present,
            false => Presence::Failed,
        }
    }

    const fn elements(&mut self, element: &Kind) -> bool {
        let mut failed = false;
        let mut i = 0;
        loop {
            if !self.element_present(i) {
                if i == 0 {
                    self.explain_empty(true);
                }
                break;
            }
            self.path.push(Name::Index(i));
            let presence = self.read_found(element);
            self.path.pop();
            match presence {
                Presence::Absent => break,
                Presence::Failed => failed = true,
                Presence::Present => {}
            }
            i += 1;
        }
        !failed
    }

    /// Whether the table has a key under element `i` of the list at the current path, as
    /// [`crate::Reader`]'s index search finds them: a name that is the element's path, or goes
    /// on after it with a byte that is not a digit (element 1 is not the start of element 10); a
    /// Haiku-numbered list's element 0 is the list's own path, with nothing, `.` or `/` after.
    const fn element_present(&mut self, i: usize) -> bool {
        let numbering = self.path.last_numbering();
        let haiku = matches!(numbering, Numbering::Haiku) && !matches!(self.style, Style::Objax);
        self.path.push(Name::Index(i));
        let at = self.path.cursor();
        self.path.pop();
        let tree = self.table.tree;
        if haiku && i == 0 {
            return at.terms(tree).1 > 0
                || !at.feed(tree, b'.').is_dead()
                || !at.feed(tree, b'/').is_dead();
        }
        at.ends_or_goes_on_without_digit(tree)
    }

    const fn explain_empty(&mut self, list: bool) {
        if self.probing > 0 {
            return;
        }
        let Some(first) = self.part_for() else {
            return;
        };
        self.set_key(self.table.parts[first].with_collection);
        if !self.key.overflow
            && let Some((part, Some(entry))) = self.locate()
        {
            self.set_key(self.table.parts[part].with_collection);
            let flag = self.table.parts[part].first + entry;
            if !self.out.used[flag] {
                self.out.used[flag] = true;
                self.hits += 1;
                self.finding(What::NotAContainer(part as u32, entry as u32, list));
            }
        }
    }

    const fn entries(&mut self, element: &Kind) -> bool {
        (self.probe, self.key) = self.path.affixes();
        let (before_len, after_start) = (self.probe.len, self.key.len);
        let mut before = [0u8; MAX_KEY];
        let mut after = [0u8; MAX_KEY];
        copy(self.probe.as_bytes(), &mut before);
        let after_len = after_start;
        copy(self.key.as_bytes(), &mut after);
        let before = before.split_at(before_len).0;
        let after = after.split_at(after_len).0;
        let base = self.tried;
        let mut found = 0;
        let mut failed = false;
        self.probe.len = 0;
        self.probe.push_str_bytes(before);
        let mut at = self.seek_probe();
        let names = self.names_len();
        while at < names {
            let name = self.name_at(at);
            let full = self.name_str(name);
            let text = self.text(at);
            at += 1;
            if !starts_with(text, before) {
                break;
            }
            let rest = text.split_at(before.len()).1;
            let end = self.stop(rest);
            let child_bytes = rest.split_at(end).0;
            if self.is_used(name)
                || !starts_with(rest.split_at(end).1, after)
                || !valid_name(child_bytes)
            {
                continue;
            }
            let start = name.start as usize + before.len();
            let mut cut = 0;
            let mut candidates = 0;
            while cut <= end && candidates < MAX_ENTRY_CANDIDATES {
                let at = cut;
                cut += 1;
                let objax = matches!(self.style, Style::Objax);
                let whole = at == end;
                let split = !objax && at > 0 && !whole && child_bytes[at] == b'_';
                if !(whole || split) || !(objax || fits(element, child_bytes, at)) {
                    continue;
                }
                candidates += 1;
                let entry = substr(full, start, start + at);
                if contains(self.out.tried.split_at(self.tried).0, base, entry) {
                    continue;
                }
                if self.tried == self.out.tried.len() {
                    self.path.render_prefix(&mut self.key);
                    self.finding(What::TooManyEntries);
                    self.tried = base;
                    return false;
                }
                self.out.tried[self.tried] = entry;
                self.tried += 1;
                self.path.push(Name::Key(entry));
                self.probing += 1;
                let presence = self.optional(element);
                self.probing -= 1;
                self.path.pop();
                match presence {
                    Presence::Present => found += 1,
                    Presence::Failed => failed = true,
                    Presence::Absent => {}
                }
                if self.is_used(name) {
                    break;
                }
            }
        }
        self.tried = base;
        if found == 0 && !failed {
            self.explain_empty(false);
        }
        !failed
    }

    const fn stop(&self, rest: &[u8]) -> usize {
        let mut i = 0;
        while i < rest.len() {
            let b = rest[i];
            let stops = match self.style {
                Style::Flax => b == b'.',
                Style::Haiku => b == b'.' || b == b'/',
                Style::Objax => b == b']',
            };
            if stops {
                return i;
            }
            i += 1;
        }
        rest.len()
    }

    const fn set_key(&mut self, with_collection: bool) {
        self.path.render_key(with_collection, &mut self.key);
    }

    const fn part_for(&self) -> Option<usize> {
        self.part_holding(self.path.collection)
    }

    /// The first file that holds `collection`.
    const fn part_holding(&self, collection: Option<&str>) -> Option<usize> {
        let mut parts = self.table.parts;
        let mut i = 0;
        // A slice pattern, not `len()`: a call costs const evaluation a dozen steps.
        while let [part, rest @ ..] = parts {
            if holds(part, collection) {
                return Some(i);
            }
            parts = rest;
            i += 1;
        }
        None
    }

    /// The tensor of the current path: the first file holding its collection that has its key
    /// (a collection may be split over files, as over the shards of a checkpoint), and the
    /// entry; or, when none has it, the first file holding the collection, without an entry.
    /// `None` when no file holds the collection.
    const fn locate(&self) -> Option<(usize, Option<usize>)> {
        let Some(first) = self.part_for() else {
            return None;
        };
        let collection = self.path.collection;
        let mut part = first;
        let (_, mut parts) = self.table.parts.split_at(first);
        while let [file, rest @ ..] = parts {
            if holds(file, collection)
                && let Some(entry) = self.find(part)
            {
                return Some((part, Some(entry)));
            }
            parts = rest;
            part += 1;
        }
        Some((first, None))
    }

    // ---- The table: exact lookups and prefix searches.

    const fn name_str(&self, name: NameRef) -> &'t str {
        self.table.parts[name.part as usize].name(name.entry as usize)
    }

    const fn text(&self, at: usize) -> &'t [u8] {
        let name = self.name_at(at);
        self.name_str(name)
            .as_bytes()
            .split_at(name.start as usize)
            .1
    }

    const fn names_len(&self) -> usize {
        self.table.names.len() / 12
    }

    /// Name `at` of [`Table::names`].
    const fn name_at(&self, at: usize) -> NameRef {
        let (b, i) = (self.table.names, 12 * at);
        NameRef {
            part: be32(b, i),
            entry: be32(b, i + 4),
            start: be32(b, i + 8),
        }
    }

    const fn is_used(&self, name: NameRef) -> bool {
        self.out.used[self.table.parts[name.part as usize].first + name.entry as usize]
    }

    /// The first name whose text is not less than the probe.
    const fn seek_probe(&self) -> usize {
        let (mut lo, mut hi) = (0, self.names_len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if less(self.text(mid), self.probe.as_bytes()) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Whether the table has a name under the current path: one that starts with its rendering.
    const fn any_under(&mut self) -> bool {
        !self.path.cursor().is_dead()
    }

    /// The entry of `part` whose key is the current path's, found by the path's cursor: among
    /// the names whose text is the key's steps, the one of `part` in the path's collection.
    const fn find(&self, part: usize) -> Option<usize> {
        self.term(part, self.path.key_cursor(), self.path.number)
    }

    /// The entry of `part` whose key is the text at `cursor` (its steps) after the collection
    /// numbered `number` in [`Table::collections`] (for a key with one): among the names whose
    /// text that is, the one of `part` whose collection has that number (or that is all text,
    /// for a key without collection).
    const fn term(&self, part: usize, cursor: Cursor, number: usize) -> Option<usize> {
        let tree = self.table.tree;
        let file = &self.table.parts[part];
        let number = match (self.style, file.with_collection) {
            (Style::Flax | Style::Haiku, true) => number,
            _ => 0,
        };
        let (at, count) = cursor.terms(tree);
        let first = file.first;
        let mut i = 0;
        // The terms' numbers read in place: a call costs more than the shifts.
        while i < count {
            let t = at + 8 * i;
            i += 1;
            let found = (tree[t + 4] as usize) << 24
                | (tree[t + 5] as usize) << 16
                | (tree[t + 6] as usize) << 8
                | tree[t + 7] as usize;
            if found != number {
                continue;
            }
            let flag = (tree[t] as usize) << 24
                | (tree[t + 1] as usize) << 16
                | (tree[t + 2] as usize) << 8
                | tree[t + 3] as usize;
            if flag >= first && flag - first < file.len {
                return Some(flag - first);
            }
        }
        None
    }

    // ---- Findings.

    /// Records `what` about the key in `self.key`.
    const fn finding(&mut self, what: What) {
        let out = &mut *self.out;
        if out.count == out.findings.len() || out.text_len + self.key.len > out.text.len() {
            out.overflow = true;
            return;
        }
        let start = out.text_len;
        let key = self.key.as_bytes();
        let (to, _) = out.text.split_at_mut(start + key.len());
        to.split_at_mut(start).1.copy_from_slice(key);
        out.text_len += key.len();
        out.findings[out.count] = Finding {
            what,
            start,
            len: key.len(),
        };
        out.count += 1;
    }
}

/// Whether `part` holds `collection`.
const fn holds(part: &TablePart<'_>, collection: Option<&str>) -> bool {
    match (part.collections, collection) {
        (None, _) => true,
        (Some(list), Some(c)) => contains(list, 0, c),
        (Some(_), None) => false,
    }
}

/// The number of collection `c` in `collections` (sorted, [`Table::collections`]): 0 for none,
/// `usize::MAX` for one not there.
pub(crate) const fn collection_number(collections: &[&str], c: Option<&str>) -> usize {
    let Some(c) = c else {
        return 0;
    };
    let c = c.as_bytes();
    let (mut lo, mut hi) = (0, collections.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let here = collections[mid].as_bytes();
        if eq(here, c) {
            return mid + 1;
        }
        if less(here, c) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    usize::MAX
}

/// The big-endian `u32` at `at` of `bytes`.
const fn be32(bytes: &[u8], at: usize) -> u32 {
    (bytes[at] as u32) << 24
        | (bytes[at + 1] as u32) << 16
        | (bytes[at + 2] as u32) << 8
        | bytes[at + 3] as u32
}

/// Whether a map entry named `child[..cut]` could be a value of `kind`, given what follows it
/// (`SafeParams::entry_suffix`).
const fn fits(kind: &Kind, child: &[u8], cut: usize) -> bool {
    let rest = child.split_at(cut).1;
    suffix_fits(kind, rest)
}

const fn suffix_fits(kind: &Kind, rest: &[u8]) -> bool {
    match kind {
        Kind::List(element) | Kind::Array(_, element) => {
            if rest.is_empty() || rest[0] != b'_' {
                return false;
            }
            let mut digits = 1;
            while digits < rest.len() && rest[digits].is_ascii_digit() {
                digits += 1;
            }
            digits > 1 && suffix_fits(element, rest.split_at(digits).1)
        }
        Kind::Map(_) => rest.len() > 1 && rest[0] == b'_',
        Kind::Optional(inner) => suffix_fits(inner, rest),
        _ => rest.is_empty(),
    }
}

/// `check_name`, in const: not empty, no NUL, no reserved separator.
const fn valid_name(name: &[u8]) -> bool {
    if name.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            0 | b'.' | b'/' | b'(' | b')' | b'[' | b']' => return false,
            b':' if i + 1 < name.len() && name[i + 1] == b':' => return false,
            _ => {}
        }
        i += 1;
    }
    true
}

const fn copy(from: &[u8], to: &mut [u8; MAX_KEY]) {
    let mut i = 0;
    while i < from.len() && i < MAX_KEY {
        to[i] = from[i];
        i += 1;
    }
}

const fn substr(s: &str, start: usize, end: usize) -> &str {
    let (head, _) = s.as_bytes().split_at(end);
    let (_, bytes) = head.split_at(start);
    // Cut at a `_`, at a stop character or at the end: on a character boundary.
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => "",
    }
}

/// Whether `list[from..]` holds `s`.
const fn contains(list: &[&str], from: usize, s: &str) -> bool {
    let mut i = from;
    while i < list.len() {
        if eq(list[i].as_bytes(), s.as_bytes()) {
            return true;
        }
        i += 1;
    }
    false
}

const fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && starts_with(a, b)
}

/// Eight bytes of `bytes` from `at`, as a number that orders as the bytes do; `at + 8` must not
/// pass the end. Const code compares words, not bytes: evaluation time goes by steps.
const fn word(bytes: &[u8], at: usize) -> u64 {
    // Indexing, not `split_at` and `first_chunk`: in const evaluation each library call checks
    // its preconditions, many steps more than a bounds check.
    (bytes[at] as u64) << 56
        | (bytes[at + 1] as u64) << 48
        | (bytes[at + 2] as u64) << 40
        | (bytes[at + 3] as u64) << 32
        | (bytes[at + 4] as u64) << 24
        | (bytes[at + 5] as u64) << 16
        | (bytes[at + 6] as u64) << 8
        | bytes[at + 7] as u64
}

const fn starts_with(text: &[u8], prefix: &[u8]) -> bool {
    if text.len() < prefix.len() {
        return false;
    }
    let mut i = 0;
    while i + 8 <= prefix.len() {
        if word(text, i) != word(prefix, i) {
            return false;
        }
        i += 8;
    }
    while i < prefix.len() {
        if text[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn less(a: &[u8], b: &[u8]) -> bool {
    let n = if a.len() < b.len() { a.len() } else { b.len() };
    let mut i = 0;
    while i + 8 <= n {
        let (x, y) = (word(a, i), word(b, i));
        if x != y {
            return x < y;
        }
        i += 8;
    }
    while i < n {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// The room [`Out::tried`] needs for a value of `kind` against a table of `names` names: none
/// without a map.
pub const fn map_room(kind: &Kind, names: usize) -> usize {
    if has_map(kind) { 16 + 2 * names } else { 0 }
}

const fn has_map(kind: &Kind) -> bool {
    match kind {
        Kind::Map(_) => true,
        Kind::List(inner) | Kind::Array(_, inner) | Kind::Optional(inner) => has_map(inner),
        Kind::Struct(schema) => {
            let mut i = 0;
            while i < schema.fields.len() {
                if has_map(schema.fields[i].kind) {
                    return true;
                }
                i += 1;
            }
            false
        }
        Kind::Leaf(_) | Kind::Empty | Kind::Recursive(_) | Kind::Opaque => false,
    }
}

/// A number for each dtype, to compare them in const code: its place in [`tree::DTYPES`] plus
/// one.
pub const fn code(dtype: Dtype) -> u8 {
    match dtype {
        Dtype::BOOL => 1,
        Dtype::U8 => 2,
        Dtype::I8 => 3,
        Dtype::I16 => 4,
        Dtype::U16 => 5,
        Dtype::F16 => 6,
        Dtype::BF16 => 7,
        Dtype::I32 => 8,
        Dtype::U32 => 9,
        Dtype::F32 => 10,
        Dtype::F64 => 11,
        Dtype::I64 => 12,
        Dtype::U64 => 13,
        Dtype::F8_E5M2 => 14,
        Dtype::F8_E4M3 => 15,
        Dtype::F8_E8M0 => 16,
        Dtype::F4 => 17,
        Dtype::F6_E2M3 => 18,
        Dtype::F6_E3M2 => 19,
        Dtype::C64 => 20,
        Dtype::F8_E4M3FNUZ => 21,
        Dtype::F8_E5M2FNUZ => 22,
        _ => 0,
    }
}

/// Whether dtype number `code` is a float's that converts ([`crate::DtypePolicy`]).
const fn is_float(code: u8) -> bool {
    // F16, BF16, F32, F64.
    matches!(code, 6 | 7 | 10 | 11)
}

/// The dtype of number `code` ([`code`]); a table holds only the numbers of dtypes.
const fn dtype_of(code: u8) -> Dtype {
    match code {
        2 => Dtype::U8,
        3 => Dtype::I8,
        4 => Dtype::I16,
        5 => Dtype::U16,
        6 => Dtype::F16,
        7 => Dtype::BF16,
        8 => Dtype::I32,
        9 => Dtype::U32,
        10 => Dtype::F32,
        11 => Dtype::F64,
        12 => Dtype::I64,
        13 => Dtype::U64,
        14 => Dtype::F8_E5M2,
        15 => Dtype::F8_E4M3,
        16 => Dtype::F8_E8M0,
        17 => Dtype::F4,
        18 => Dtype::F6_E2M3,
        19 => Dtype::F6_E3M2,
        20 => Dtype::C64,
        21 => Dtype::F8_E4M3FNUZ,
        22 => Dtype::F8_E5M2FNUZ,
        _ => Dtype::BOOL,
    }
}

/// A dtype as a type name: the Rust element type where there is one (`f32`, `bf16`), else the
/// header's name (`F8_E4M3`).
pub const fn dtype_name(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::BOOL => "bool",
        Dtype::U8 => "u8",
        Dtype::I8 => "i8",
        Dtype::I16 => "i16",
        Dtype::U16 => "u16",
        Dtype::F16 => "f16",
        Dtype::BF16 => "bf16",
        Dtype::I32 => "i32",
        Dtype::U32 => "u32",
        Dtype::F32 => "f32",
        Dtype::F64 => "f64",
        Dtype::I64 => "i64",
        Dtype::U64 => "u64",
        Dtype::F8_E5M2 => "F8_E5M2",
        Dtype::F8_E4M3 => "F8_E4M3",
        Dtype::F8_E8M0 => "F8_E8M0",
        Dtype::F4 => "F4",
        Dtype::F6_E2M3 => "F6_E2M3",
        Dtype::F6_E3M2 => "F6_E3M2",
        Dtype::C64 => "C64",
        Dtype::F8_E4M3FNUZ => "F8_E4M3FNUZ",
        Dtype::F8_E5M2FNUZ => "F8_E5M2FNUZ",
        _ => "an unknown dtype",
    }
}
