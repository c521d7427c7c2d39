//! Values that borrow their tensors from the file's bytes: loads that copy nothing.
//!
//! [`SafeView<'a>`] is to [`SafeParams`] what serde's `Deserialize<'de>` is to an owned
//! deserialization: a value whose leaves are `ArrayView<'a, T, D>` (or the official crate's
//! `TensorView<'a>`) borrows the bytes it is read from, which must be in memory: a byte slice, or
//! a [`MappedFile`]. Such a load costs the header alone, whatever the size of the data. Keys,
//! naming and the strict report are those of [`SafeParams`]; `#[derive(SafeParams)]` with
//! `#[safejax(borrow)]` on a struct with a lifetime implements this trait instead.
//!
//! A view is refused, with the key and the tensor's byte offset, where it cannot be made without
//! a copy: a tensor whose bytes are not aligned for its element type (safetensors does not promise
//! alignment), a dtype other than the view's, a big-endian host. Bool tensors are checked to hold
//! only 0 and 1 before they are viewed.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use ndarray::{Array, ArrayView, Dimension, IxDyn};
use safetensors::tensor::TensorView;

use crate::dtype::Element;
use crate::error::{Error, ExpectedShape, LeafProblem, Result};
use crate::format::TensorRef;
use crate::io::{Loaded, Loader, Saver};
use crate::key::KeyPath;
use crate::params::{
    LIST_CLASS, MAP_CLASS, SafeParams, Visitor, list_suffix, map_suffix, read_array, visit_array,
    visit_entries, visit_list, visit_option,
};
use crate::reader::{PartSpec, Reader};
use crate::style::Style;
use crate::tensor::{Leaf, Tensor};

/// A value whose tensors may borrow the bytes of the file it is read from (`'a`).
///
/// Implemented by `#[derive(SafeParams)]` for `#[safejax(borrow)]` structs (and, by copying, for
/// the others), by `ArrayView<'a, T, D>`
/// and the official crate's `TensorView<'a>`, by the owned leaves (which copy), and by `Vec`,
/// arrays, `Option`, `Box`, `Arc` and string-keyed maps of those.
///
/// ```
/// use ndarray::{ArrayView1, array};
/// use safejax_core::{Loader, SafeParams, SafeView};
///
/// let bytes = vec![array![1.0f32, 2.0], array![3.0f32]].to_bytes()?;
/// let views = Loader::new().view::<Vec<ArrayView1<f32>>>(&bytes)?.value;
/// assert_eq!(views[1], array![3.0f32]);
/// // The view's data is the file's.
/// assert!(bytes.as_ptr_range().contains(&views[0].as_ptr().cast()));
/// assert_eq!(SafeView::keys(&views)?, ["0", "1"]);
/// # Ok::<(), safejax_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be viewed by safejax",
    label = "not a tensor view, a tensor, a scalar or a `#[derive(SafeParams)]` type",
    note = "fields of a `#[safejax(borrow)]` struct must be `ndarray::ArrayView`s, owned arrays, scalars, `safejax::Tensor`, `TensorView`s, types deriving `SafeParams`, or Vec, arrays, Option, Box, Arc and String-keyed maps of those"
)]
pub trait SafeView<'a>: Sized {
    /// The style `view` and `keys` use when this type is the root.
    const STYLE: Style = Style::Flax;

    /// Visits every leaf, with its key path.
    fn visit_view<'v>(&'v self, path: &mut KeyPath, visitor: &mut dyn Visitor<'v>);

    /// Reads a value from `reader`, borrowing its bytes where it can; `None` when something was
    /// wrong, which `reader` recorded.
    fn read_view(path: &mut KeyPath, reader: &mut Reader<'a>) -> Option<Self>;

    /// What may follow the name of a map entry holding this value: see
    /// [`SafeParams::entry_suffix`].
    fn view_entry_suffix(rest: &str) -> bool {
        rest.is_empty()
    }

    /// The keys this value writes in `style`, sorted.
    fn keys_in(&self, style: Style) -> Result<Vec<String>> {
        Saver::new()
            .style(style)
            .keys_with(|path, visitor| self.visit_view(path, visitor), style)
    }

    /// The keys this value writes in its default style, sorted.
    fn keys(&self) -> Result<Vec<String>> {
        self.keys_in(Self::STYLE)
    }

    /// Views `bytes`, strictly: every key needed, none left over.
    fn view(bytes: &'a [u8]) -> Result<Self> {
        Ok(Loader::new().style(Self::STYLE).view(bytes)?.value)
    }
}

impl Loader {
    /// Loads a value that borrows its tensors from `bytes` (a [`SafeView`]): nothing is copied
    /// but the tensors of owned leaves, so the cost is the header's.
    pub fn view<'a, T: SafeView<'a>>(&self, bytes: &'a [u8]) -> Result<Loaded<T>> {
        let mut parsed = crate::format::parse(bytes)?;
        let metadata = std::mem::take(&mut parsed.metadata);
        let style = self.style_or(T::STYLE);
        let mut reader = Reader::new(style, self.policy(), vec![(PartSpec::whole(), parsed)]);
        let value = T::read_view(&mut KeyPath::new(), &mut reader);
        self.finish(reader, value, metadata)
    }
}

