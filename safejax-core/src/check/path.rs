//! The checker's key path, and its rendering: the const twin of [`crate::KeyPath`] and of
//! [`Style::render`], [`Style::prefix`] and `child_affixes`. A path may hold wildcards (any index,
//! any map key), rendered as bytes no key contains, so that the collision check compares the
//! patterns of two fields.

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
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            self.push(bytes[i]);
            i += 1;
        }
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
}

impl Buf {
    pub(crate) const fn push_str_bytes(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            self.push(bytes[i]);
            i += 1;
        }
    }
}

/// A key path in const code: segments, the root's Objax class, the collection in force.
pub(crate) struct Path<'t> {
    pub(crate) style: Style,
    pub(crate) segs: [Seg<'t>; MAX_SEGMENTS],
    pub(crate) len: usize,
    pub(crate) root_class: Option<&'static str>,
    pub(crate) collection: Option<&'static str>,
    pinned: bool,
}

impl<'t> Path<'t> {
    pub(crate) const fn new(style: Style) -> Self {
        Path {
            style,
            segs: [EMPTY_SEG; MAX_SEGMENTS],
            len: 0,
            root_class: None,
            collection: None,
            pinned: false,
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

    pub(crate) const fn pop(&mut self) {
        self.len -= 1;
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
        }
        self.pinned = saved.pinned;
    }

    /// The current path's key.
    pub(crate) const fn render_key(&self, with_collection: bool) -> Buf {
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
        out
    }

    /// The current path as a prefix: every step a module, no collection.
    pub(crate) const fn render_prefix(&self) -> Buf {
        let mut out = Buf::new();
        match self.style {
            Style::Objax => self.render_objax(&mut out),
            _ => self.render_steps(&mut out, true),
        };
        out
    }

    /// A map's child affixes: the text before and after a child's name.
    pub(crate) const fn affixes(&mut self) -> (Buf, Buf) {
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
        (probe, key)
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
            let haiku = element && matches!(numbering(segs, i), Numbering::Haiku);
            if haiku && matches!(seg.name, Name::Index(0)) {
                i += 1;
                continue;
            }
            if haiku && matches!(seg.name, Name::AnyIndex) {
                // Nothing for element 0, `_<i>` for the others.
                out.push(ANY_HAIKU_SUFFIX);
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
                        Name::AnyIndex | Name::AnyPosition => out.push(ANY_DIGITS),
                        Name::AnyKey => out.push(ANY_NAME),
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
