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

use crate::Dtype;
use crate::key::{HaikuSep, MAX_DEPTH, Numbering};
use crate::reader::MAX_ENTRY_CANDIDATES;
use crate::schema::{FieldSchema, Kind, LeafKind, StructSchema};
use crate::style::{OBJAX_DEFAULT_KIND, Style};

/// The longest key the checker renders; a longer one is a finding of its own.
pub const MAX_KEY: usize = 2048;

/// One tensor of a file, as the header describes it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'t> {
    /// The key.
    pub name: &'t str,
    /// The dtype.
    pub dtype: Dtype,
    /// The shape.
    pub shape: &'t [usize],
}

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
    /// Its tensors, sorted by key.
    pub entries: &'t [Entry<'t>],
    /// Where its used flags start in the checker's flags.
    pub first: usize,
}

/// The files a value is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Table<'t> {
    /// The files.
    pub parts: &'t [TablePart<'t>],
    /// Every searchable name, sorted by text ([`names_order`] sorts them).
    pub names: &'t [NameRef],
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
    /// A key deeper than [`MAX_DEPTH`].
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

#[derive(Clone, Copy)]
enum Name<'t> {
    Field(&'static str),
    Position(usize),
    Index(usize),
    Key(&'t str),
    /// Where a child's name goes, in [`Checker::affixes`].
    Mark,
}

#[derive(Clone, Copy)]
struct Seg<'t> {
    name: Name<'t>,
    class: Option<&'static str>,
    sep: HaikuSep,
    numbering: Numbering,
}

impl Seg<'_> {
    const fn is_element(&self) -> bool {
        matches!(self.name, Name::Index(_) | Name::Key(_) | Name::Mark)
    }
}

const EMPTY_SEG: Seg<'static> = Seg {
    name: Name::Index(0),
    class: None,
    sep: HaikuSep::Constructor,
    numbering: Numbering::Index,
};

/// Room for the deepest path the checker follows, and the segments of its probes.
const MAX_SEGMENTS: usize = MAX_DEPTH + 4;

struct Saved {
    collection: Option<Option<&'static str>>,
    pinned: bool,
    set_class: bool,
    set_root: bool,
}

enum Presence {
    Absent,
    Present,
    Failed,
}

/// A rendered key, or prefix.
struct Buf {
    bytes: [u8; MAX_KEY],
    len: usize,
    overflow: bool,
}

impl Buf {
    const fn new() -> Self {
        Buf {
            bytes: [0; MAX_KEY],
            len: 0,
            overflow: false,
        }
    }

    const fn push(&mut self, b: u8) {
        if self.len < MAX_KEY {
            self.bytes[self.len] = b;
            self.len += 1;
        } else {
            self.overflow = true;
        }
    }

    const fn push_str(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            self.push(bytes[i]);
            i += 1;
        }
    }

    const fn push_usize(&mut self, n: usize) {
        let mut digits = [0u8; 20];
        let mut count = 0;
        let mut n = n;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while count > 0 {
            count -= 1;
            self.push(digits[count]);
        }
    }

    const fn as_bytes(&self) -> &[u8] {
        self.bytes.split_at(self.len).0
    }
}