/// A file mapped into memory, for values that borrow their tensors from it.
///
/// ```
/// use ndarray::{ArrayView1, array};
/// use safejax_core::{Loader, MappedFile, SafeParams};
///
/// let dir = tempfile::tempdir().map_err(|e| safejax_core::Error::Write(e))?;
/// let path = dir.path().join("weights.safetensors");
/// vec![array![1.0f32, 2.0], array![3.0f32]].save(&path)?;
/// // SAFETY: nothing writes the file while it is mapped.
/// let file = unsafe { MappedFile::open(&path)? };
/// let views = Loader::new().view::<Vec<ArrayView1<f32>>>(file.bytes())?.value;
/// assert_eq!(views, [array![1.0f32, 2.0], array![3.0f32]]);
/// # Ok::<(), safejax_core::Error>(())
/// ```
#[derive(Debug)]
pub struct MappedFile {
    map: memmap2::Mmap,
}

impl MappedFile {
    /// Maps the file at `path`.
    ///
    /// # Safety
    ///
    /// Views borrow the mapped bytes as shared references, which must not change while they
    /// live: the file must not be written, truncated or replaced in place (a rename over it is
    /// fine) while this map or any view of it exists. A write changes the views' data under
    /// them, which is undefined behavior; a truncation makes the next touch of a lost page kill
    /// the process with `SIGBUS`. Saves by safejax replace files by renaming, and so are safe.
    pub unsafe fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        // SAFETY: the caller promises what `memmap2::Mmap::map` requires: that the file is
        // not modified while it is mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("map", path, e))?;
        Ok(MappedFile { map })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// The bytes of a tensor for a view: in memory the caller gave, or why not.
fn borrowed<'d>(tensor: &TensorRef<'_, 'd>) -> Result<&'d [u8], LeafProblem> {
    tensor.borrowed().ok_or_else(|| {
        LeafProblem::Value(
            "cannot be viewed: its bytes are not in memory (view bytes or a `MappedFile`)"
                .to_owned(),
        )
    })
}

/// Views a tensor as an array of `T`, with no copy.
fn array_view<'d, T: Element, D: Dimension>(
    tensor: &TensorRef<'_, 'd>,
) -> Result<ArrayView<'d, T, D>, LeafProblem> {
    let shape = tensor.shape();
    if let Some(rank) = D::NDIM
        && rank != shape.len()
    {
        return Err(LeafProblem::Shape {
            expected: ExpectedShape::Rank(rank),
            found: shape.to_vec(),
        });
    }
    if tensor.dtype() != T::DTYPE {
        return Err(LeafProblem::Dtype {
            expected: T::DTYPE,
            found: tensor.dtype(),
        });
    }
    let values = T::view_le(borrowed(tensor)?).map_err(|why| {
        LeafProblem::Value(format!(
            "cannot be viewed as `{}` at byte {}: {why}",
            std::any::type_name::<T>(),
            tensor.offset()
        ))
    })?;
    ArrayView::from_shape(IxDyn(shape), values)
        .and_then(|a| a.into_dimensionality::<D>())
        .map_err(|e| LeafProblem::Value(format!("cannot view an array of shape {shape:?}: {e}")))
}

impl<'a, T: Element, D: Dimension> SafeView<'a> for ArrayView<'a, T, D> {
    fn visit_view<'v>(&'v self, path: &mut KeyPath, visitor: &mut dyn Visitor<'v>) {
        visitor.leaf(path, self);
    }

    fn read_view(path: &mut KeyPath, reader: &mut Reader<'a>) -> Option<Self> {
        reader.leaf(path, |tensor, _| array_view(tensor))
    }
}

impl Leaf for TensorView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        TensorView::dtype(self)
    }

    fn shape(&self) -> std::borrow::Cow<'_, [usize]> {
        std::borrow::Cow::Borrowed(TensorView::shape(self))
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(TensorView::data(self))
    }

    fn data_len(&self) -> usize {
        TensorView::data(self).len()
    }
}

impl<'a> SafeView<'a> for TensorView<'a> {
    fn visit_view<'v>(&'v self, path: &mut KeyPath, visitor: &mut dyn Visitor<'v>) {
        visitor.leaf(path, self);
    }

    fn read_view(path: &mut KeyPath, reader: &mut Reader<'a>) -> Option<Self> {
        reader.leaf(path, |tensor, _| {
            let bytes = borrowed(tensor)?;
            TensorView::new(tensor.dtype(), tensor.shape().to_vec(), bytes)
                .map_err(|e| LeafProblem::Value(e.to_string()))
        })
    }
}

