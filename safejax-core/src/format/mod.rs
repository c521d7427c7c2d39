//! The safetensors byte layout: a header checked once with errors that name the key or byte
//! offset, and a streaming writer whose bytes are the official crate's.

mod header;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

use safetensors::Dtype;

use crate::error::{Error, Result};
use crate::tensor::Leaf;

pub(crate) use header::{FileHeader, Staged, header_len, split};
pub use header::{Parsed, SMALL_TENSOR, TensorRef, parse};

/// The `__metadata__` string map of a safetensors file. Sorted, so equal maps give equal bytes.
pub type Metadata = BTreeMap<String, String>;

/// The name safetensors reserves for the metadata map.
pub const METADATA_KEY: &str = "__metadata__";

/// The largest header accepted, as in the official crate.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The size of the header length that starts every file.
pub const LEN_BYTES: usize = 8;

/// Writes the header-only file of the safetensors file at `from` to `to`: its first 8 + N bytes
/// (the header's length and the JSON header), checked, and no tensor data. It stands for the
/// whole file wherever only names, dtypes and shapes matter: [`crate::Loader::check`], and
/// `#[safejax(expect = "...")]` for checkpoints too large to keep in a repository. Only the
/// header of `from` is read; `to` is replaced atomically.
///
/// ```
/// use safejax_core::{Loader, SafeParams, format};
///
/// let dir = tempfile::tempdir()?;
/// let (full, head) = (dir.path().join("model.safetensors"), dir.path().join("model.header"));
/// vec![ndarray::Array1::<f32>::zeros(1 << 20)].save(&full)?;
/// format::write_header_only(&full, &head)?;
/// assert!(std::fs::metadata(&head)?.len() < 100);
/// Loader::new().check::<Vec<ndarray::Array1<f32>>>(&head)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_header_only(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
    let from = from.as_ref();
    let head = crate::source::read_header(from)?;
    crate::source::header_of(&head).map_err(|e| crate::source::in_file(from, e))?;
    crate::io::write_atomically(to.as_ref(), |out| {
        out.write_all(&head)
            .map_err(|e| Error::io("write", to.as_ref(), e))
    })
}

/// Parses a dtype name as the header writes it (`F32`, `BF16`, `F8_E4M3`, ...).
///
/// ```
/// use safejax_core::{Dtype, format::parse_dtype};
/// assert_eq!(parse_dtype("BF16"), Some(Dtype::BF16));
/// assert_eq!(parse_dtype("float32"), None);
/// ```
pub fn parse_dtype(name: &str) -> Option<Dtype> {
    Some(match name {
        "BOOL" => Dtype::BOOL,
        "F4" => Dtype::F4,
        "F6_E2M3" => Dtype::F6_E2M3,
        "F6_E3M2" => Dtype::F6_E3M2,
        "U8" => Dtype::U8,
        "I8" => Dtype::I8,
        "F8_E5M2" => Dtype::F8_E5M2,
        "F8_E4M3" => Dtype::F8_E4M3,
        "F8_E8M0" => Dtype::F8_E8M0,
        "F8_E4M3FNUZ" => Dtype::F8_E4M3FNUZ,
        "F8_E5M2FNUZ" => Dtype::F8_E5M2FNUZ,
        "I16" => Dtype::I16,
        "U16" => Dtype::U16,
        "F16" => Dtype::F16,
        "BF16" => Dtype::BF16,
        "I32" => Dtype::I32,
        "U32" => Dtype::U32,
        "F32" => Dtype::F32,
        "C64" => Dtype::C64,
        "F64" => Dtype::F64,
        "I64" => Dtype::I64,
        "U64" => Dtype::U64,
        _ => return None,
    })
}

