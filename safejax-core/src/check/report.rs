//! The two users of the checker: [`crate::Loader::check`] at run time, which turns findings into
//! a [`LoadReport`], and `#[safejax(expect = "...")]` at compile time, which turns them into the
//! text of a compile error.

use super::path::Buf;
use super::tree::{Tensors, tensors};
use super::{Checker, FINDING, MAX_KEY, NameRef, Out, Table, TablePart, What, code, dtype_name};
use crate::LoadReport;
use crate::schema::Kind;
use crate::style::Style;

/// Every key of `counts[p]` keys in each file `p` (`key(p, e)`), and for Flax and Haiku its
/// text after the first `.` too, so that a search finds a key without its collection: sorted by
/// text ([`super::tree::searchable`]).
pub(crate) fn sorted_names<'k>(
    counts: &[usize],
    key: impl Fn(usize, usize) -> &'k str,
    style: Style,
) -> Vec<NameRef> {
    super::tree::searchable(counts, key, style != Style::Objax)
        .into_iter()
        .map(|(part, entry, start)| NameRef { part, entry, start })
        .collect()
}

/// What a strict load of a value of `kind` from these headers would report about names, dtypes
/// and ranks, and the keys ignored under `allow_unexpected`.
pub(crate) fn check_headers(
    kind: &Kind,
    style: Style,
    policy: crate::DtypePolicy,
    leniency: (bool, bool),
    files: &[(
        &crate::reader::PartSpec,
        &crate::format::FileHeader<'_>,
        &str,
    )],
) -> (LoadReport, Vec<String>) {
    let (allow_unexpected, allow_missing) = leniency;
    let collections: Vec<Option<Vec<&str>>> = files
        .iter()
        .map(|(spec, ..)| {
            spec.collections
                .as_ref()
                .map(|list| list.iter().map(String::as_str).collect())
        })
        .collect();
    let laid_out: Vec<(usize, Tensors)> = files
        .iter()
        .map(|(_, header, _)| {
            let mut order: Vec<usize> = (0..header.len()).collect();
            order.sort_by_key(|&i| header.tensor(i).0);
            let list = order.into_iter().map(|i| {
                let (name, dtype, shape) = header.tensor(i);
                (name, code(dtype), shape.iter().map(|&d| d as u64))
            });
            (header.len(), tensors(list))
        })
        .collect();
    let mut first = 0;
    let parts: Vec<TablePart<'_>> = files
        .iter()
        .zip(&collections)
        .zip(&laid_out)
        .map(|(((spec, _, file), collections), (len, tensors))| {
            let part = TablePart {
                file,
                collections: collections.as_deref(),
                with_collection: spec.with_collection,
                len: *len,
                names: &tensors.names,
                tensors: &tensors.records,
                dims: &tensors.dims,
                first,
            };
            first += len;
            part
        })
        .collect();
    let counts: Vec<usize> = parts.iter().map(|p| p.len).collect();
    let firsts: Vec<usize> = parts.iter().map(|p| p.first).collect();
    let key = |p: usize, e: usize| parts[p].name(e);
    let names = super::tree::searchable(&counts, key, style != Style::Objax);
    let lists = super::tree::lists(&names, &firsts, key);
    let table = Table {
        parts: &parts,
        names: &lists.names,
        tree: &lists.tree,
        collections: &lists.collections,
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
        let mut report = LoadReport::default();
        for finding in &findings[..count] {
            let key = String::from_utf8_lossy(&text[finding.start..][..finding.len]).into_owned();
            record(&mut report, &table, key, finding.what);
        }
        if allow_missing {
            report.missing.clear();
        }
        let mut unused = Vec::new();
        for part in &parts {
            for i in 0..part.len {
                if !used[part.first + i] {
                    unused.push(part.name(i).to_owned());
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

fn record(report: &mut LoadReport, table: &Table<'_>, key: String, what: What) {
    use crate::error::{DtypeMismatch, ExpectedShape, KeyProblem, ShapeMismatch};
    let part = |part: u32| &table.parts[part as usize];
    let invalid = |report: &mut LoadReport, key, reason: String| {
        report.invalid.push(KeyProblem { key, reason });
    };
    match what {
        What::Missing => report.missing.push(key),
        What::Rank { expected, found } => report.shape_mismatches.push(ShapeMismatch {
            key,
            expected: ExpectedShape::Rank(expected),
            found: part(found.0).shape(found.1 as usize),
        }),
        What::Dtype { expected, found } => report.dtype_mismatches.push(DtypeMismatch {
            key,
            expected,
            found,
        }),
        What::Twice => invalid(report, key, "two parts of the value map to this key".into()),
        What::TooDeep => invalid(report, key, crate::key::depth_reason()),
        What::NotAContainer(p, e, list) => {
            let (p, e) = (part(p), e as usize);
            let what = if list { "list" } else { "map" };
            let reason = format!(
                "is a tensor in the file, but the field here is a {what}: did you mean `{}`?",
                crate::reader::rust_type(p.dtype(e), p.rank(e))
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
    pub(crate) const fn new() -> Self {
        Message {
            bytes: [0; MESSAGE_LEN],
            len: 0,
        }
    }

    pub(crate) const fn push(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() && self.len < MESSAGE_LEN - 64 {
            self.bytes[self.len] = bytes[i];
            self.len += 1;
            i += 1;
        }
    }

    pub(crate) const fn push_bytes(&mut self, bytes: &[u8]) {
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

    /// The shape of tensor `e` of `part`.
    const fn push_shape(&mut self, part: &TablePart<'_>, e: usize) {
        self.push("[");
        let mut i = 0;
        while i < part.rank(e) {
            if i > 0 {
                self.push(", ");
            }
            self.push_usize(part.dim(e, i));
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
    let mut m = Message::new();
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
            What::Missing if table.parts.len() > 1 => m.push("missing from the files: "),
            What::Missing => m.push("missing from the file: "),
            What::Rank { .. } => m.push("rank differs: "),
            What::Dtype { .. } => m.push("dtype differs: "),
            _ => m.push("cannot be read: "),
        }
        m.push_bytes(key);
        match finding.what {
            What::Rank { expected, found } => {
                m.push(" (the field has rank ");
                m.push_usize(expected);
                m.push(", the file shape ");
                m.push_shape(&table.parts[found.0 as usize], found.1 as usize);
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
                let (part, entry) = (&table.parts[part as usize], entry as usize);
                m.push(" (a ");
                m.push(dtype_name(part.dtype(entry)));
                m.push(" tensor of shape ");
                m.push_shape(part, entry);
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
        while e < part.len {
            if !out.used[part.first + e] {
                if lines < MESSAGE_LINES {
                    m.push("\n  not read by the struct: ");
                    m.push(part.name(e));
                    if table.parts.len() > 1 {
                        m.push(" (in `");
                        m.push(part.file);
                        m.push("`)");
                    }
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

pub(crate) const fn style_name(style: Style) -> &'static str {
    match style {
        Style::Flax => "flax",
        Style::Haiku => "haiku",
        Style::Objax => "objax",
    }
}