/// Owned leaves are viewed by copying, as they are read.
macro_rules! owned_view {
    ($([$($generics:tt)*] $ty:ty),* $(,)?) => {$(
        impl<'a, $($generics)*> SafeView<'a> for $ty {
            fn visit_view<'v>(&'v self, path: &mut KeyPath, visitor: &mut dyn Visitor<'v>) {
                SafeParams::visit(self, path, visitor);
            }

            fn read_view(path: &mut KeyPath, reader: &mut Reader<'a>) -> Option<Self> {
                <$ty as SafeParams>::read(path, reader)
            }
        }
    )*};
}

owned_view!(
    [T: Element, D: Dimension] Array<T, D>,
    [] Tensor,
    [] f32,
    [] f64,
    [] half::f16,
    [] half::bf16,
    [] i8,
    [] i16,
    [] i32,
    [] i64,
    [] u8,
    [] u16,
    [] u32,
    [] u64,
    [] bool,
    [] (),
    [T: ?Sized] PhantomData<T>,
);

impl<'a, T: SafeView<'a>> SafeView<'a> for Vec<T> {
    fn visit_view<'v>(&'v self, path: &mut KeyPath, visitor: &mut dyn Visitor<'v>) {
        visit_list(self, path, visitor, T::visit_view);
    }

    fn view_entry_suffix(rest: &str) -> bool {
        list_suffix(rest, T::view_entry_suffix)
    }

    fn read_view(path: &mut KeyPath, reader: &mut Reader<'a>) -> Option<Self> {
        path.default_class(LIST_CLASS);
        reader.elements(path, T::read_view)
    }
}

impl<'a, T: SafeView<'a>, const N: usize> SafeView<'a> for [T; N] {
    fn visit_view<'v>(&'v self, path: &mut KeyPath, visitor: &mut dyn Visitor<'v>) {
        visit_array(self, path, visitor, T::visit_view);
    }

    fn view_entry_suffix(rest: &str) -> bool {
        list_suffix(rest, T::view_entry_suffix)
    }

    fn read_view(path: &mut KeyPath, reader: &mut Reader<'a>) -> Option<Self> {
        read_array(path, reader, T::read_view)
    }
}

impl<'a, T: SafeView<'a>> SafeView<'a> for Option<T> {
    fn visit_view<'v>(&'v self, path: &mut KeyPath, visitor: &mut dyn Visitor<'v>) {
        visit_option(self, path, visitor, T::visit_view);
    }

    fn view_entry_suffix(rest: &str) -> bool {
        T::view_entry_suffix(rest)
    }

    fn read_view(path: &mut KeyPath, reader: &mut Reader<'a>) -> Option<Self> {
        reader.optional(path, T::read_view).into_option()
    }
}

macro_rules! pointer_view {
    ($($pointer:ident),*) => {$(
        impl<'a, T: SafeView<'a>> SafeView<'a> for $pointer<T> {
            fn visit_view<'v>(&'v self, path: &mut KeyPath, visitor: &mut dyn Visitor<'v>) {
                (**self).visit_view(path, visitor);
            }

            fn view_entry_suffix(rest: &str) -> bool {
                T::view_entry_suffix(rest)
            }

            fn read_view(path: &mut KeyPath, reader: &mut Reader<'a>) -> Option<Self> {
                T::read_view(path, reader).map($pointer::new)
            }
        }
    )*};
}

pointer_view!(Box, Arc);

fn read_view_entries<'a, T: SafeView<'a>>(
    path: &mut KeyPath,
    reader: &mut Reader<'a>,
) -> Option<Vec<(String, T)>> {
    path.default_class(MAP_CLASS);
    reader.entries(path, T::view_entry_suffix, T::read_view)
}

impl<'a, T: SafeView<'a>> SafeView<'a> for BTreeMap<String, T> {
    fn visit_view<'v>(&'v self, path: &mut KeyPath, visitor: &mut dyn Visitor<'v>) {
        visit_entries(self.iter(), path, visitor, T::visit_view);
    }

    fn view_entry_suffix(rest: &str) -> bool {
        map_suffix(rest)
    }

    fn read_view(path: &mut KeyPath, reader: &mut Reader<'a>) -> Option<Self> {
        read_view_entries(path, reader).map(|entries| entries.into_iter().collect())
    }
}

impl<'a, T: SafeView<'a>, S: BuildHasher + Default> SafeView<'a> for HashMap<String, T, S> {
    fn visit_view<'v>(&'v self, path: &mut KeyPath, visitor: &mut dyn Visitor<'v>) {
        visit_entries(self.iter(), path, visitor, T::visit_view);
    }

    fn view_entry_suffix(rest: &str) -> bool {
        map_suffix(rest)
    }

    fn read_view(path: &mut KeyPath, reader: &mut Reader<'a>) -> Option<Self> {
        read_view_entries(path, reader).map(|entries| entries.into_iter().collect())
    }
}