/// The byte size of a tensor, refusing shapes that no array can have: as in numpy and ndarray,
/// the product of the non-zero dimensions must fit in `isize`, even when another one is zero.
pub(crate) fn byte_size(dtype: Dtype, shape: &[usize]) -> Result<usize, &'static str> {
    const OVERFLOW: &str = "is too large: the product of its dimensions overflows";
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| isize::try_from(n).is_ok())
        .ok_or(OVERFLOW)?;
    let elements = if shape.contains(&0) { 0 } else { nonzero };
    let bits = elements.checked_mul(dtype.bitsize()).ok_or(OVERFLOW)?;
    if bits % 8 != 0 {
        return Err("does not fill a whole number of bytes");
    }
    Ok(bits / 8)
}

/// Checks names before anything is written: no duplicates, none reserved or empty.
pub(crate) fn check_names<'k>(names: impl IntoIterator<Item = &'k str>) -> Result<()> {
    let names = names.into_iter();
    // Sized once: a set grown name by name rehashes every name again and again.
    let mut seen = HashSet::with_capacity(names.size_hint().0);
    for name in names {
        if name.is_empty() || name == METADATA_KEY {
            return Err(Error::ReservedKey {
                key: name.to_owned(),
            });
        }
        if !seen.insert(name) {
            return Err(Error::DuplicateKey {
                key: name.to_owned(),
            });
        }
    }
    Ok(())
}

/// Refuses a leaf whose shape a reader would refuse (see [`byte_size`]), or whose byte length is
/// not what its shape and dtype need, which would shift every tensor after it.
fn check_size(name: &str, leaf: &Described<'_>) -> Result<()> {
    let Described { shape, dtype, len } = leaf;
    let reason = match byte_size(*dtype, shape) {
        Ok(size) if size == *len => return Ok(()),
        Ok(size) => {
            format!("of shape {shape:?} and dtype {dtype} holds {len} bytes instead of {size}")
        }
        Err(why) => format!("of shape {shape:?} and dtype {dtype} {why}"),
    };
    Err(Error::Invalid {
        key: name.to_owned(),
        reason,
    })
}

/// The header of a file holding `tensors` (with their `shapes`) and `metadata`, and the order in
/// which their data follows it.
///
/// The layout is the official writer's: tensors sorted by dtype, largest alignment first, then
/// by name; each entry `"name":{"dtype":..,"shape":[..],"data_offsets":[start,end]}` as the
/// crate's `Metadata` serializes it with `serde_json`, `__metadata__` first; the JSON padded with
/// spaces to a multiple of 8 bytes. The metadata map is written sorted, where the official writer
/// takes a `HashMap` and so varies from run to run. The JSON is written here, in one buffer,
/// rather than through the crate's `Metadata`, which copies every name and shape into a map
/// first (and its `serialize` reserves a buffer for the whole file).
fn header(
    tensors: &[(String, &dyn Leaf)],
    described: &[Described<'_>],
    metadata: &Metadata,
) -> Result<(Vec<u8>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let (left, right) = (&described[a], &described[b]);
        right
            .dtype
            .cmp(&left.dtype)
            .then(tensors[a].0.cmp(&tensors[b].0))
    });
    let layout_error =
        |e: serde_json::Error| Error::format(0, format!("cannot write the header: {e}"));
    let estimate: usize = tensors.iter().map(|(name, _)| name.len() + 72).sum();
    let mut json = Vec::with_capacity(LEN_BYTES + estimate + 2);
    json.extend_from_slice(&[0; LEN_BYTES]);
    json.push(b'{');
    if !metadata.is_empty() {
        json.extend_from_slice(b"\"__metadata__\":");
        serde_json::to_writer(&mut json, metadata).map_err(layout_error)?;
    }
    let mut offset = 0usize;
    for &i in &order {
        let (name, leaf) = (&tensors[i].0, &described[i]);
        let end = offset.checked_add(leaf.len).ok_or_else(|| {
            Error::format(0, format!("tensor `{name}` ends past the largest offset"))
        })?;
        if json.len() > LEN_BYTES + 1 {
            json.push(b',');
        }
        serde_json::to_writer(&mut json, name).map_err(layout_error)?;
        json.extend_from_slice(b":{\"dtype\":");
        serde_json::to_writer(&mut json, &leaf.dtype).map_err(layout_error)?;
        json.extend_from_slice(b",\"shape\":");
        serde_json::to_writer(&mut json, &*leaf.shape).map_err(layout_error)?;
        json.extend_from_slice(b",\"data_offsets\":");
        serde_json::to_writer(&mut json, &(offset, end)).map_err(layout_error)?;
        json.push(b'}');
        offset = end;
    }
    json.push(b'}');
    let padded = (json.len() - LEN_BYTES).next_multiple_of(LEN_BYTES);
    if padded as u64 > MAX_HEADER_LEN {
        return Err(Error::format(
            0,
            format!("the header would take {padded} bytes, over the limit of {MAX_HEADER_LEN}"),
        ));
    }
    json.resize(LEN_BYTES + padded, b' ');
    json[..LEN_BYTES].copy_from_slice(&(padded as u64).to_le_bytes());
    Ok((json, order))
}

