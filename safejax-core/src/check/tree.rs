//! The key tree of a checker's table: every searchable name of the files, as a radix tree of
//! bytes laid out in one byte string, so that const code follows a key as it is rendered, a byte
//! at a time, and never hashes or compares it whole.
//!
//! This file is shared: the runtime builds the tree for `Loader::check`,
//! and the derive (which holds the same file) builds it at macro time for `expect`. It refers to
//! nothing outside the standard library, so that it compiles in both.
//!
//! A node is, in order: its label's length (one byte), the label (the bytes that lead from its
//! parent to it, at most 255), its number of children (two bytes, big-endian), its number of
//! terms (four bytes), each child's first byte, each child's offset (four bytes each), and its
//! terms: for each name whose text ends at the node, the name's id and the number of the
//! collection before its text (four bytes each). The root is at offset 0.

/// A name's searchable text: the text, the name's id and the number of the collection before
/// the text.
pub type Text<'a> = (&'a [u8], u32, u32);

/// The tree of `texts`, which must be sorted by text.
pub fn build(texts: &[Text<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    // Nodes to write: the texts under the node, the depth its label starts at, and where its
    // parent holds its offset (none for the root).
    let mut todo: Vec<(usize, usize, usize, Option<usize>)> = Vec::new();
    todo.push((0, texts.len(), 0, None));
    while let Some((lo, hi, depth, slot)) = todo.pop() {
        let at = out.len();
        if let Some(slot) = slot {
            out[slot..slot + 4].copy_from_slice(&(at as u32).to_be_bytes());
        }
        // The label: the texts' common bytes from `depth` on (the first and last text's, as
        // they are sorted), at most 255 of them.
        let end = match texts.get(lo..hi) {
            Some([first, .., last]) => {
                let (a, b) = (first.0, last.0);
                let mut end = depth;
                while end < a.len() && end < b.len() && a[end] == b[end] && end - depth < 255 {
                    end += 1;
                }
                end
            }
            Some([only]) => only.0.len().min(depth + 255),
            _ => depth,
        };
        let label = match texts.get(lo) {
            Some(first) if hi > lo => &first.0[depth..end],
            _ => &[][..],
        };
        // The texts that end here come first.
        let ends = texts[lo..hi]
            .iter()
            .take_while(|t| t.0.len() == end)
            .count();
        let mut children: Vec<(u8, usize, usize)> = Vec::new();
        let mut i = lo + ends;
        while i < hi {
            let b = texts[i].0[end];
            let mut j = i + 1;
            while j < hi && texts[j].0[end] == b {
                j += 1;
            }
            children.push((b, i, j));
            i = j;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label);
        out.extend_from_slice(&(children.len() as u16).to_be_bytes());
        out.extend_from_slice(&(ends as u32).to_be_bytes());
        out.extend(children.iter().map(|c| c.0));
        let slots = out.len();
        out.resize(slots + 4 * children.len(), 0);
        for t in &texts[lo..lo + ends] {
            out.extend_from_slice(&t.1.to_be_bytes());
            out.extend_from_slice(&t.2.to_be_bytes());
        }
        for (k, &(_, from, to)) in children.iter().enumerate().rev() {
            todo.push((from, to, end, Some(slots + 4 * k)));
        }
    }
    out
}

/// The searchable names of files of `counts[p]` tensors each (`key(p, e)` the name of tensor `e`
/// of file `p`): each as (file, tensor, where its text starts in the name), for the whole name
/// and, with `strip`, for the text after its first `.` too (so that a search finds a key
/// without its collection); sorted by text. A header is at most `MAX_HEADER_LEN` bytes: its
/// counts and offsets fit in u32.
pub fn searchable<'k>(
    counts: &[usize],
    key: impl Fn(usize, usize) -> &'k str,
    strip: bool,
) -> Vec<(u32, u32, u32)> {
    let total: usize = counts.iter().sum();
    let mut names = Vec::with_capacity(if strip { 2 * total } else { total });
    // Whole keys first, then the parts after the dots: a file's entries usually come sorted
    // (writers sort them), and so do their parts after a shared collection, so the sort below
    // mostly merges a few sorted runs instead of sorting.
    for (part, &count) in counts.iter().enumerate() {
        names.extend((0..count).map(|entry| (part as u32, entry as u32, 0)));
    }
    if strip {
        for (part, &count) in counts.iter().enumerate() {
            for entry in 0..count {
                if let Some(dot) = key(part, entry).find('.') {
                    names.push((part as u32, entry as u32, dot as u32 + 1));
                }
            }
        }
    }
    let text = |&(p, e, s): &(u32, u32, u32)| &key(p as usize, e as usize)[s as usize..];
    names.sort_by(|a, b| text(a).cmp(text(b)));
    names
}

