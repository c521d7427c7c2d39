//! The checker's key path, and its rendering: the const twin of [`crate::KeyPath`] and of
//! [`Style::render`], [`Style::prefix`] and `child_affixes`. A path may hold wildcards (any index,
//! any map key), rendered as bytes no key contains, so that the collision check compares the
//! patterns of two fields.

use super::collection_number;
use crate::key::{HaikuSep, MAX_DEPTH, Numbering};
use crate::schema::FieldSchema;
use crate::style::{OBJAX_DEFAULT_KIND, Style};

/// The longest key the checker renders; a longer one is a finding of its own.
pub const MAX_KEY: usize = 2048;

/// In a pattern: one or more digits, without a leading zero (a list index).
pub(crate) const ANY_DIGITS: u8 = 1;
/// In a pattern: nothing, or `_` and digits (a Haiku-numbered list's element).
pub(crate) const ANY_HAIKU_SUFFIX: u8 = 2;
/// In a pattern: one or more characters that are not a separator (a map key).
pub(crate) const ANY_NAME: u8 = 3;

#[derive(Clone, Copy)]
pub(crate) enum Name<'t> {
    Field(&'static str),
    Position(usize),
    Index(usize),
    Key(&'t str),
    /// Where a child's name goes, in [`Path::affixes`].
    Mark,
    /// Any list index (a pattern, for the collision check).
    AnyIndex,
    /// Any map key (a pattern).
    AnyKey,
    /// Any position of a flattened list's elements (a pattern).
    AnyPosition,
}

#[derive(Clone, Copy)]
pub(crate) struct Seg<'t> {
    pub(crate) name: Name<'t>,
    pub(crate) class: Option<&'static str>,
    pub(crate) sep: HaikuSep,
    pub(crate) numbering: Numbering,
}

impl Seg<'_> {
    const fn is_element(&self) -> bool {
        matches!(
            self.name,
            Name::Index(_) | Name::Key(_) | Name::Mark | Name::AnyIndex | Name::AnyKey
        )
    }
}

const EMPTY_SEG: Seg<'static> = Seg {
    name: Name::Index(0),
    class: None,
    sep: HaikuSep::Constructor,
    numbering: Numbering::Index,
};

/// Room for the deepest path the checker follows, and the segments of its probes.
pub(crate) const MAX_SEGMENTS: usize = MAX_DEPTH + 4;

pub(crate) struct Saved {
    collection: Option<Option<&'static str>>,
    number: usize,
    pinned: bool,
    set_class: bool,
    set_root: bool,
}

/// A rendered key, or prefix.
pub(crate) struct Buf {
    pub(crate) bytes: [u8; MAX_KEY],
    pub(crate) len: usize,
    pub(crate) overflow: bool,
}

impl Buf {
    pub(crate) const fn new() -> Self {
        Buf {
            bytes: [0; MAX_KEY],
            len: 0,
            overflow: false,
        }
    }

    pub(crate) const fn push(&mut self, b: u8) {
        if self.len < MAX_KEY {
            self.bytes[self.len] = b;
            self.len += 1;
        } else {
            self.overflow = true;
        }
    }

    pub(crate) const fn push_str(&mut self, s: &str) {
        self.push_str_bytes(s.as_bytes());
    }