/// What a leaf says of itself, asked once.
struct Described<'a> {
    shape: Cow<'a, [usize]>,
    dtype: Dtype,
    len: usize,
}

/// A checked file about to be written: its header, and the order of the tensors' data.
pub(crate) struct Layout {
    head: Vec<u8>,
    order: Vec<usize>,
    data_len: usize,
}

impl Layout {
    /// Checks `tensors` (no name twice, none reserved, every size consistent) and lays out their
    /// header, before anything is written anywhere.
    pub(crate) fn new(tensors: &[(String, &dyn Leaf)], metadata: &Metadata) -> Result<Self> {
        check_names(tensors.iter().map(|(name, _)| name.as_str()))?;
        // Each leaf asked once, into one list: the sort and the header read that, not leaves
        // wherever they are in memory.
        let described: Vec<Described<'_>> = tensors
            .iter()
            .map(|(_, leaf)| Described {
                shape: leaf.shape(),
                dtype: leaf.dtype(),
                len: leaf.data_len(),
            })
            .collect();
        for ((name, _), leaf) in tensors.iter().zip(&described) {
            check_size(name, leaf)?;
        }
        let (head, order) = header(tensors, &described, metadata)?;
        let data_len = described.iter().map(|leaf| leaf.len).sum();
        Ok(Layout {
            head,
            order,
            data_len,
        })
    }

    /// The file's length prefix and header, without its data: what a header check reads.
    pub(crate) fn head(&self) -> &[u8] {
        &self.head
    }

    /// The size of the whole file.
    pub(crate) fn file_len(&self) -> usize {
        self.head.len().saturating_add(self.data_len)
    }

    /// Writes the file to `out`, streaming the data of `tensors` (those it was laid out for):
    /// the bytes are those of the official writer (see [`header`]).
    pub(crate) fn write<W: Write>(
        &self,
        tensors: &[(String, &dyn Leaf)],
        mut out: W,
    ) -> Result<()> {
        out.write_all(&self.head).map_err(Error::Write)?;
        for &i in &self.order {
            out.write_all(&tensors[i].1.data()).map_err(Error::Write)?;
        }
        out.flush().map_err(Error::Write)
    }

    /// The whole file in memory, in a buffer reserved once (growing a large buffer copies it
    /// and faults in new pages, which costs more than the writing itself).
    pub(crate) fn to_vec(&self, tensors: &[(String, &dyn Leaf)]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.file_len());
        self.write(tensors, &mut out)?;
        Ok(out)
    }
}

