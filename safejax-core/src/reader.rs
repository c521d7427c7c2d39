//! The source of named tensor views that values are read from, and the report it keeps.

use std::cell::{Cell, OnceCell};
use std::cmp::Ordering;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::mem;

use safetensors::tensor::TensorView;

use crate::check::{NameRef as Name, sorted_names};
use crate::dtype::DtypePolicy;
use crate::error::{KeyProblem, LeafProblem, LoadReport};
use crate::format::{Parsed, Staged, TensorRef};
use crate::key::{KeyPath, MAX_DEPTH, Numbering, check_name, depth_reason};
use crate::style::Style;

/// Which collections a file holds, and whether its keys name the collection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartSpec {
    /// The collections the file holds; `None`: all of them.
    pub collections: Option<Vec<String>>,
    /// Whether Flax/Haiku keys start with the collection (`params.Dense_0.kernel`).
    pub with_collection: bool,
}

impl PartSpec {
    /// A file that holds every collection, with the collection in its keys.
    pub fn whole() -> Self {
        PartSpec {
            collections: None,
            with_collection: true,
        }
    }

    pub(crate) fn holds(&self, collection: Option<&str>) -> bool {
        match (&self.collections, collection) {
            (None, _) => true,
            (Some(list), Some(c)) => list.iter().any(|x| x == c),
            (Some(_), None) => false,
        }
    }
}

/// One file of a load: its tensors, and which of them were read.
struct Part<'d> {
    spec: PartSpec,
    parsed: Parsed<'d>,
    used: Vec<bool>,
}

/// The outcome of [`Reader::optional`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence<T> {
    /// None of the value's keys is in the file.
    Absent,
    /// The value was read.
    Present(T),
    /// Some keys are present but the value could not be read; the reader recorded why.
    Failed,
}

impl<T> Presence<T> {
    /// `Some(None)` when absent, `Some(Some(value))` when read, `None` when it failed.
    pub fn into_option(self) -> Option<Option<T>> {
        match self {
            Presence::Absent => Some(None),
            Presence::Present(value) => Some(Some(value)),
            Presence::Failed => None,
        }
    }
}

/// A source of named tensors that a [`crate::SafeParams`] (or [`crate::SafeView`]) value is read
/// from.
///
/// It hands out each tensor at most once, and gathers every problem (missing keys, wrong shape
/// or dtype, invalid values) into one [`LoadReport`] instead of stopping at the first. A
/// tensor's bytes stay where they are (memory given, a map, or the file) until a leaf reads them
/// into its own memory, or views them.
pub struct Reader<'d> {
    style: Style,
    policy: DtypePolicy,
    parts: Vec<Part<'d>>,
    /// Every key, and for Flax and Haiku its part after the first `.`, sorted: what
    /// [`Reader::any_under`], list and map reads search.
    names: Vec<Name>,
    /// The whole keys by a keyed hash of their part and text, for exact lookups that
    /// [`Reader::find_near`] misses; built at the first such lookup.
    index: OnceCell<Index>,
    hasher: RandomState,
    /// Where in `names` the last key found by [`Reader::find_near`] or the index lies, plus
    /// one: a value read field after field, or a list element after element, asks for keys
    /// that mostly follow each other in sorted order.
    finger: Cell<usize>,
    /// How many lookups [`Reader::find_near`] missed before the index was built.
    searches: Cell<usize>,
    /// Keys asked for in collections that no file holds, with the collection.
    uncovered: Vec<(String, String)>,
    report: LoadReport,
    /// The memory each key is rendered into, reused.
    scratch: String,
    hits: usize,
    /// Above zero while candidate map entries are tried: a key already read then counts as
    /// absent, so that the first candidate that reads it keeps it.
    probing: usize,
}