    pub(crate) const fn push_usize(&mut self, n: usize) {
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

    pub(crate) const fn as_bytes(&self) -> &[u8] {
        self.bytes.split_at(self.len).0
    }

    /// Empty again, without zeroing the bytes.
    pub(crate) const fn clear(&mut self) {
        self.len = 0;
        self.overflow = false;
    }

    pub(crate) const fn push_str_bytes(&mut self, bytes: &[u8]) {
        let room = MAX_KEY - self.len;
        let n = if bytes.len() <= room {
            bytes.len()
        } else {
            self.overflow = true;
            room
        };
        // A short piece byte by byte; a long one in one copy. In const evaluation a library
        // call checks its preconditions, which costs as much as a few dozen bytes of a loop.
        if n <= 48 {
            let mut i = 0;
            while i < n {
                self.bytes[self.len + i] = bytes[i];
                i += 1;
            }
        } else {
            let (to, _) = self.bytes.split_at_mut(self.len + n);
            let (_, to) = to.split_at_mut(self.len);
            to.copy_from_slice(bytes.split_at(n).0);
        }
        self.len += n;
    }
}

/// Where a rendering stands in a table's key tree ([`super::tree`]): a node, and how many bytes
/// of its label the rendering has matched. Dead once no name of the table goes on as the
/// rendering does.
#[derive(Clone, Copy)]
pub(crate) struct Cursor {
    node: usize,
    pos: usize,
}

impl Cursor {
    /// The empty rendering: the root.
    pub(crate) const ROOT: Cursor = Cursor { node: 0, pos: 0 };
    pub(crate) const DEAD: Cursor = Cursor {
        node: usize::MAX,
        pos: 0,
    };

    pub(crate) const fn is_dead(self) -> bool {
        self.node == usize::MAX
    }

    /// The cursor after one more byte.
    pub(crate) const fn feed(self, tree: &[u8], b: u8) -> Cursor {
        self.feed_range(tree, &[b], 0, 1)
    }

    /// The cursor after `bytes[from..to]`. Const evaluation goes by steps, and a call costs
    /// many: one loop, a comparison a byte inside a label, a scan of the children's first bytes
    /// at a label's end.
    pub(crate) const fn feed_range(
        self,
        tree: &[u8],
        bytes: &[u8],
        from: usize,
        to: usize,
    ) -> Cursor {
        if self.node == usize::MAX {
            return self;
        }
        let (mut node, mut pos) = (self.node, self.pos);
        let mut label = tree[node] as usize;
        let mut i = from;
        while i < to {
            let b = bytes[i];
            i += 1;
            if pos < label {
                if tree[node + 1 + pos] != b {
                    return Cursor::DEAD;
                }
                pos += 1;
                continue;
            }
            let at = node + 1 + label;
            let children = (tree[at] as usize) << 8 | tree[at + 1] as usize;
            let firsts = at + 6;
            // The children's first bytes are sorted: halve, then scan, to the first one not
            // below `b`.
            let (mut lo, mut hi) = (0, children);
            while hi - lo > 8 {
                let mid = (lo + hi) / 2;
                if tree[firsts + mid] < b {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            while lo < children && tree[firsts + lo] < b {
                lo += 1;
            }
            if lo == children || tree[firsts + lo] != b {
                return Cursor::DEAD;
            }
            let slot = firsts + children + 4 * lo;
            node = (tree[slot] as usize) << 24
                | (tree[slot + 1] as usize) << 16
                | (tree[slot + 2] as usize) << 8
                | tree[slot + 3] as usize;
            label = tree[node] as usize;
            pos = 1;
        }
        Cursor { node, pos }
    }

    /// The cursor after `s`.
    pub(crate) const fn feed_str(self, tree: &[u8], s: &str) -> Cursor {
        self.feed_range(tree, s.as_bytes(), 0, s.len())
    }

    /// The names whose text is the rendering: where their terms start in the tree, and how
    /// many there are.
    pub(crate) const fn terms(self, tree: &[u8]) -> (usize, usize) {
        let node = self.node;
        if node == usize::MAX {
            return (0, 0);
        }
        let label = tree[node] as usize;
        if self.pos < label {
            return (0, 0);
        }
        let at = node + 1 + label;
        let children = (tree[at] as usize) << 8 | tree[at + 1] as usize;
        let count = (tree[at + 2] as usize) << 24
            | (tree[at + 3] as usize) << 16
            | (tree[at + 4] as usize) << 8
            | tree[at + 5] as usize;
        (at + 6 + 5 * children, count)
    }

    /// Whether a name is the rendering, or goes on after it with a byte that is not a digit:
    /// the index search's rule for a list element.
    pub(crate) const fn ends_or_goes_on_without_digit(self, tree: &[u8]) -> bool {
        if self.is_dead() {
            return false;
        }
        let node = self.node;
        let label = tree[node] as usize;
        if self.pos < label {
            return !tree[node + 1 + self.pos].is_ascii_digit();
        }
        if self.terms(tree).1 > 0 {
            return true;
        }
        let at = node + 1 + label;
        let children = (tree[at] as usize) << 8 | tree[at + 1] as usize;
        let mut k = 0;
        while k < children {
            if !tree[at + 6 + k].is_ascii_digit() {
                return true;
            }
            k += 1;
        }
        false
    }
}

/// A key path in const code: segments, the root's Objax class, the collection in force, and the
/// path rendered as a prefix, kept up to date as segments come and go so that a key costs the
/// steps of its last segments only (const evaluation takes about a microsecond a step). With a
/// table's key tree, the path also follows its rendering through the tree.
pub(crate) struct Path<'t> {
    pub(crate) style: Style,
    /// The key tree followed; empty for none.
    tree: &'t [u8],
    /// The collections the tree's terms are numbered by ([`super::Table::collections`]).
    collections: &'t [&'t str],
    /// The number of `collection` there: 0 for none, `usize::MAX` for one not there.
    pub(crate) number: usize,
    segs: [Seg<'t>; MAX_SEGMENTS],
    pub(crate) len: usize,
    pub(crate) root_class: Option<&'static str>,
    pub(crate) collection: Option<&'static str>,
    pinned: bool,
    /// The segments as a prefix: [`Style::prefix`]'s text (and, in Objax, the classes between).
    text: Buf,
    /// `text`'s length with `k` segments, at `ends[k]`; `ends[0]` after the root's class.
    ends: [usize; MAX_SEGMENTS + 1],
    /// The last segment among the first `k` that is not joined to the one before, plus one, at
    /// `modules[k]` (0 for none): in Haiku, the parameter name, after a `.`.
    modules: [usize; MAX_SEGMENTS + 1],
    /// The cursor of the text up to `ends[k]`, at `cursors[k]`.
    cursors: [Cursor; MAX_SEGMENTS + 1],
}

impl<'t> Path<'t> {
    pub(crate) const fn new(style: Style) -> Self {
        Path::over(style, &[], &[])
    }