/// Walks a value's [`Kind`] against a [`Table`], as a strict load would read it.
pub struct Checker<'c, 'o, 't> {
    table: &'c Table<'t>,
    /// Map entries tried, in `out.tried[..tried]`: each map uses the room after its parents'.
    tried: usize,
    style: Style,
    convert_floats: bool,
    out: &'c mut Out<'o, 't>,
    segs: [Seg<'t>; MAX_SEGMENTS],
    len: usize,
    root_class: Option<&'static str>,
    collection: Option<&'static str>,
    pinned: bool,
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
            segs: [EMPTY_SEG; MAX_SEGMENTS],
            len: 0,
            root_class: None,
            collection: None,
            pinned: false,
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
                self.default_class(crate::params::LIST_CLASS);
                self.elements(element)
            }
            Kind::Array(n, element) => {
                self.default_class(crate::params::LIST_CLASS);
                let mut ok = true;
                let mut i = 0;
                while i < *n {
                    self.push(Name::Index(i));
                    ok &= self.walk(element);
                    self.pop();
                    i += 1;
                }
                ok
            }
            Kind::Option(inner) => !matches!(self.optional(inner), Presence::Failed),
            Kind::Map(element) => {
                self.default_class(crate::params::MAP_CLASS);
                self.entries(element)
            }
            Kind::Empty => true,
            Kind::Recursive(_) => self.unchecked("is a recursive type"),
            Kind::Opaque => self.unchecked("implements `SafeParams` by hand, without a `KIND`"),
        }
    }

    const fn unchecked(&mut self, why: &'static str) -> bool {
        self.hits += 1;
        self.render_prefix(false);
        self.finding(What::Unchecked(why));
        false
    }

    const fn structure(&mut self, schema: &StructSchema) -> bool {
        let saved = self.enter_node(schema.node.class, schema.node.collection);
        let mut ok = true;
        let mut shift: isize = 0;
        let mut i = 0;
        while i < schema.fields.len() {
            let field = &schema.fields[i];
            ok &= if field.flatten {
                self.flattened(field, &mut shift)
            } else {
                let position = field.info.position.wrapping_add_signed(shift);
                let saved = self.enter_field(field, position);
                let ok = if field.default {
                    !matches!(self.optional(field.kind), Presence::Failed)
                } else {
                    self.walk(field.kind)
                };
                self.leave_field(saved);
                ok
            };
            i += 1;
        }
        self.leave_node(saved);
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
            let saved = self.enter_field(field, position);
            let presence = match len {
                Some(_) => match self.walk(element) {
                    true => Presence::Present,
                    false => Presence::Failed,
                },
                None => self.optional(element),
            };
            self.leave_field(saved);
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
        let tensor = &self.table.parts[part].entries[entry];
        if let Some(rank) = leaf.rank
            && rank != tensor.shape.len()
        {
            let found = (part as u32, entry as u32);
            self.finding(What::Rank { expected: rank, found });
            return false;
        }
        if let Some(dtype) = leaf.dtype
            && !self.accepts(dtype, tensor.dtype)
        {
            let what = What::Dtype {
                expected: dtype,
                found: tensor.dtype,
            };
            self.finding(what);
            return false;
        }
        true
    }

    const fn accepts(&self, leaf: Dtype, file: Dtype) -> bool {
        code(leaf) == code(file) || (self.convert_floats && is_float(leaf) && is_float(file))
    }

    /// The tensor of the current path, flagged as read; a finding where there is none.
    const fn take(&mut self) -> Option<(usize, usize)> {
        let Some(part) = self.part_for() else {
            self.render_key(true);
            self.finding(What::Missing);
            return None;
        };
        let with_collection = self.table.parts[part].with_collection;
        self.render_key(with_collection);
        if self.key.overflow {
            self.finding(What::TooLong);
            return None;
        }
        let Some(entry) = self.find(part) else {
            self.finding(What::Missing);
            return None;
        };
        if self.len > MAX_DEPTH {
            self.hits += 1;
            self.finding(What::TooDeep);
            return None;
        }
        let flag = self.table.parts[part].first + entry;
        if self.out.used[flag] && self.probing > 0 {
            self.finding(What::Missing);
            return None;
        }
        self.hits += 1;
        if self.out.used[flag] {
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
        if self.len > MAX_DEPTH {
            self.render_key(true);
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
                break;
            }
            self.push(Name::Index(i));
            let presence = self.read_found(element);
            self.pop();
            match presence {
                Presence::Absent => break,
                Presence::Failed => failed = true,
                Presence::Present => {}
            }
            i += 1;
        }
        if i == 0 {
            self.explain_empty(true);
        }
        !failed
    }

    /// Whether the table has a key under element `i` of the list at the current path, as
    /// [`crate::Reader`]'s index search finds them.
    const fn element_present(&mut self, i: usize) -> bool {
        let numbering = match self.len {
            0 => Numbering::Index,
            n => self.segs[n - 1].numbering,
        };
        let haiku = matches!(numbering, Numbering::Haiku) && !matches!(self.style, Style::Objax);
        if haiku && i == 0 {
            self.push(Name::Index(0));
            self.render_prefix(true);
            self.pop();
            return self.exact_or_under(&[b'.', b'/']);
        }
        self.push(Name::Index(i));
        self.render_prefix(true);
        self.pop();
        // Element `i` of a Haiku-numbered list renders as `name_<i>`, as the search expects.
        self.under_index()
    }

    /// A name that is the probe, or starts with it and then one of `next`.
    const fn exact_or_under(&mut self, next: &[u8]) -> bool {
        let at = self.seek_probe();
        if at < self.table.names.len() && eq(self.text(at), self.probe.as_bytes()) {
            return true;
        }
        let mut i = 0;
        while i < next.len() {
            self.probe.push(next[i]);
            let at = self.seek_probe();
            let found =
                at < self.table.names.len() && starts_with(self.text(at), self.probe.as_bytes());
            self.probe.len -= 1;
            if found {
                return true;
            }
            i += 1;
        }
        false
    }

    /// A name that starts with the probe (a prefix ending in an index) and does not go on with
    /// another digit.
    const fn under_index(&mut self) -> bool {
        let at = self.seek_probe();
        if at < self.table.names.len() {
            let text = self.text(at);
            if starts_with(text, self.probe.as_bytes())
                && (text.len() == self.probe.len || text[self.probe.len] < b'0')
            {
                return true;
            }
        }
        // Past the names that go on with a digit: `:` follows `9`.
        self.probe.push(b':');
        let at = self.seek_probe();
        self.probe.len -= 1;
        at < self.table.names.len() && starts_with(self.text(at), self.probe.as_bytes())
    }

    const fn explain_empty(&mut self, list: bool) {
        if self.probing > 0 {
            return;
        }
        let Some(part) = self.part_for() else {
            return;
        };
        self.render_key(self.table.parts[part].with_collection);
        if let Some(entry) = self.find(part) {
            let flag = self.table.parts[part].first + entry;
            if !self.out.used[flag] {
                self.out.used[flag] = true;
                self.hits += 1;
                self.finding(What::NotAContainer(part as u32, entry as u32, list));
            }
        }
    }

    const fn entries(&mut self, element: &Kind) -> bool {
        self.affixes();
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
        while at < self.table.names.len() {
            let name = self.table.names[at];
            let full = self.name_str(name);
            at += 1;
            let text = full.as_bytes();
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
                    self.render_prefix(false);
                    self.finding(What::TooManyEntries);
                    self.tried = base;
                    return false;
                }
                self.out.tried[self.tried] = entry;
                self.tried += 1;
                self.push(Name::Key(entry));
                self.probing += 1;
                let presence = self.optional(element);
                self.probing -= 1;
                self.pop();
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

    // ---- The key path: the const twin of `KeyPath`'s fields and nodes.

    const fn push(&mut self, name: Name<'t>) {
        if self.len < MAX_SEGMENTS {
            self.segs[self.len] = Seg {
                name,
                class: None,
                sep: HaikuSep::Constructor,
                numbering: Numbering::Index,
            };
        }
        self.len += 1;
    }

    const fn pop(&mut self) {
        self.len -= 1;
    }

    const fn default_class(&mut self, class: &'static str) -> bool {
        if self.len > 0 {
            let last = self.len - 1;
            if last < MAX_SEGMENTS && self.segs[last].class.is_none() {
                self.segs[last].class = Some(class);
                return true;
            }
            false
        } else if self.root_class.is_none() {
            self.root_class = Some(class);
            true
        } else {
            false
        }
    }

    const fn enter_field(&mut self, field: &FieldSchema, position: usize) -> Saved {
        let info = &field.info;
        let name = match info.name {
            Some(name) => Name::Field(name),
            None => Name::Position(position),
        };
        self.push(name);
        if self.len <= MAX_SEGMENTS {
            let seg = &mut self.segs[self.len - 1];
            seg.class = info.class;
            seg.sep = info.sep;
            seg.numbering = info.numbering;
        }
        let saved = Saved {
            collection: match info.collection {
                Some(c) => Some(self.collection.replace(c)),
                None => None,
            },
            pinned: self.pinned,
            set_class: false,
            set_root: false,
        };
        self.pinned = info.collection.is_some();
        saved
    }

    const fn leave_field(&mut self, saved: Saved) {
        self.pop();
        self.restore(saved);
    }

    const fn enter_node(&mut self, class: &'static str, collection: Option<&'static str>) -> Saved {
        let root = self.len == 0;
        let set = self.default_class(class);
        let pinned = self.pinned;
        let collection = match collection {
            Some(c) if !pinned => Some(self.collection.replace(c)),
            _ => None,
        };
        self.pinned = false;
        Saved {
            collection,
            pinned,
            set_class: set && !root,
            set_root: set && root,
        }
    }

    const fn leave_node(&mut self, saved: Saved) {
        if saved.set_root {
            self.root_class = None;
        } else if saved.set_class && self.len > 0 && self.len <= MAX_SEGMENTS {
            self.segs[self.len - 1].class = None;
        }
        self.restore(saved);
    }

    const fn restore(&mut self, saved: Saved) {
        if let Some(previous) = saved.collection {
            self.collection = previous;
        }
        self.pinned = saved.pinned;
    }

    const fn part_for(&self) -> Option<usize> {
        let mut i = 0;
        while i < self.table.parts.len() {
            let holds = match (self.table.parts[i].collections, self.collection) {
                (None, _) => true,
                (Some(list), Some(c)) => contains(list, 0, c),
                (Some(_), None) => false,
            };
            if holds {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    // ---- Rendering: the const twin of `Style::render`, `Style::prefix` and `child_affixes`.

    /// The current path's key, into `self.key`.
    const fn render_key(&mut self, with_collection: bool) {
        let mut out = Buf::new();
        match self.style {
            Style::Objax => {
                self.render_objax(&mut out);
                out.push_str("::");
                match self.collection {
                    Some(c) => out.push_str(c),
                    None => out.push_str(OBJAX_DEFAULT_KIND),
                }
            }
            _ => {
                if with_collection && let Some(c) = self.collection {
                    out.push_str(c);
                    out.push(b'.');
                }
                self.render_steps(&mut out, false);
            }
        }
        self.key = out;
    }

    /// The current path as a prefix (every step a module), into `self.probe`; into `self.key`
    /// as well when `key` is false (for a finding about the path itself).
    const fn render_prefix(&mut self, probe: bool) {
        let mut out = Buf::new();
        match self.style {
            Style::Objax => self.render_objax(&mut out),
            _ => self.render_steps(&mut out, true),
        };
        if probe {
            self.probe = out;
        } else {
            self.key = out;
        }
    }

    /// A map's child affixes: the text before and after a child's name, into `self.probe` and
    /// `self.key`.
    const fn affixes(&mut self) {
        self.push(Name::Mark);
        let mut out = Buf::new();
        let mark = match self.style {
            Style::Objax => self.render_objax(&mut out),
            _ => self.render_steps(&mut out, false),
        };
        self.pop();
        let (before, after) = out.as_bytes().split_at(mark);
        let mut probe = Buf::new();
        probe.push_str_bytes(before);
        let mut key = Buf::new();
        key.push_str_bytes(after);
        self.probe = probe;
        self.key = key;
    }

    /// Renders the segments as [`Style::render_steps`] does; returns where a [`Name::Mark`] went.
    const fn render_steps(&self, out: &mut Buf, all_modules: bool) -> usize {
        let n = if self.len < MAX_SEGMENTS {
            self.len
        } else {
            MAX_SEGMENTS
        };
        let segs = self.segs.split_at(n).0;
        // The parameter name is the last step that is not joined to the one before.
        let mut last_module = 0;
        let mut i = 0;
        while i < n {
            if !joined(segs, i) {
                last_module = i;
            }
            i += 1;
        }
        let start = out.len;
        let mut mark = out.len;
        let mut i = 0;
        while i < n {
            let seg = &segs[i];
            let element = joined(segs, i);
            if element
                && matches!(numbering(segs, i), Numbering::Haiku)
                && matches!(seg.name, Name::Index(0))
            {
                i += 1;
                continue;
            }
            if element && out.len > start {
                out.push(b'_');
            } else if out.len > start {
                let leaf = !all_modules && i >= last_module;
                let sep = if i > 0 && seg.is_element() {
                    segs[i - 1].sep
                } else {
                    seg.sep
                };
                match self.style {
                    Style::Haiku if !leaf => out.push_str(sep.as_str()),
                    _ => out.push(b'.'),
                }
            }
            if matches!(seg.name, Name::Mark) {
                mark = out.len;
            }
            push_name(seg.name, out);
            i += 1;
        }
        mark
    }

    const fn render_objax(&self, out: &mut Buf) -> usize {
        if let Some(class) = self.root_class {
            out.push(b'(');
            out.push_str(class);
            out.push(b')');
        }
        let n = if self.len < MAX_SEGMENTS {
            self.len
        } else {
            MAX_SEGMENTS
        };
        let mut mark = out.len;
        let mut i = 0;
        while i < n {
            let seg = &self.segs[i];
            match seg.name {
                Name::Field(name) => {
                    out.push(b'.');
                    out.push_str(name);
                }
                name => {
                    out.push(b'[');
                    if matches!(name, Name::Mark) {
                        mark = out.len;
                    }
                    match name {
                        Name::Position(i) | Name::Index(i) => out.push_usize(i),
                        Name::Key(key) => out.push_str(key),
                        Name::Field(_) | Name::Mark => {}
                    }
                    out.push(b']');
                }
            }
            if i + 1 < n
                && let Some(class) = seg.class
            {
                out.push(b'(');
                out.push_str(class);
                out.push(b')');
            }
            i += 1;
        }
        mark
    }

    // ---- The table: exact lookups and prefix searches.

    const fn name_str(&self, name: NameRef) -> &'t str {
        let entry = &self.table.parts[name.part as usize].entries[name.entry as usize];
        entry.name
    }

    const fn text(&self, at: usize) -> &'t [u8] {
        let name = self.table.names[at];
        self.name_str(name)
            .as_bytes()
            .split_at(name.start as usize)
            .1
    }

    const fn is_used(&self, name: NameRef) -> bool {
        self.out.used[self.table.parts[name.part as usize].first + name.entry as usize]
    }

    /// The first name whose text is not less than the probe.
    const fn seek_probe(&self) -> usize {
        let (mut lo, mut hi) = (0, self.table.names.len());
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

    /// Whether the table has a name under the current path.
    const fn any_under(&mut self) -> bool {
        self.render_prefix(true);
        let at = self.seek_probe();
        at < self.table.names.len() && starts_with(self.text(at), self.probe.as_bytes())
    }

    /// The entry of `part` whose key is `self.key`.
    const fn find(&self, part: usize) -> Option<usize> {
        let entries = self.table.parts[part].entries;
        let key = self.key.as_bytes();
        let (mut lo, mut hi) = (0, entries.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if less(entries[mid].name.as_bytes(), key) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo < entries.len() && eq(entries[lo].name.as_bytes(), key) {
            Some(lo)
        } else {
            None
        }
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
        let mut i = 0;
        while i < key.len() {
            out.text[start + i] = key[i];
            i += 1;
        }
        out.text_len += key.len();
        out.findings[out.count] = Finding {
            what,
            start,
            len: key.len(),
        };
        out.count += 1;
    }
}

impl Buf {
    const fn push_str_bytes(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            self.push(bytes[i]);
            i += 1;
        }
    }
}

const fn numbering(segs: &[Seg<'_>], i: usize) -> Numbering {
    if i > 0 && segs[i].is_element() {
        segs[i - 1].numbering
    } else {
        Numbering::Index
    }
}

const fn joined(segs: &[Seg<'_>], i: usize) -> bool {
    segs[i].is_element() && !matches!(numbering(segs, i), Numbering::Nested)
}

const fn push_name(name: Name<'_>, out: &mut Buf) {
    match name {
        Name::Field(name) => out.push_str(name),
        Name::Key(key) => out.push_str(key),
        Name::Position(i) => {
            out.push_str("layers_");
            out.push_usize(i);
        }
        Name::Index(i) => out.push_usize(i),
        Name::Mark => {}
    }
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
        Kind::Option(inner) => suffix_fits(inner, rest),
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
    if a.len() != b.len() {
        return false;
    }
    starts_with(a, b)
}

const fn starts_with(text: &[u8], prefix: &[u8]) -> bool {
    if text.len() < prefix.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if text[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn less(a: &[u8], b: &[u8]) -> bool {
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// A number for each dtype, to compare them in const code.
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

const fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
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

// ---- The two users of the checker: `Loader::check` at run time, `expect` at compile time.

/// The searchable names of `parts` in sorted order, as [`Table::names`] wants them.
pub fn names_order(parts: &[TablePart<'_>], style: Style) -> Vec<NameRef> {
    let mut names = Vec::new();
    for (part, file) in parts.iter().enumerate() {
        for (entry, tensor) in file.entries.iter().enumerate() {
            // A header is at most `MAX_HEADER_LEN` bytes: its counts and offsets fit in u32.
            let name = |start: usize| NameRef {
                part: part as u32,
                entry: entry as u32,
                start: start as u32,
            };
            names.push(name(0));
            if style != Style::Objax
                && let Some(dot) = tensor.name.find('.')
            {
                names.push(name(dot + 1));
            }
        }
    }
    let text = |n: &NameRef| &parts[n.part as usize].entries[n.entry as usize].name[n.start as usize..];
    names.sort_by(|a, b| text(a).cmp(text(b)));
    names
}

/// What a strict load of a value of `kind` from these headers would report about names, dtypes
/// and ranks, and the keys ignored under `allow_unexpected`.
pub(crate) fn check_headers(
    kind: &Kind,
    style: Style,
    policy: crate::DtypePolicy,
    leniency: (bool, bool),
    files: &[(&crate::reader::PartSpec, &crate::format::FileHeader<'_>)],
) -> (crate::LoadReport, Vec<String>) {
    let (allow_unexpected, allow_missing) = leniency;
    let collections: Vec<Option<Vec<&str>>> = files
        .iter()
        .map(|(spec, _)| {
            spec.collections
                .as_ref()
                .map(|list| list.iter().map(String::as_str).collect())
        })
        .collect();
    let entries: Vec<Vec<Entry<'_>>> = files
        .iter()
        .map(|(_, header)| {
            let mut entries: Vec<Entry<'_>> = (0..header.len())
                .map(|i| {
                    let (name, dtype, shape) = header.tensor(i);
                    Entry { name, dtype, shape }
                })
                .collect();
            entries.sort_by(|a, b| a.name.cmp(b.name));
            entries
        })
        .collect();
    let mut first = 0;
    let parts: Vec<TablePart<'_>> = files
        .iter()
        .zip(&collections)
        .zip(&entries)
        .map(|(((spec, _), collections), entries)| {
            let part = TablePart {
                collections: collections.as_deref(),
                with_collection: spec.with_collection,
                entries,
                first,
            };
            first += entries.len();
            part
        })
        .collect();
    let names = names_order(&parts, style);
    let table = Table {
        parts: &parts,
        names: &names,
    };
    let mut room = 64 + names.len();
    loop {
        let mut used = vec![false; first];
        let mut tried = vec![""; room];
        let mut findings = vec![FINDING; room];
        let mut text = vec![0u8; room * 64];
        let mut out = Out {
            used: &mut used,
            tried: &mut tried,
            findings: &mut findings,
            text: &mut text,
            count: 0,
            text_len: 0,
            overflow: false,
        };
        let convert = policy == crate::DtypePolicy::ConvertFloats;
        Checker::new(&table, style, convert, &mut out).run(kind);
        let too_many = out.findings[..out.count]
            .iter()
            .any(|f| f.what == What::TooManyEntries);
        if out.overflow || too_many {
            room *= 4;
            continue;
        }
        let count = out.count;
        let mut report = crate::LoadReport::default();
        for finding in &findings[..count] {
            let key = String::from_utf8_lossy(&text[finding.start..][..finding.len]).into_owned();
            record(&mut report, &table, key, finding.what);
        }
        if allow_missing {
            report.missing.clear();
        }
        let mut unused = Vec::new();
        for part in &parts {
            for (i, entry) in part.entries.iter().enumerate() {
                if !used[part.first + i] {
                    unused.push(entry.name.to_owned());
                }
            }
        }
        if allow_unexpected {
            return (report, unused);
        }
        report.unexpected.extend(unused);
        return (report, Vec::new());
    }
}

fn record(report: &mut crate::LoadReport, table: &Table<'_>, key: String, what: What) {
    use crate::error::{DtypeMismatch, ExpectedShape, KeyProblem, ShapeMismatch};
    let tensor = |(part, entry): (u32, u32)| &table.parts[part as usize].entries[entry as usize];
    let invalid = |report: &mut crate::LoadReport, key, reason: String| {
        report.invalid.push(KeyProblem { key, reason });
    };
    match what {
        What::Missing => report.missing.push(key),
        What::Rank { expected, found } => report.shape_mismatches.push(ShapeMismatch {
            key,
            expected: ExpectedShape::Rank(expected),
            found: tensor(found).shape.to_vec(),
        }),
        What::Dtype { expected, found } => report.dtype_mismatches.push(DtypeMismatch {
            key,
            expected,
            found,
        }),
        What::Twice => invalid(report, key, "two parts of the value map to this key".into()),
        What::TooDeep => invalid(report, key, crate::key::depth_reason()),
        What::NotAContainer(part, entry, list) => {
            let tensor = tensor((part, entry));
            let what = if list { "list" } else { "map" };
            let reason = format!(
                "is a tensor in the file, but the field here is a {what}: did you mean `{}`?",
                crate::reader::rust_type(tensor.dtype, tensor.shape.len())
            );
            invalid(report, key, reason);
        }
        What::TooLong => invalid(
            report,
            key,
            format!("is longer than {MAX_KEY} bytes, the longest key a header check renders"),
        ),
        What::Unchecked(why) => invalid(
            report,
            key,
            format!("{why}: its keys cannot be checked without loading"),
        ),
        What::TooManyEntries => invalid(report, key, "has too many map entries".into()),
    }
}

/// A compile-time report: the text of `expect`'s error, built without allocation.
pub struct Message {
    bytes: [u8; MESSAGE_LEN],
    len: usize,
}

const MESSAGE_LEN: usize = 16 * 1024;

/// How many lines of findings a compile error shows.
const MESSAGE_LINES: usize = 64;

impl Message {
    const fn push(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() && self.len < MESSAGE_LEN - 64 {
            self.bytes[self.len] = bytes[i];
            self.len += 1;
            i += 1;
        }
    }

    const fn push_bytes(&mut self, bytes: &[u8]) {
        match core::str::from_utf8(bytes) {
            Ok(s) => self.push(s),
            Err(_) => self.push("(not UTF-8)"),
        }
    }

    const fn push_usize(&mut self, n: usize) {
        let mut buf = Buf::new();
        buf.push_usize(n);
        self.push_bytes(buf.as_bytes());
    }

    const fn push_shape(&mut self, shape: &[usize]) {
        self.push("[");
        let mut i = 0;
        while i < shape.len() {
            if i > 0 {
                self.push(", ");
            }
            self.push_usize(shape[i]);
            i += 1;
        }
        self.push("]");
    }

    /// The text.
    pub const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.bytes.split_at(self.len).0) {
            Ok(s) => s,
            Err(_) => "safejax: the report is not UTF-8",
        }
    }
}

/// Checks a value of `kind` against `table` strictly, and describes every problem: the error
/// `#[safejax(expect = "...")]` gives; `None` when the value loads the files.
pub const fn expect_message<'t>(
    kind: &Kind,
    table: &Table<'t>,
    style: Style,
    out: &mut Out<'_, 't>,
    what: &str,
) -> Option<Message> {
    Checker::new(table, style, false, out).run(kind);
    let mut unused = 0;
    let mut i = 0;
    while i < out.used.len() {
        if !out.used[i] {
            unused += 1;
        }
        i += 1;
    }
    if out.count == 0 && unused == 0 && !out.overflow {
        return None;
    }
    let mut m = Message {
        bytes: [0; MESSAGE_LEN],
        len: 0,
    };
    m.push(what);
    m.push(" (");
    m.push(style_name(style));
    m.push(" style):");
    let mut lines = 0;
    let mut i = 0;
    while i < out.count && lines < MESSAGE_LINES {
        let finding = out.findings[i];
        let key = out.text.split_at(finding.start + finding.len).0;
        let key = key.split_at(finding.start).1;
        m.push("\n  ");
        match finding.what {
            What::Missing => m.push("missing from the file: "),
            What::Rank { .. } => m.push("rank differs: "),
            What::Dtype { .. } => m.push("dtype differs: "),
            _ => m.push("cannot be read: "),
        }
        m.push_bytes(key);
        match finding.what {
            What::Rank { expected, found } => {
                let tensor = &table.parts[found.0 as usize].entries[found.1 as usize];
                m.push(" (the field has rank ");
                m.push_usize(expected);
                m.push(", the file shape ");
                m.push_shape(tensor.shape);
                m.push(")");
            }
            What::Dtype { expected, found } => {
                m.push(" (the field is ");
                m.push(dtype_name(expected));
                m.push(", the file ");
                m.push(dtype_name(found));
                m.push(")");
            }
            What::Twice => m.push(" (two parts of the value map to this key)"),
            What::TooDeep => m.push(" (nested too deep)"),
            What::NotAContainer(part, entry, list) => {
                let tensor = &table.parts[part as usize].entries[entry as usize];
                m.push(" (a ");
                m.push(dtype_name(tensor.dtype));
                m.push(" tensor of shape ");
                m.push_shape(tensor.shape);
                m.push(" in the file, where the field is a ");
                m.push(if list { "list)" } else { "map)" });
            }
            What::TooLong => m.push(" (a key longer than the checker renders)"),
            What::Unchecked(why) => {
                m.push(" (");
                m.push(why);
                m.push(": `expect` cannot check it; check at run time with `Loader::check`)");
            }
            What::TooManyEntries => m.push(" (a map with more entries than `expect` checks)"),
            What::Missing => {}
        }
        lines += 1;
        i += 1;
    }
    let mut p = 0;
    while p < table.parts.len() {
        let part = &table.parts[p];
        let mut e = 0;
        while e < part.entries.len() {
            if !out.used[part.first + e] {
                if lines < MESSAGE_LINES {
                    m.push("\n  not read by the struct: ");
                    m.push(part.entries[e].name);
                }
                lines += 1;
            }
            e += 1;
        }
        p += 1;
    }
    let total = out.count + unused;
    if total > MESSAGE_LINES {
        m.push("\n  ... and ");
        m.push_usize(total - MESSAGE_LINES);
        m.push(" more");
    }
    if out.overflow {
        m.push("\n  ... and more problems than the compiler was given room for");
    }
    Some(m)
}

const fn style_name(style: Style) -> &'static str {
    match style {
        Style::Flax => "flax",
        Style::Haiku => "haiku",
        Style::Objax => "objax",
    }
}