impl<'d> Reader<'d> {
    /// A reader over checked files, each with the collections it holds.
    pub fn new(style: Style, policy: DtypePolicy, files: Vec<(PartSpec, Parsed<'d>)>) -> Self {
        let parts: Vec<Part<'d>> = files
            .into_iter()
            .map(|(spec, parsed)| Part {
                spec,
                used: vec![false; parsed.len()],
                parsed,
            })
            .collect();
        let counts: Vec<usize> = parts.iter().map(|p| p.parsed.len()).collect();
        let names = sorted_names(&counts, |part, entry| parts[part].parsed.name(entry), style);
        Reader {
            style,
            policy,
            parts,
            names,
            index: OnceCell::new(),
            hasher: RandomState::new(),
            finger: Cell::new(0),
            searches: Cell::new(0),
            uncovered: Vec::new(),
            report: LoadReport::default(),
            scratch: String::new(),
            hits: 0,
            probing: 0,
        }
    }

    /// The first of the sorted names whose text is not below `text`.
    fn seek(&self, text: &str) -> usize {
        self.names
            .partition_point(|n| self::text(&self.parts, *n) < text)
    }

    /// The entry of `part` whose whole key is `key`.
    fn find(&self, part: usize, key: &str) -> Option<usize> {
        if let Some(entry) = self.find_near(part, key) {
            return Some(entry);
        }
        // A few lookups out of order (a list's first elements, whose neighbours in sorted
        // order are the later ones: `layers_1`, `layers_10`, `layers_100`) are binary
        // searches; the index is built once they are many.
        if self.index.get().is_none() && self.searches.get() < self.names.len() / 32 + 16 {
            self.searches.set(self.searches.get() + 1);
            let start = self.seek(key);
            let found = self.names[start..]
                .iter()
                .take_while(|n| text(&self.parts, **n) == key)
                .position(|n| n.part as usize == part && n.start == 0)?;
            self.finger.set(start + found + 1);
            return Some(self.names[start + found].entry as usize);
        }
        let index = self
            .index
            .get_or_init(|| Index::new(&self.names, &self.parts, &self.hasher));
        let hash = self.hasher.hash_one((part, key));
        if let Some(&at) = index.map.get(&hash) {
            let name = self.names[at as usize];
            if name.part as usize == part && text(&self.parts, name) == key {
                self.finger.set(at as usize + 1);
                return Some(name.entry as usize);
            }
        }
        if !index.collisions {
            return None;
        }
        let start = self.seek(key);
        self.names[start..]
            .iter()
            .take_while(|n| text(&self.parts, **n) == key)
            .find(|n| n.part as usize == part && n.start == 0)
            .map(|n| n.entry as usize)
    }

    /// [`Reader::find`] among the few names after the last one found, in order: reading the
    /// header's names where they lie instead of a hash table's slot anywhere in memory.
    fn find_near(&self, part: usize, key: &str) -> Option<usize> {
        /// How many names are compared before the index is asked.
        const NEAR: usize = 24;
        let start = self.finger.get();
        let end = start.saturating_add(NEAR).min(self.names.len());
        for at in start..end {
            let name = self.names[at];
            match text(&self.parts, name).cmp(key) {
                Ordering::Less => {}
                Ordering::Equal if name.part as usize == part && name.start == 0 => {
                    self.finger.set(at + 1);
                    return Some(name.entry as usize);
                }
                Ordering::Equal => {}
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// The style keys are rendered in.
    pub fn style(&self) -> Style {
        self.style
    }

    /// The dtype policy of this load.
    pub fn policy(&self) -> DtypePolicy {
        self.policy
    }

    /// The key of `path` as the file that holds its collection writes it.
    pub fn key(&self, path: &KeyPath) -> String {
        let with_collection = self
            .part_for(path)
            .is_none_or(|i| self.parts[i].spec.with_collection);
        self.style.render(path, with_collection)
    }

    /// The key of `path` as part `part` writes it.
    fn key_in(&self, path: &KeyPath, part: usize) -> String {
        self.style
            .render(path, self.parts[part].spec.with_collection)
    }

    fn part_for(&self, path: &KeyPath) -> Option<usize> {
        self.parts
            .iter()
            .position(|p| p.spec.holds(path.collection()))
    }

    /// The tensor at `path`: the first part holding its collection that has its key (a
    /// collection may be split over parts, as over the shards of a checkpoint), with the key as
    /// that part writes it rendered into `key`, and the entry; or, when none has it, the first
    /// part holding the collection and its key, without an entry. `None` when no part holds the
    /// collection.
    fn locate(&self, path: &KeyPath, key: &mut String) -> Option<(usize, Option<usize>)> {
        let first = self.part_for(path)?;
        let first_renders = self.parts[first].spec.with_collection;
        let mut rendered = first_renders;
        key.clear();
        self.style.render_into(path, rendered, key);
        for (part, file) in self.parts.iter().enumerate().skip(first) {
            if !file.spec.holds(path.collection()) {
                continue;
            }
            if file.spec.with_collection != rendered {
                rendered = file.spec.with_collection;
                key.clear();
                self.style.render_into(path, rendered, key);
            }
            if let Some(i) = self.find(part, key) {
                return Some((part, Some(i)));
            }
        }
        if rendered != first_renders {
            key.clear();
            self.style.render_into(path, first_renders, key);
        }
        Some((first, None))
    }

    /// Takes the tensor at `path` (its part and entry), or records it as missing. A tensor is
    /// handed out once: a second request for the same key (two fields rendering to one key) is
    /// recorded as a problem. The key is rendered into memory reused key after key, and kept
    /// only for a problem ([`Reader::key_in`] renders it again for a problem found later).
    fn take(&mut self, path: &KeyPath) -> Option<(usize, usize)> {
        let mut key = mem::take(&mut self.scratch);
        let Some((part, found)) = self.locate(path, &mut key) else {
            self.scratch = key;
            // Missing: with `allow_missing`, an in-place load keeps the current value.
            let key = self.style.render(path, true);
            let collection = path.collection().unwrap_or("(none)").to_owned();
            self.uncovered.push((collection, key.clone()));
            self.report.missing.push(key);
            return None;
        };
        let Some(i) = found else {
            self.report.missing.push(key);
            return None;
        };
        if path.segments().len() > MAX_DEPTH {
            // Present, so the value it belongs to is not absent; but it is not read.
            self.hits += 1;
            self.report.invalid.push(too_deep(key));
            return None;
        }
        let file = &mut self.parts[part];
        if file.used[i] && self.probing > 0 {
            self.report.missing.push(key);
            return None;
        }
        self.hits += 1;
        if file.used[i] {
            self.report.invalid.push(KeyProblem {
                key,
                reason: "two parts of the value map to this key".to_owned(),
            });
            return None;
        }
        file.used[i] = true;
        self.scratch = key;
        Some((part, i))
    }

    /// Takes the tensor at `path` and converts it with `decode`, recording any problem. The
    /// tensor's bytes may still be in the file: `decode` reads them, straight into the memory of
    /// the value it makes where it can ([`TensorRef::read_into`]).
    pub fn leaf<T>(
        &mut self,
        path: &KeyPath,
        decode: impl FnOnce(&TensorRef<'_, 'd>, DtypePolicy) -> Result<T, LeafProblem>,
    ) -> Option<T> {
        let (part, i) = self.take(path)?;
        match decode(&self.parts[part].parsed.tensor(i), self.policy) {
            Ok(value) => Some(value),
            Err(problem) => {
                let key = self.key_in(path, part);
                self.report.record(key, problem);
                None
            }
        }
    }

    /// Records a problem with a key.
    pub fn problem(&mut self, key: String, problem: LeafProblem) {
        self.report.record(key, problem);
    }

    /// Whether any key of the files could belong to the value at `path`. A cheap necessary
    /// condition (a sorted search), so that reading a possibly absent value (and a recursive
    /// type's absent child) stops without descending.
    pub fn any_under(&self, path: &KeyPath) -> bool {
        let prefix = self.style.prefix(path);
        self.names
            .get(self.seek(&prefix))
            .is_some_and(|n| text(&self.parts, *n).starts_with(&prefix))
    }

    /// Reads the value at `path`, which may be wholly absent: [`Presence::Absent`] when not one
    /// of its keys is in the file (its "missing" reports are dropped). When at least one is, the
    /// read counts as usual, so that partial presence is an error.
    ///
    /// Values are not read deeper than [`MAX_DEPTH`] steps: keys under such a path are a
    /// problem of the load, so that a recursive type meets a file of any depth with a report
    /// instead of a stack overflow.
    pub fn optional<T>(
        &mut self,
        path: &mut KeyPath,
        read: impl FnOnce(&mut KeyPath, &mut Self) -> Option<T>,
    ) -> Presence<T> {
        // A tensor's own key need not start with the prefix of a module at its path: Haiku
        // joins a module's children with `/~/` but a tensor to its module with `.`.
        if !self.any_under(path) && !self.holds_key(path) {
            return Presence::Absent;
        }
        self.read_found(path, read)
    }

    /// Whether a file holds the tensor at `path`, at its own key.
    fn holds_key(&self, path: &KeyPath) -> bool {
        let mut key = String::new();
        matches!(self.locate(path, &mut key), Some((_, Some(_))))
    }

    /// [`Reader::optional`] for a value some key is known to lie under.
    fn read_found<T>(
        &mut self,
        path: &mut KeyPath,
        read: impl FnOnce(&mut KeyPath, &mut Self) -> Option<T>,
    ) -> Presence<T> {
        if path.segments().len() > MAX_DEPTH {
            let key = self.key(path);
            self.report.invalid.push(too_deep(key));
            self.hits += 1;
            return Presence::Failed;
        }
        let hits = self.hits;
        let lengths = self.report.lengths();
        let value = read(path, self);
        if self.hits == hits {
            self.report.truncate(lengths);
            return Presence::Absent;
        }
        match value {
            Some(value) => Presence::Present(value),
            None => Presence::Failed,
        }
    }

    /// Reads the elements of the list at `path` with `read`: from index 0, as long as keys lie
    /// under the next index (like [`Reader::optional`] for each). The indices that have keys are
    /// found in one pass over the list's keys, not one search per element.
    pub(crate) fn elements<T>(
        &mut self,
        path: &mut KeyPath,
        mut read: impl FnMut(&mut KeyPath, &mut Self) -> Option<T>,
    ) -> Option<Vec<T>> {
        let present = self.indices_under(path);
        if present.first() != Some(&0) {
            self.explain_empty(path, "list");
        }
        let mut items = Vec::with_capacity(present.len());
        let mut failed = false;
        for (i, _) in present.iter().enumerate().take_while(|&(i, at)| i == *at) {
            path.push_index(i);
            let item = self.read_found(path, &mut read);
            path.pop();
            match item {
                Presence::Present(item) => items.push(item),
                Presence::Absent => {
                    self.explain_unread_element(path, i, &mut read);
                    break;
                }
                Presence::Failed => failed = true,
            }
        }
        (!failed).then_some(items)
    }

    /// Explains why element `i` of the list at `path`, which keys lie under, read none of
    /// them (an element type that names its fields otherwise): a hint with what it needs, as a
    /// read that keeps its missing keys finds them.
    fn explain_unread_element<T>(
        &mut self,
        path: &mut KeyPath,
        i: usize,
        read: &mut impl FnMut(&mut KeyPath, &mut Self) -> Option<T>,
    ) {
        if self.probing > 0 {
            return;
        }
        let lengths = self.report.lengths();
        let uncovered = self.uncovered.len();
        path.push_index(i);
        let element = self.key(path);
        let _ = read(path, self);
        path.pop();
        self.uncovered.truncate(uncovered);
        let needed: Vec<String> = self.report.missing[lengths[0]..]
            .iter()
            .take(3)
            .map(|key| format!("`{key}`"))
            .collect();
        let more = self.report.missing.len() - lengths[0] - needed.len();
        self.report.truncate(lengths);
        if needed.is_empty() {
            return;
        }
        let list = match path.last() {
            Some(_) => self.key(path),
            None => String::new(),
        };
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        self.report.hints.push(format!(
            "the list at `{list}` stops before its element {i}: the file has keys under \
             `{element}`, but the element reads none of them; it needs {}{more}",
            needed.join(", ")
        ));
    }

    /// The indices `i`, sorted, for which some key lies under the element `i` of the list at
    /// `path`: the keys that render the element's index exactly (`blocks_1.`, not `blocks_10.`).
    fn indices_under(&self, path: &mut KeyPath) -> Vec<usize> {
        let numbering = path.last().map_or(Numbering::Index, |list| list.numbering);
        if numbering == Numbering::Haiku && self.style != Style::Objax {
            return self.haiku_indices_under(path);
        }
        path.push_index(0);
        let zero = self.style.prefix(path);
        path.pop();
        path.push_index(1);
        let one = self.style.prefix(path);
        path.pop();
        // The two differ in the index alone: what comes before and after it.
        let common = zero
            .bytes()
            .zip(one.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let (before, after) = (&zero[..common], zero.get(common + 1..).unwrap_or(""));
        let mut found = Vec::new();
        let mut at = self.seek(before);
        while let Some(&name) = self.names.get(at) {
            at += 1;
            let Some(rest) = text(&self.parts, name).strip_prefix(before) else {
                break;
            };
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let canonical = digits == 1 || (digits > 1 && !rest.starts_with('0'));
            if canonical
                && rest[digits..].starts_with(after)
                && let Ok(index) = rest[..digits].parse::<usize>()
            {
                found.push(index);
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Explains why a list or map at `path` holds nothing where the file has keys for it: a
    /// tensor at its own key (a tensor field declared as a list or map), or, for a list, keys
    /// that another numbering of its elements would read.
    fn explain_empty(&mut self, path: &mut KeyPath, what: &str) {
        // Candidate map entries are tried and dropped: only a value really read is explained.
        if self.probing > 0 {
            return;
        }
        let mut key = String::new();
        if let Some((part, Some(i))) = self.locate(path, &mut key)
            && !self.parts[part].used[i]
        {
            let tensor = self.parts[part].parsed.tensor(i);
            let reason = format!(
                "is a tensor in the file, but the field here is a {what}: did you mean `{}`?",
                rust_type(tensor.dtype(), tensor.shape().len())
            );
            self.parts[part].used[i] = true;
            self.hits += 1;
            self.report.invalid.push(KeyProblem { key, reason });
            return;
        }
        let Some(list) = path.last().map(|list| list.numbering) else {
            return;
        };
        if what != "list" || self.style == Style::Objax {
            return;
        }
        for other in [Numbering::Haiku, Numbering::Nested, Numbering::Index] {
            if other == list {
                continue;
            }
            if let Some(segment) = path.segments_mut().last_mut() {
                segment.numbering = other;
            }
            let found = !self.indices_under(path).is_empty();
            if let Some(segment) = path.segments_mut().last_mut() {
                segment.numbering = list;
            }
            if found {
                let name = match other {
                    Numbering::Haiku => "haiku",
                    Numbering::Nested => "nested",
                    Numbering::Index => "index",
                };
                self.report.hints.push(format!(
                    "the list at `{}` read no element, but the file has keys that `#[safejax(numbering = \"{name}\")]` on it would read",
                    self.style.prefix(path)
                ));
                return;
            }
        }
    }

    /// [`Reader::indices_under`] for Haiku's numbering: the list's own name for the first
    /// element (`layer_norm.scale`, `layer_norm/~/...`), `_<i>` after it for the others.
    fn haiku_indices_under(&self, path: &mut KeyPath) -> Vec<usize> {
        path.push_index(0);
        let first = self.style.prefix(path);
        path.pop();
        let mut found = Vec::new();
        let mut at = self.seek(&first);
        while let Some(&name) = self.names.get(at) {
            at += 1;
            let Some(rest) = text(&self.parts, name).strip_prefix(first.as_str()) else {
                break;
            };
            if rest.is_empty() || rest.starts_with(['.', '/']) {
                found.push(0);
            } else if let Some(number) = rest.strip_prefix('_') {
                let digits = number.bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0
                    && !number.starts_with('0')
                    && let Ok(index) = number[..digits].parse::<usize>()
                {
                    found.push(index);
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Tries a candidate map entry with [`Reader::optional`]; keys already read count as absent.
    fn probe<T>(
        &mut self,
        path: &mut KeyPath,
        read: impl FnOnce(&mut KeyPath, &mut Self) -> Option<T>,
    ) -> Presence<T> {
        self.probing += 1;
        let presence = self.optional(path, read);
        self.probing -= 1;
        presence
    }

    /// Reads the entries of the map at `path` (whose last segment is the map's own): the names
    /// the file's keys hold there, each read with `read`.
    ///
    /// Flax and Haiku join an entry to its map with `_`, and a list element or inner map entry
    /// to the entry with `_` again, so the key `heads_a_0.w` may hold the entry `a` (of a map
    /// of lists) or `a_0`. `fits` says what may follow an entry's name inside its key segment
    /// (see [`SafeParams::entry_suffix`](crate::SafeParams::entry_suffix)); of the names that
    /// fit, shorter ones are tried first, and a key stops being tried once it is read. At most
    /// [`MAX_ENTRY_CANDIDATES`] names are tried per key, which keeps a read linear in the size
    /// of the file. Names that could not be map keys are left out (and so end up unexpected).
    pub(crate) fn entries<T>(
        &mut self,
        path: &mut KeyPath,
        fits: fn(&str) -> bool,
        mut read: impl FnMut(&mut KeyPath, &mut Self) -> Option<T>,
    ) -> Option<Vec<(String, T)>> {
        let (before, after) = self.style.child_affixes(path, false);
        let stops: &[char] = match self.style {
            Style::Flax => &['.'],
            Style::Haiku => &['.', '/'],
            Style::Objax => &[']'],
        };
        let mut entries = Vec::new();
        let mut failed = false;
        let mut tried = HashSet::new();
        let mut at = self.seek(&before);
        while let Some(&name) = self.names.get(at) {
            at += 1;
            let Some(rest) = text(&self.parts, name).strip_prefix(before.as_str()) else {
                break;
            };
            let end = rest.find(stops).unwrap_or(rest.len());
            let child = &rest[..end];
            if self.is_used(name)
                || !rest[end..].starts_with(after.as_str())
                || check_name(child).is_err()
            {
                continue;
            }
            let child = child.to_owned();
            for cut in candidates(&child, self.style, fits) {
                let entry = &child[..cut];
                if !tried.insert(entry.to_owned()) {
                    continue;
                }
                path.push_key(entry);
                let value = self.probe(path, &mut read);
                path.pop();
                match value {
                    Presence::Present(value) => entries.push((entry.to_owned(), value)),
                    Presence::Absent => {}
                    Presence::Failed => failed = true,
                }
                if self.is_used(name) {
                    break;
                }
            }
        }
        if entries.is_empty() && !failed {
            self.explain_empty(path, "map");
        }
        (!failed).then_some(entries)
    }

    fn is_used(&self, name: Name) -> bool {
        self.parts[name.part as usize].used[name.entry as usize]
    }

    /// Finishes the read: unconsumed keys become "unexpected" unless `allow_unexpected`, in which
    /// case they are returned as ignored.
    pub fn finish(mut self, allow_unexpected: bool) -> (LoadReport, Vec<String>) {
        self.hint_uncovered();
        let mut unused = Vec::new();
        for part in &self.parts {
            for (entry, used) in part.used.iter().enumerate() {
                if !used {
                    unused.push(part.parsed.name(entry).to_owned());
                }
            }
        }
        self.hint_mismatch(&unused);
        if allow_unexpected {
            (self.report, unused)
        } else {
            self.report.unexpected.extend(unused);
            (self.report, Vec::new())
        }
    }

    /// A hint for each collection that no file holds, where keys of it are still missing.
    fn hint_uncovered(&mut self) {
        let missing: HashSet<&str> = self.report.missing.iter().map(String::as_str).collect();
        let mut collections: Vec<&str> = self
            .uncovered
            .iter()
            .filter(|(_, key)| missing.contains(key.as_str()))
            .map(|(collection, _)| collection.as_str())
            .collect();
        collections.sort_unstable();
        collections.dedup();
        let hints: Vec<String> = collections
            .into_iter()
            .map(|collection| {
                format!(
                    "no file was given for collection `{collection}`: give a part that holds it, or, loading into an existing value, ask for `allow_missing` to keep its current tensors"
                )
            })
            .collect();
        self.report.hints.extend(hints);
    }

    /// One hint for a whole-file mismatch, instead of leaving a user with hundreds of missing
    /// and unexpected keys: a collection prefix only one side has, or keys of another style.
    fn hint_mismatch(&mut self, unused: &[String]) {
        let missing = &self.report.missing;
        if missing.is_empty() || unused.is_empty() {
            return;
        }
        let unused_set: HashSet<&str> = unused.iter().map(String::as_str).collect();
        let most = |found: usize| found * 2 >= missing.len();
        if self.style != Style::Objax {
            if let Some(prefix) = common_head(unused.iter())
                && !missing.iter().any(|k| k.starts_with(&format!("{prefix}.")))
                && most(
                    missing
                        .iter()
                        .filter(|k| unused_set.contains(format!("{prefix}.{k}").as_str()))
                        .count(),
                )
            {
                self.report.hints.push(format!(
                    "every key of the file starts with `{prefix}.`, which the value's keys lack: declare the collection (`#[safejax(collection = \"{prefix}\")]`)"
                ));
                return;
            }
            if let Some(prefix) = common_head(missing.iter())
                && !unused.iter().any(|k| k.starts_with(&format!("{prefix}.")))
                && most(
                    missing
                        .iter()
                        .filter_map(|k| k.strip_prefix(&format!("{prefix}.")))
                        .filter(|k| unused_set.contains(k))
                        .count(),
                )
            {
                self.report.hints.push(format!(
                    "the value's keys start with `{prefix}.` and the file's do not: the file holds that collection alone; read it with `Part::file(..).collections([\"{prefix}\"]).without_collection()`"
                ));
                return;
            }
        }
        let file_style = if unused
            .iter()
            .any(|k| k.contains("::") || k.starts_with('('))
        {
            Style::Objax
        } else if unused.iter().any(|k| k.contains('/')) {
            Style::Haiku
        } else {
            Style::Flax
        };
        let normalized: HashSet<String> = unused.iter().map(|k| normalize(k)).collect();
        // Objax writes the collection as the variable kind: compare without it too.
        let matches = |key: &String| {
            normalized.contains(&normalize(key))
                || key
                    .split_once('.')
                    .is_some_and(|(_, rest)| normalized.contains(&normalize(rest)))
        };
        if file_style != self.style && most(missing.iter().filter(|k| matches(k)).count()) {
            self.report.hints.push(format!(
                "the file's keys are {file_style} keys, read here as {}: load in its style (`#[safejax(style = \"{file_style}\")]` or `Loader::style`)",
                self.style
            ));
        }
    }

    /// Takes the tensor at `path` and checks it with `check`, for the first pass of an in-place
    /// load; returns the view if it can be assigned. With `allow_missing`, a missing key is not
    /// a problem.
    pub(crate) fn checked(
        &mut self,
        path: &KeyPath,
        allow_missing: bool,
        check: impl FnOnce(&TensorView<'_>, DtypePolicy) -> Result<(), LeafProblem>,
    ) -> Option<Staged<'d>> {
        let missing_before = self.report.missing.len();
        let taken = self.take(path);
        if allow_missing {
            self.report.missing.truncate(missing_before);
        }
        let (part, i) = taken?;
        let staged = self.parts[part].parsed.tensor(i).staged();
        let checked = staged
            .map_err(|e| LeafProblem::Unreadable(e.to_string()))
            .and_then(|staged| {
                staged
                    .with_view(|view| check(view, self.policy))
                    .map(|()| staged)
            });
        match checked {
            Ok(staged) => Some(staged),
            Err(problem) => {
                let key = self.key_in(path, part);
                self.report.record(key, problem);
                None
            }
        }
    }
}

/// The first `.`-separated segment every key shares, if any.
fn common_head<'k>(mut keys: impl Iterator<Item = &'k String>) -> Option<&'k str> {
    let head = |key: &'k String| key.split_once('.').map(|(head, _)| head);
    let first = head(keys.next()?)?;
    keys.all(|key| head(key) == Some(first)).then_some(first)
}

/// A key with the punctuation of its style taken out: module paths joined with `.`, no Objax
/// classes, brackets or variable kind; keys of one model in two styles mostly agree.
fn normalize(key: &str) -> String {
    let body = key.rsplit_once("::").map_or(key, |(body, _)| body);
    let mut out = String::with_capacity(body.len());
    let mut depth = 0usize;
    for c in body.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            '[' => out.push('_'),
            ']' => {}
            _ => out.push(c),
        }
    }
    out.replace("/~/", ".")
        .replace('/', ".")
        .trim_start_matches('.')
        .to_owned()
}

/// How a tensor of `dtype` and `rank` is declared: `Array2<f32>`.
pub(crate) fn rust_type(dtype: safetensors::Dtype, rank: usize) -> String {
    use safetensors::Dtype::*;
    let element = match dtype {
        F32 => "f32",
        F64 => "f64",
        F16 => "half::f16",
        BF16 => "half::bf16",
        I8 => "i8",
        I16 => "i16",
        I32 => "i32",
        I64 => "i64",
        U8 => "u8",
        U16 => "u16",
        U32 => "u32",
        U64 => "u64",
        BOOL => "bool",
        _ => return "safejax::Tensor".to_owned(),
    };
    match rank {
        0..=6 => format!("Array{rank}<{element}>"),
        _ => format!("ArrayD<{element}>"),
    }
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// The whole keys of a reader's files by a keyed hash of their part and text: each the place
/// of its name in the reader's sorted names.
struct Index {
    map: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    /// Whether two keys share a hash, which the map then holds one of.
    collisions: bool,
}

impl Index {
    fn new(names: &[Name], parts: &[Part<'_>], hasher: &RandomState) -> Self {
        let mut map = HashMap::default();
        map.reserve(parts.iter().map(|p| p.parsed.len()).sum());
        let mut collisions = false;
        for (at, name) in names.iter().enumerate() {
            if name.start == 0 {
                let hash = hasher.hash_one((name.part as usize, text(parts, *name)));
                collisions |= map.insert(hash, at as u32).is_some();
            }
        }
        Index { map, collisions }
    }
}

/// The text of a sorted name.
fn text<'p>(parts: &'p [Part<'_>], name: Name) -> &'p str {
    &parts[name.part as usize].parsed.name(name.entry as usize)[name.start as usize..]
}

/// The most names tried as a map entry for one key of a file. In Flax and Haiku, a key
/// `heads_a_b_0.w` under a map `heads` may hold the entry `a`, `a_b` or `a_b_0`, depending on
/// what the entries hold; only the names whose rest fits the entry type are tried, shortest
/// first, and at most this many, which keeps reading a map linear in the size of the file.
///
/// ```
/// assert_eq!(safejax_core::reader::MAX_ENTRY_CANDIDATES, 64);
/// ```
pub const MAX_ENTRY_CANDIDATES: usize = 64;

/// The lengths of the names a key segment `child` may hold as a map entry, shortest first: in
/// Flax and Haiku every prefix that ends before a `_` and the whole, where the rest `fits`; in
/// Objax only the whole.
fn candidates(child: &str, style: Style, fits: fn(&str) -> bool) -> impl Iterator<Item = usize> {
    let cuts = (style != Style::Objax)
        .then(|| {
            child
                .match_indices('_')
                .map(|(at, _)| at)
                .filter(|&at| at > 0)
        })
        .into_iter()
        .flatten();
    let whole = std::iter::once(child.len());
    cuts.chain(whole)
        .filter(move |&at| style == Style::Objax || fits(&child[at..]))
        .take(MAX_ENTRY_CANDIDATES)
}

fn too_deep(key: String) -> KeyProblem {
    KeyProblem {
        key,
        reason: depth_reason(),
    }
}
