//! The source of named tensor views that values are read from, and the report it keeps.

use std::collections::{BTreeSet, HashMap};

use safetensors::tensor::TensorView;

use crate::dtype::DtypePolicy;
use crate::error::{KeyProblem, LeafProblem, LoadReport};
use crate::format::Parsed;
use crate::key::{KeyPath, check_name};
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

struct Entry<'d> {
    view: TensorView<'d>,
    used: bool,
}

struct Part<'d> {
    spec: PartSpec,
    names: Vec<String>,
    entries: Vec<Entry<'d>>,
    index: HashMap<String, usize>,
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

/// A source of named tensor views that a [`crate::SafeParams`] value is read from.
///
/// It hands out each tensor at most once, and gathers every problem (missing keys, wrong shape
/// or dtype, invalid values) into one [`LoadReport`] instead of stopping at the first. The views
/// borrow the file's bytes: nothing is copied until a leaf decodes its own data.
pub struct Reader<'d> {
    style: Style,
    policy: DtypePolicy,
    parts: Vec<Part<'d>>,
    /// Every key, and for Flax and Haiku its part after the first `.`, sorted: what
    /// [`Reader::any_under`] and [`Reader::child_names`] search.
    prefixes: Vec<String>,
    report: LoadReport,
    hits: usize,
    /// Above zero while candidate map entries are tried: a key already read then counts as
    /// absent, so that the first candidate that reads it keeps it.
    probing: usize,
}

impl<'d> Reader<'d> {
    /// A reader over checked files, each with the collections it holds.
    pub fn new(style: Style, policy: DtypePolicy, files: Vec<(PartSpec, Parsed<'d>)>) -> Self {
        let parts = files
            .into_iter()
            .map(|(spec, parsed)| {
                let mut names = Vec::with_capacity(parsed.tensors.len());
                let mut entries = Vec::with_capacity(parsed.tensors.len());
                for (name, view) in parsed.tensors {
                    names.push(name);
                    entries.push(Entry { view, used: false });
                }
                let index = names
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, n)| (n, i))
                    .collect();
                Part {
                    spec,
                    names,
                    entries,
                    index,
                }
            })
            .collect::<Vec<Part<'d>>>();
        let mut prefixes = Vec::new();
        for name in parts.iter().flat_map(|p| &p.names) {
            prefixes.push(name.clone());
            if style != Style::Objax
                && let Some((_, rest)) = name.split_once('.')
            {
                prefixes.push(rest.to_owned());
            }
        }
        prefixes.sort_unstable();
        Reader {
            style,
            policy,
            parts,
            prefixes,
            report: LoadReport::default(),
            hits: 0,
            probing: 0,
        }
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

    fn part_for(&self, path: &KeyPath) -> Option<usize> {
        self.parts
            .iter()
            .position(|p| p.spec.holds(path.collection()))
    }

    /// Takes the tensor at `path`, or records it as missing. A tensor is handed out once: a second
    /// request for the same key (two fields rendering to one key) is recorded as a problem.
    pub fn tensor(&mut self, path: &KeyPath) -> Option<(String, TensorView<'d>)> {
        let Some(part) = self.part_for(path) else {
            let key = self.style.render(path, true);
            self.report.invalid.push(KeyProblem {
                key,
                reason: format!(
                    "no file was given for collection `{}`",
                    path.collection().unwrap_or("(none)")
                ),
            });
            return None;
        };
        let part = &mut self.parts[part];
        let key = self.style.render(path, part.spec.with_collection);
        let Some(&i) = part.index.get(&key) else {
            self.report.missing.push(key);
            return None;
        };
        let entry = &mut part.entries[i];
        if entry.used && self.probing > 0 {
            self.report.missing.push(key);
            return None;
        }
        self.hits += 1;
        if entry.used {
            self.report.invalid.push(KeyProblem {
                key,
                reason: "two parts of the value map to this key".to_owned(),
            });
            return None;
        }
        entry.used = true;
        Some((key, entry.view.clone()))
    }