/// Writes `tensors` and `metadata` as a safetensors file to `out`.
pub(crate) fn write<W: Write>(
    tensors: &[(String, &dyn Leaf)],
    metadata: &Metadata,
    out: W,
) -> Result<()> {
    Layout::new(tensors, metadata)?.write(tensors, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    use safetensors::View;

    /// Adapts a leaf to the official crate's writer.
    struct LeafView<'a>(&'a dyn Leaf, Vec<usize>);

    impl View for &LeafView<'_> {
        fn dtype(&self) -> Dtype {
            self.0.dtype()
        }

        fn shape(&self) -> &[usize] {
            &self.1
        }

        fn data(&self) -> Cow<'_, [u8]> {
            self.0.data()
        }

        fn data_len(&self) -> usize {
            self.0.data_len()
        }
    }
    use crate::io::Saver;
    use crate::tensor::Tensor;
    use ndarray::array;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    fn write_vec(tensors: &[(String, &dyn Leaf)], metadata: &Metadata) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        write(tensors, metadata, &mut out)?;
        Ok(out)
    }

    #[test]
    fn bytes_equal_the_official_writer() {
        let a = array![[1.0f32, 2.0], [3.0, 4.0]];
        let b = array![7i32, 8, 9];
        let c = 1.5f64;
        let tensors: Vec<(String, &dyn Leaf)> =
            vec![("z.a".into(), &a), ("b".into(), &b), ("m.c".into(), &c)];
        let one: Metadata = [("format".to_owned(), "flax".to_owned())].into();
        for metadata in [Metadata::new(), one] {
            let ours = write_vec(&tensors, &metadata).unwrap_or_else(|e| panic!("{e}"));
            let views: Vec<_> = tensors
                .iter()
                .map(|(_, l)| LeafView(*l, l.shape().into_owned()))
                .collect();
            let info = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
            let theirs = safetensors::serialize(
                tensors.iter().map(|(n, _)| n.as_str()).zip(views.iter()),
                info,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ours, theirs);
        }
    }

    /// Any dtype the format has, with a shape that fills whole bytes.
    fn tensor() -> impl Strategy<Value = Tensor> {
        use Dtype::*;
        const DTYPES: [Dtype; 22] = [
            BOOL,
            F4,
            F6_E2M3,
            F6_E3M2,
            U8,
            I8,
            F8_E5M2,
            F8_E4M3,
            F8_E8M0,
            F8_E4M3FNUZ,
            F8_E5M2FNUZ,
            I16,
            U16,
            F16,
            BF16,
            I32,
            U32,
            F32,
            C64,
            F64,
            I64,
            U64,
        ];
        let dtype = prop::sample::select(DTYPES.to_vec());
        (dtype, vec(0usize..4, 0..4)).prop_flat_map(|(dtype, mut shape)| {
            if dtype.bitsize() % 8 != 0 {
                shape.push(8);
            }
            let len = shape.iter().product::<usize>() * dtype.bitsize() / 8;
            vec(any::<u8>(), len).prop_map(move |data| {
                Tensor::new(dtype, shape.clone(), data).unwrap_or_else(|e| panic!("{e}"))
            })
        })
    }

    /// A map key: anything but the separators of the three styles and NUL, too short to be
    /// reserved.
    const NAME: &str = "[^./:()\\[\\]\\x00]{1,8}";

    fn official(
        tensors: &BTreeMap<String, Tensor>,
        metadata: &Metadata,
    ) -> std::result::Result<Vec<u8>, safetensors::SafeTensorError> {
        let info = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
        safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t.view())), info)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn saver_bytes_equal_the_official_writer(
            tensors in btree_map(NAME, tensor(), 0..8),
            entry in prop::option::of(("[ -~]{0,8}", "\\PC{0,8}")),
        ) {
            let metadata: Metadata = entry.into_iter().collect();
            let ours = Saver::new().metadata(metadata.clone()).to_bytes(&tensors);
            let theirs = official(&tensors, &metadata);
            prop_assert_eq!(ours.ok(), theirs.ok());
        }

        /// With two or more metadata entries the official order varies from run to run; ours is
        /// sorted, and otherwise the bytes are the same.
        #[test]
        fn sorted_metadata_is_the_only_difference(
            tensors in btree_map(NAME, tensor(), 0..4),
            metadata in btree_map("[ -~]{0,8}", "[ -~]{0,8}", 2..6),
        ) {
            let ours = Saver::new().metadata(metadata.clone()).to_bytes(&tensors)
                .unwrap_or_else(|e| panic!("{e}"));
            let theirs = official(&tensors, &metadata).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(ours.len(), theirs.len());
            let header_end = LEN_BYTES + u64::from_le_bytes(ours[..8].try_into().unwrap_or_default()) as usize;
            prop_assert_eq!(&ours[..LEN_BYTES], &theirs[..LEN_BYTES]);
            prop_assert_eq!(&ours[header_end..], &theirs[header_end..]);
            let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(&b[LEN_BYTES..header_end]).ok();
            prop_assert_eq!(json(&ours), json(&theirs));
            let parsed = parse(&ours).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(parsed.metadata, metadata);
        }
    }

    /// An empty leaf whose shape no reader accepts.
    struct Huge;

    const HUGE: usize = 1 << 40;

    impl Leaf for Huge {
        fn dtype(&self) -> Dtype {
            Dtype::F32
        }

        fn shape(&self) -> Cow<'_, [usize]> {
            Cow::Borrowed(&[0, HUGE, HUGE])
        }

        fn data(&self) -> Cow<'_, [u8]> {
            Cow::Borrowed(&[])
        }

        fn data_len(&self) -> usize {
            0
        }
    }

    #[test]
    fn shapes_a_reader_refuses_are_not_written() {
        let too_large = "is too large: the product of its dimensions overflows";
        let err =
            Tensor::new(Dtype::F32, vec![0, HUGE, HUGE], Vec::new()).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(format!(
                "tensor: a F32 tensor of shape [0, {HUGE}, {HUGE}] {too_large}"
            ))
        );
        let tensors: Vec<(String, &dyn Leaf)> = vec![("w".into(), &Huge)];
        let mut out = Vec::new();
        let err = write(&tensors, &Metadata::new(), &mut out).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(format!(
                "`w` of shape [0, {HUGE}, {HUGE}] and dtype F32 {too_large}"
            ))
        );
        assert!(out.is_empty());
    }

    /// A leaf whose `data_len` disagrees with its shape.
    struct Lying;

    impl Leaf for Lying {
        fn dtype(&self) -> Dtype {
            Dtype::I32
        }

        fn shape(&self) -> Cow<'_, [usize]> {
            Cow::Borrowed(&[2])
        }

        fn data(&self) -> Cow<'_, [u8]> {
            Cow::Borrowed(&[0; 4])
        }

        fn data_len(&self) -> usize {
            4
        }
    }

    #[test]
    fn leaves_whose_length_lies_are_not_written() {
        let tensors: Vec<(String, &dyn Leaf)> = vec![("w".into(), &Lying)];
        let mut out = Vec::new();
        let err = write(&tensors, &Metadata::new(), &mut out).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("`w` of shape [2] and dtype I32 holds 4 bytes instead of 8".to_owned())
        );
        assert!(out.is_empty());
    }

    #[test]
    fn metadata_is_written_sorted() {
        let a = array![1u8];
        let tensors: Vec<(String, &dyn Leaf)> = vec![("a".into(), &a)];
        let metadata: Metadata = (0..20)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        let first = write_vec(&tensors, &metadata).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..5 {
            assert_eq!(
                write_vec(&tensors, &metadata).unwrap_or_else(|e| panic!("{e}")),
                first
            );
        }
        let parsed = parse(&first).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.metadata, metadata);
        let text = String::from_utf8_lossy(&first);
        assert!(
            text.contains(r#"{"__metadata__":{"k0":"v0","k1":"v1","k10":"v10""#),
            "{text}"
        );
    }

    #[test]
    fn names_are_checked_before_writing() {
        let a = array![1u8];
        let dup: Vec<(String, &dyn Leaf)> = vec![("a".into(), &a), ("a".into(), &a)];
        let mut out = Vec::new();
        let err = write(&dup, &Metadata::new(), &mut out)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("key `a` is produced twice; rename one of the fields or map entries")
        );
        assert!(out.is_empty());
        let reserved: Vec<(String, &dyn Leaf)> = vec![(METADATA_KEY.into(), &a)];
        assert!(matches!(
            write(&reserved, &Metadata::new(), &mut out),
            Err(Error::ReservedKey { .. })
        ));
        assert!(out.is_empty());
    }
}