/// A table's lists, built from its searchable names.
#[derive(Debug)]
pub struct Lists<'k> {
    /// The searchable names, twelve bytes each: file, tensor, start (big-endian).
    pub names: Vec<u8>,
    /// The tree of their texts, each term the tensor's flag (its file's first flag plus the
    /// tensor) and the number of the collection before the text.
    pub tree: Vec<u8>,
    /// The collections the terms are numbered by: the distinct parts before the first `.` of
    /// the names whose text starts after it, sorted (a number is a place here plus one, and 0
    /// is a name's whole text).
    pub collections: Vec<&'k str>,
}

/// The lists of a table of files whose tensors' flags start at `firsts[p]`, for its `names`
/// ([`searchable`]; `key` as there).
pub fn lists<'k>(
    names: &[(u32, u32, u32)],
    firsts: &[usize],
    key: impl Fn(usize, usize) -> &'k str,
) -> Lists<'k> {
    let name = |&(p, e, _): &(u32, u32, u32)| key(p as usize, e as usize);
    let before = |n: &(u32, u32, u32)| &name(n)[..(n.2 as usize).saturating_sub(1)];
    let mut collections: Vec<&str> = names.iter().map(before).filter(|c| !c.is_empty()).collect();
    collections.sort_unstable();
    collections.dedup();
    let texts: Vec<Text<'_>> = names
        .iter()
        .map(|n| {
            let number = match collections.binary_search(&before(n)) {
                Ok(at) if n.2 > 0 => at as u32 + 1,
                _ => 0,
            };
            let flag = firsts[n.0 as usize] as u32 + n.1;
            (&name(n).as_bytes()[n.2 as usize..], flag, number)
        })
        .collect();
    let mut bytes = Vec::with_capacity(12 * names.len());
    for &(part, entry, start) in names {
        bytes.extend_from_slice(&part.to_be_bytes());
        bytes.extend_from_slice(&entry.to_be_bytes());
        bytes.extend_from_slice(&start.to_be_bytes());
    }
    Lists {
        names: bytes,
        tree: build(&texts),
        collections,
    }
}

/// The dtypes' header names, in the order of their numbers in a table: a dtype's number is its
/// place here plus one (0 for none).
pub const DTYPES: [&str; 22] = [
    "BOOL",
    "U8",
    "I8",
    "I16",
    "U16",
    "F16",
    "BF16",
    "I32",
    "U32",
    "F32",
    "F64",
    "I64",
    "U64",
    "F8_E5M2",
    "F8_E4M3",
    "F8_E8M0",
    "F4",
    "F6_E2M3",
    "F6_E3M2",
    "C64",
    "F8_E4M3FNUZ",
    "F8_E5M2FNUZ",
];

/// The bytes of a tensor in a table's list ([`Tensors::records`]).
pub const TENSOR_BYTES: usize = 13;

/// A file's tensors, as a table holds them: a few literals, not a constant per tensor.
#[derive(Debug, Default)]
pub struct Tensors {
    /// The names, one after another.
    pub names: String,
    /// Per tensor, [`TENSOR_BYTES`] bytes: where its name ends in `names`, where its
    /// dimensions start in `dims` (in dimensions), its rank (four bytes each, big-endian), and
    /// its dtype's number in [`DTYPES`].
    pub records: Vec<u8>,
    /// The dimensions, one after another, eight bytes each, big-endian.
    pub dims: Vec<u8>,
}

/// [`Tensors`] of `tensors`: each its name, its dtype's number and its shape. A header is at
/// most `MAX_HEADER_LEN` bytes: its offsets and counts fit in u32.
pub fn tensors<'a, S: IntoIterator<Item = u64>>(
    tensors: impl IntoIterator<Item = (&'a str, u8, S)>,
) -> Tensors {
    let mut out = Tensors::default();
    let mut dims = 0u32;
    for (name, code, shape) in tensors {
        out.names.push_str(name);
        let start = dims;
        for d in shape {
            out.dims.extend_from_slice(&d.to_be_bytes());
            dims += 1;
        }
        let mut record = [0u8; TENSOR_BYTES];
        record[..4].copy_from_slice(&(out.names.len() as u32).to_be_bytes());
        record[4..8].copy_from_slice(&start.to_be_bytes());
        record[8..12].copy_from_slice(&(dims - start).to_be_bytes());
        record[12] = code;
        out.records.extend_from_slice(&record);
    }
    out
}