    /// Takes the tensor at `path` and converts it with `decode`, recording any problem.
    pub fn leaf<T>(
        &mut self,
        path: &KeyPath,
        decode: impl FnOnce(&TensorView<'d>, DtypePolicy) -> Result<T, LeafProblem>,
    ) -> Option<T> {
        let (key, view) = self.tensor(path)?;
        match decode(&view, self.policy) {
            Ok(value) => Some(value),
            Err(problem) => {
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
        let at = self
            .prefixes
            .partition_point(|k| k.as_str() < prefix.as_str());
        self.prefixes
            .get(at)
            .is_some_and(|k| k.starts_with(&prefix))
    }

    /// Reads the value at `path`, which may be wholly absent: [`Presence::Absent`] when not one
    /// of its keys is in the file (its "missing" reports are dropped). When at least one is, the
    /// read counts as usual, so that partial presence is an error.
    pub fn optional<T>(
        &mut self,
        path: &mut KeyPath,
        read: impl FnOnce(&mut KeyPath, &mut Self) -> Option<T>,
    ) -> Presence<T> {
        if !self.any_under(path) {
            return Presence::Absent;
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

    /// Tries a candidate map entry with [`Reader::optional`]; keys already read count as absent.
    pub(crate) fn probe<T>(
        &mut self,
        path: &mut KeyPath,
        read: impl FnOnce(&mut KeyPath, &mut Self) -> Option<T>,
    ) -> Presence<T> {
        self.probing += 1;
        let presence = self.optional(path, read);
        self.probing -= 1;
        presence
    }

    /// The candidate names of the map entries under `path` (whose last segment is the map's
    /// own): every name the file's keys could hold there. Flax and Haiku join an entry to its
    /// map with `_` and a list element or inner map entry to the entry with `_` again, so the key
    /// `heads_a_0.w` offers both `a` and `a_0`; reading each (shortest first) tells which is
    /// real. Names that could not be map keys are left out (and so end up unexpected).
    pub fn child_names(&self, path: &KeyPath) -> BTreeSet<String> {
        let (before, after) = self.style.child_affixes(path, false);
        let stops: &[char] = match self.style {
            Style::Flax => &['.'],
            Style::Haiku => &['.', '/'],
            Style::Objax => &[']'],
        };
        // `prefixes` holds every key and its part after the collection, sorted: the keys under
        // the map are one run of it.
        let start = self
            .prefixes
            .partition_point(|k| k.as_str() < before.as_str());
        let mut found = BTreeSet::new();
        for key in &self.prefixes[start..] {
            let Some(rest) = key.strip_prefix(before.as_str()) else {
                break;
            };
            let end = rest.find(stops).unwrap_or(rest.len());
            let child = &rest[..end];
            if !rest[end..].starts_with(after.as_str()) || check_name(child).is_err() {
                continue;
            }
            if self.style != Style::Objax {
                for (at, _) in child.match_indices('_').filter(|(at, _)| *at > 0) {
                    found.insert(child[..at].to_owned());
                }
            }
            found.insert(child.to_owned());
        }
        found
    }

    /// Finishes the read: unconsumed keys become "unexpected" unless `allow_unexpected`, in which
    /// case they are returned as ignored.
    pub fn finish(mut self, allow_unexpected: bool) -> (LoadReport, Vec<String>) {
        let mut unused = Vec::new();
        for part in &self.parts {
            for (name, entry) in part.names.iter().zip(&part.entries) {
                if !entry.used {
                    unused.push(name.clone());
                }
            }
        }
        if allow_unexpected {
            (self.report, unused)
        } else {
            self.report.unexpected.extend(unused);
            (self.report, Vec::new())
        }
    }

    /// Takes the tensor at `path` and checks it with `check`, for the first pass of an in-place
    /// load; returns the view if it can be assigned. With `allow_missing`, a missing key is not
    /// a problem.
    pub(crate) fn checked(
        &mut self,
        path: &KeyPath,
        allow_missing: bool,
        check: impl FnOnce(&TensorView<'d>, DtypePolicy) -> Result<(), LeafProblem>,
    ) -> Option<TensorView<'d>> {
        let missing_before = self.report.missing.len();
        let taken = self.tensor(path);
        if allow_missing {
            self.report.missing.truncate(missing_before);
        }
        let (key, view) = taken?;
        match check(&view, self.policy) {
            Ok(()) => Some(view),
            Err(problem) => {
                self.report.record(key, problem);
                None
            }
        }
    }
}