    /// A path that follows its rendering through a table's key `tree`, whose terms number
    /// their collections in `collections`.
    pub(crate) const fn over(style: Style, tree: &'t [u8], collections: &'t [&'t str]) -> Self {
        Path {
            style,
            tree,
            collections,
            number: 0,
            segs: [EMPTY_SEG; MAX_SEGMENTS],
            len: 0,
            root_class: None,
            collection: None,
            pinned: false,
            text: Buf::new(),
            ends: [0; MAX_SEGMENTS + 1],
            modules: [0; MAX_SEGMENTS + 1],
            cursors: [Cursor::ROOT; MAX_SEGMENTS + 1],
        }
    }

    /// The list numbering of the segment the path ends in.
    pub(crate) const fn last_numbering(&self) -> Numbering {
        match self.len {
            0 => Numbering::Index,
            n if n <= MAX_SEGMENTS => self.segs[n - 1].numbering,
            _ => Numbering::Index,
        }
    }

    /// Undoes a [`Path::default_class`] that set a class.
    pub(crate) const fn clear_class(&mut self) {
        if self.len == 0 {
            self.root_class = None;
        } else if self.len <= MAX_SEGMENTS {
            self.segs[self.len - 1].class = None;
        }
    }

    pub(crate) const fn too_deep(&self) -> bool {
        self.len > MAX_DEPTH
    }

    pub(crate) const fn push(&mut self, name: Name<'t>) {
        self.push_seg(Seg {
            name,
            class: None,
            sep: HaikuSep::Constructor,
            numbering: Numbering::Index,
        });
    }

    /// Adds a segment and its rendering. A segment's class only shows (in Objax) before the
    /// next segment, so it is rendered then: a class set after the push still counts.
    const fn push_seg(&mut self, seg: Seg<'t>) {
        if self.len == 0 {
            self.text.clear();
            if let (Style::Objax, Some(class)) = (self.style, self.root_class) {
                self.text.push(b'(');
                self.text.push_str(class);
                self.text.push(b')');
            }
            self.ends[0] = self.text.len;
            if let [_, ..] = self.tree {
                let text = &self.text.bytes;
                self.cursors[0] = Cursor::ROOT.feed_range(self.tree, text, 0, self.ends[0]);
            }
        }
        let i = self.len;
        self.len += 1;
        if i >= MAX_SEGMENTS {
            return;
        }
        if matches!(self.style, Style::Objax)
            && i > 0
            && let Some(class) = self.segs[i - 1].class
        {
            self.text.push(b'(');
            self.text.push_str(class);
            self.text.push(b')');
        }
        self.segs[i] = seg;
        self.append(i);
        self.ends[i + 1] = self.text.len;
        // Followed through the tree, if any (a pattern, not `is_empty()`: a call costs more).
        if let [_, ..] = self.tree {
            let (from, to) = (self.ends[i], self.ends[i + 1]);
            self.cursors[i + 1] = self.cursors[i].feed_range(self.tree, &self.text.bytes, from, to);
        }
        self.modules[i + 1] = if joined(&self.segs, i) {
            self.modules[i]
        } else {
            i + 1
        };
    }

    /// Renders segment `i` onto `text`, as a module (every separator a module's).
    const fn append(&mut self, i: usize) {
        let seg = self.segs[i];
        if matches!(self.style, Style::Objax) {
            match seg.name {
                Name::Field(name) => {
                    self.text.push(b'.');
                    self.text.push_str(name);
                }
                name => {
                    self.text.push(b'[');
                    match name {
                        Name::Position(i) | Name::Index(i) => self.text.push_usize(i),
                        Name::Key(key) => self.text.push_str(key),
                        Name::AnyIndex | Name::AnyPosition => self.text.push(ANY_DIGITS),
                        Name::AnyKey => self.text.push(ANY_NAME),
                        Name::Field(_) | Name::Mark => {}
                    }
                    self.text.push(b']');
                }
            }
            return;
        }
        let element = joined(&self.segs, i);
        let haiku = element && matches!(numbering(&self.segs, i), Numbering::Haiku);
        if haiku && matches!(seg.name, Name::Index(0)) {
            return;
        }
        if haiku && matches!(seg.name, Name::AnyIndex) {
            // Nothing for element 0, `_<i>` for the others.
            self.text.push(ANY_HAIKU_SUFFIX);
            return;
        }
        let started = self.text.len > self.ends[0];
        if element && started {
            self.text.push(b'_');
        } else if started {
            match self.style {
                Style::Haiku => self.text.push_str(sep_before(&self.segs, i).as_str()),
                _ => self.text.push(b'.'),
            }
        }
        push_name(seg.name, &mut self.text);
    }

    pub(crate) const fn pop(&mut self) {
        self.len -= 1;
        if self.len < MAX_SEGMENTS {
            self.text.len = self.ends[self.len];
        }
    }

    pub(crate) const fn default_class(&mut self, class: &'static str) -> bool {
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

    pub(crate) const fn enter_field(&mut self, field: &FieldSchema, position: usize) -> Saved {
        let name = match field.info.name {
            Some(name) => Name::Field(name),
            None => Name::Position(position),
        };
        self.enter_field_as(field, name)
    }

    /// [`Path::enter_field`] with the segment's name given: a pattern's wildcard.
    pub(crate) const fn enter_field_as(&mut self, field: &FieldSchema, name: Name<'t>) -> Saved {
        let info = &field.info;
        self.push_seg(Seg {
            name,
            class: info.class,
            sep: info.sep,
            numbering: info.numbering,
        });
        let saved = Saved {
            collection: match info.collection {
                Some(c) => Some(self.collection.replace(c)),
                None => None,
            },
            number: self.number,
            pinned: self.pinned,
            set_class: false,
            set_root: false,
        };
        self.pinned = info.collection.is_some();
        if let Some(c) = info.collection {
            self.number = collection_number(self.collections, Some(c));
        }
        saved
    }

    pub(crate) const fn leave_field(&mut self, saved: Saved) {
        self.pop();
        self.restore(saved);
    }

    pub(crate) const fn enter_node(
        &mut self,
        class: &'static str,
        collection: Option<&'static str>,
    ) -> Saved {
        let root = self.len == 0;
        let set = self.default_class(class);
        let pinned = self.pinned;
        let number = self.number;
        let collection = match collection {
            Some(c) if !pinned => {
                self.number = collection_number(self.collections, Some(c));
                Some(self.collection.replace(c))
            }
            _ => None,
        };
        self.pinned = false;
        Saved {
            collection,
            number,
            pinned,
            set_class: set && !root,
            set_root: set && root,
        }
    }

    pub(crate) const fn leave_node(&mut self, saved: Saved) {
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
            self.number = saved.number;
        }
        self.pinned = saved.pinned;
    }

    /// The current path as a prefix: every step a module, no collection ([`Style::prefix`]).
    pub(crate) const fn render_prefix(&self, out: &mut Buf) {
        out.clear();
        if self.len == 0 {
            if let (Style::Objax, Some(class)) = (self.style, self.root_class) {
                out.push(b'(');
                out.push_str(class);
                out.push(b')');
            }
            return;
        }
        out.push_str_bytes(self.text.as_bytes());
        out.overflow |= self.text.overflow;
    }

    /// The cursor of the current path as a prefix ([`Path::render_prefix`]).
    pub(crate) const fn cursor(&self) -> Cursor {
        if self.len == 0 {
            let mut c = Cursor::ROOT;
            if let (Style::Objax, Some(class)) = (self.style, self.root_class) {
                c = c
                    .feed(self.tree, b'(')
                    .feed_str(self.tree, class)
                    .feed(self.tree, b')');
            }
            return c;
        }
        self.cursors[self.rendered()]
    }

    /// How many segments the text holds.
    const fn rendered(&self) -> usize {
        if self.len < MAX_SEGMENTS {
            self.len
        } else {
            MAX_SEGMENTS
        }
    }

    /// The cursor of the current path's key without its collection (its steps, as
    /// [`Path::render_key`] writes them after the collection); in Objax, of the whole key.
    pub(crate) const fn key_cursor(&self) -> Cursor {
        let tree = self.tree;
        if let Style::Objax = self.style {
            let kind = objax_kind(self.collection);
            return self.cursor().feed_str(tree, "::").feed_str(tree, kind);
        }
        if self.len == 0 {
            return Cursor::ROOT;
        }
        let n = self.rendered();
        let module = self.modules[n];
        if !matches!(self.style, Style::Haiku)
            || module == 0
            || self.ends[module - 1] == self.ends[0]
        {
            return self.cursors[n];
        }
        // As `push_steps`: the parameter name follows a `.`, not its module's separator.
        let k = module - 1;
        let sep = sep_before(&self.segs, k).as_str().len();
        let from = self.ends[k] + sep;
        self.cursors[k]
            .feed(tree, b'.')
            .feed_range(tree, &self.text.bytes, from, self.text.len)
    }

    /// The cursor of the key of a leaf field named `name` (of `name_len` bytes) under the
    /// current path, as [`Path::key_cursor`] would give it after the field's push (with
    /// `collection` in force), without the push; dead where the push would be unusual (too
    /// deep, rendered past [`MAX_KEY`]): the caller then pushes. Const evaluation spends more
    /// on a call than on a dozen steps of a loop, so this makes few.
    pub(crate) const fn leaf_cursor(
        &self,
        name: &[u8],
        name_len: usize,
        collection: Option<&'static str>,
    ) -> Cursor {
        let tree = self.tree;
        let len = self.len;
        if len >= MAX_DEPTH || len >= MAX_SEGMENTS || self.text.overflow {
            return Cursor::DEAD;
        }
        let [_, ..] = tree else {
            return Cursor::DEAD;
        };
        if let Style::Objax = self.style {
            if len == 0 {
                return Cursor::DEAD;
            }
            let kind = objax_kind(collection);
            let mut c = self.cursors[len];
            if let Some(class) = self.segs[len - 1].class {
                c = c.feed_range(tree, b"(", 0, 1);
                c = c.feed_str(tree, class);
                c = c.feed_range(tree, b")", 0, 1);
            }
            c = c.feed_range(tree, b".", 0, 1);
            c = c.feed_range(tree, name, 0, name_len);
            c = c.feed_range(tree, b"::", 0, 2);
            return c.feed_str(tree, kind);
        }
        if len == 0 {
            return Cursor::ROOT.feed_range(tree, name, 0, name_len);
        }
        // A field after anything is a module's parameter: after a `.`, in Flax and in Haiku.
        let mut c = self.cursors[len];
        if self.text.len > self.ends[0] {
            c = c.feed_range(tree, b".", 0, 1);
        }
        c.feed_range(tree, name, 0, name_len)
    }

    /// Whether [`Path::render_key`] may pass [`MAX_KEY`]: a bound, checked by rendering.
    pub(crate) const fn may_overflow(&self) -> bool {
        let collection = objax_kind(self.collection).len();
        self.text.overflow || self.text.len + collection + 8 > MAX_KEY
    }

    /// The current path's key ([`Style::render`]).
    pub(crate) const fn render_key(&self, with_collection: bool, out: &mut Buf) {
        out.clear();
        match self.style {
            Style::Objax => {
                self.render_prefix(out);
                out.push_str("::");
                out.push_str(objax_kind(self.collection));
            }
            _ => {
                if with_collection && let Some(c) = self.collection {
                    out.push_str(c);
                    out.push(b'.');
                }
                self.push_steps(out);
            }
        }
    }

    /// The segments as a key's steps: as the prefix, but in Haiku the parameter name (the last
    /// step not joined to the one before) follows a `.`.
    const fn push_steps(&self, out: &mut Buf) {
        if self.len == 0 {
            return;
        }
        out.overflow |= self.text.overflow;
        let text = self.text.as_bytes();
        let n = if self.len < MAX_SEGMENTS {
            self.len
        } else {
            MAX_SEGMENTS
        };
        let module = self.modules[n];
        if !matches!(self.style, Style::Haiku) || module == 0 {
            out.push_str_bytes(text);
            return;
        }
        let k = module - 1;
        let at = self.ends[k];
        if at == self.ends[0] {
            // Nothing before the parameter name: no separator to change.
            out.push_str_bytes(text);
            return;
        }
        let sep = sep_before(&self.segs, k).as_str().len();
        let (head, rest) = text.split_at(at);
        out.push_str_bytes(head);
        out.push(b'.');
        out.push_str_bytes(rest.split_at(sep).1);
    }

    /// A map's child affixes: the text before and after a child's name.
    pub(crate) const fn affixes(&mut self) -> (Buf, Buf) {
        self.push(Name::Mark);
        let mut before = Buf::new();
        let mut after = Buf::new();
        match self.style {
            Style::Objax => {
                self.render_prefix(&mut before);
                // `[` + the child + `]`.
                before.len -= 1;
                after.push(b']');
            }
            _ => self.push_steps(&mut before),
        }
        self.pop();
        (before, after)
    }
}

/// The Haiku separator before segment `i`: an element is joined to its list as the list is to
/// its parent.
const fn sep_before(segs: &[Seg<'_>], i: usize) -> HaikuSep {
    if i > 0 && segs[i].is_element() {
        segs[i - 1].sep
    } else {
        segs[i].sep
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
        Name::AnyIndex => out.push(ANY_DIGITS),
        Name::AnyKey => out.push(ANY_NAME),
        Name::AnyPosition => {
            out.push_str("layers_");
            out.push(ANY_DIGITS);
        }
        Name::Mark => {}
    }
}

/// An Objax key's variable kind: its collection, else `TrainVar`.
const fn objax_kind(collection: Option<&'static str>) -> &'static str {
    match collection {
        Some(kind) => kind,
        None => OBJAX_DEFAULT_KIND,
    }
}
