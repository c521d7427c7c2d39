//! The [`SafeParams`] trait, which `#[derive(SafeParams)]` implements, and its impls for tensors,
//! scalars and containers.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use ndarray::{Array, Dimension};

use crate::dtype::Element;
use crate::error::{LeafProblem, Result};
use crate::format::Metadata;
use crate::io::{Loader, Saver};
use crate::key::{KeyPath, MAX_DEPTH, check_name, depth_reason};
use crate::reader::Reader;
use crate::schema::{Kind, LeafKind, Schema};
use crate::style::Style;
use crate::tensor::{Leaf, LeafMut, Tensor, array_from};

/// Receives every leaf of a value, with its key path, when the value is written.
pub trait Visitor<'a> {
    /// One tensor leaf; `leaf` borrows the value's data.
    fn leaf(&mut self, path: &KeyPath, leaf: &'a dyn Leaf);
    /// A part of the value that cannot be written (an invalid map key).
    fn invalid(&mut self, path: &KeyPath, reason: String);
}

/// Receives every leaf of a value mutably, for loading in place.
pub trait VisitorMut {
    /// One tensor leaf.
    fn leaf(&mut self, path: &KeyPath, leaf: &mut dyn LeafMut);
    /// A part of the value that cannot be loaded in place (a shared `Arc`, an invalid map key).
    fn invalid(&mut self, path: &KeyPath, reason: String);
}

/// A value whose tensors are stored in safetensors under Flax, Haiku or Objax keys.
///
/// Derive it with `#[derive(SafeParams)]`; it is implemented here for ndarray owned arrays and
/// plain scalars of every [`Element`] type, [`Tensor`], `Vec`, arrays, `Option`, `Box`, `Arc`,
/// `()`, `PhantomData` and string-keyed `BTreeMap` / `HashMap`.
///
/// The provided methods save and load a value as a file's root, in its default [`Style`]
/// ([`SafeParams::STYLE`]); [`Saver`] and [`Loader`] choose everything else.
///
/// ```
/// use ndarray::{Array1, array};
/// use safejax_core::SafeParams;
///
/// let mut heads = std::collections::BTreeMap::new();
/// heads.insert("a".to_owned(), array![1.0f32, 2.0]);
/// heads.insert("b".to_owned(), array![3.0f32]);
/// let bytes = heads.to_bytes()?;
/// assert_eq!(heads.keys_in(safejax_core::Style::Flax)?, ["a", "b"]);
/// let back = std::collections::BTreeMap::<String, Array1<f32>>::from_bytes(&bytes)?;
/// assert_eq!(back, heads);
/// # Ok::<(), safejax_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored by safejax",
    label = "not a tensor, a scalar or a `#[derive(SafeParams)]` type",
    note = "fields must be ndarray arrays or scalars of f32, f64, f16, bf16, i8..i64, u8..u64 or bool, `safejax::Tensor`, types deriving `SafeParams`, or Vec, arrays, Option, Box, Arc and String-keyed maps of those",
    note = "fields that borrow the file's bytes (`ndarray::ArrayView`) need `#[safejax(borrow)]` on a struct with a lifetime",
    note = "arrays must be of ndarray 0.17, the version safejax uses: an `Array` of another ndarray version is another type (depend on ndarray 0.17, or use the re-export `safejax::ndarray`)"
)]
pub trait SafeParams: Sized {
    /// The style `save`, `load` and friends use when this type is the root.
    const STYLE: Style = Style::Flax;

    /// Whether a value may be wholly absent from a file (`Option`): the derive refuses such a
    /// field after a flattened list, whose end the file could not then tell.
    #[doc(hidden)]
    const OPTIONAL: bool = false;

    /// The type's key layout, known without an instance: leaves with their dtype and rank,
    /// structs with their fields, lists, options and maps (see [`crate::schema`]).
    /// `#[derive(SafeParams)]` builds it from the fields' kinds; a hand-written impl that leaves
    /// it [`Kind::Opaque`] cannot be checked against a header.
    const KIND: Kind = Kind::Opaque;

    /// [`SafeParams::KIND`] as a `'static` reference, for the kinds of types that hold
    /// themselves.
    #[doc(hidden)]
    fn kind() -> &'static Kind {
        const { &Self::KIND }
    }

    /// The key patterns of the type in its default style, one per leaf:
    /// `params.blocks_{i}.dense.kernel  f32 rank 2`.
    ///
    /// ```
    /// use safejax_core::SafeParams;
    /// use safejax_core::schema::Kind;
    ///
    /// let schema = <Vec<ndarray::Array2<f32>> as SafeParams>::schema();
    /// assert_eq!(schema.patterns[0].key, "{i}");
    /// ```
    fn schema() -> Schema {
        Schema::of(&Self::KIND, Self::STYLE)
    }

    /// The key patterns of the type in `style`.
    fn schema_in(style: Style) -> Schema {
        Schema::of(&Self::KIND, style)
    }

    /// Visits every leaf, with its key path, without copying tensor data.
    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>);

    /// Visits every leaf mutably, for loading in place.
    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut);

    /// Reads a value from `reader`; `None` when something was wrong, which `reader` recorded.
    /// Reads every part even after a failure so that one load reports every problem.
    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self>;

    /// Whether `rest` may follow the name of a map entry holding this value, inside the same
    /// Flax or Haiku key segment: nothing for a tensor or a struct (whose keys go on with `.`
    /// or a Haiku separator), `_<index>` and what an element allows for a list, `_<name>` for a
    /// map. Map reads try only the entry names that fit, which keeps them linear in the file.
    ///
    /// ```
    /// use ndarray::Array1;
    /// use safejax_core::SafeParams;
    /// assert!(<Array1<f32>>::entry_suffix(""));
    /// assert!(<Vec<Array1<f32>>>::entry_suffix("_12"));
    /// assert!(!<Vec<Array1<f32>>>::entry_suffix("_b"));
    /// ```
    fn entry_suffix(rest: &str) -> bool {
        rest.is_empty()
    }

    /// The keys this value writes in `style`, sorted.
    fn keys_in(&self, style: Style) -> Result<Vec<String>> {
        Saver::new().style(style).keys(self)
    }

    /// The keys this value writes in its default style, sorted.
    fn keys(&self) -> Result<Vec<String>> {
        self.keys_in(Self::STYLE)
    }

    /// Serializes to safetensors bytes.
    fn to_bytes(&self) -> Result<Vec<u8>> {
        Saver::new().style(Self::STYLE).to_bytes(self)
    }

    /// Deserializes from safetensors bytes, strictly: every key needed, none left over.
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(Loader::new().style(Self::STYLE).from_bytes(bytes)?.value)
    }

    /// Saves to a file, atomically: the previous file stays intact if anything fails.
    ///
    /// As [`Saver::save`]: a replaced file keeps its mode, owner and group, a read-only one is
    /// refused, and a symlink or hard link at `path` is replaced by a new file, leaving the old
    /// file it shared untouched.
    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Saver::new().style(Self::STYLE).save(self, path)
    }

    /// Saves to a file with a `__metadata__` map.
    fn save_with_metadata(&self, path: impl AsRef<Path>, metadata: &Metadata) -> Result<()> {
        Saver::new()
            .style(Self::STYLE)
            .metadata(metadata.clone())
            .save(self, path)
    }

    /// Loads from a file, strictly.
    fn load(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Loader::new().style(Self::STYLE).load(path)?.value)
    }

    /// Loads from a file, with its `__metadata__` map.
    fn load_with_metadata(path: impl AsRef<Path>) -> Result<(Self, Metadata)> {
        let loaded = Loader::new().style(Self::STYLE).load(path)?;
        Ok((loaded.value, loaded.metadata))
    }

    /// Overwrites this value's tensors from a file, strictly. Everything is checked before
    /// anything is assigned, so a failed call changes nothing.
    fn load_into(&mut self, path: impl AsRef<Path>) -> Result<()> {
        Loader::new()
            .style(Self::STYLE)
            .load_into(self, path)
            .map(drop)
    }
}

impl<T: Element, D: Dimension> SafeParams for Array<T, D> {
    const KIND: Kind = Kind::Leaf(LeafKind {
        dtype: Some(T::DTYPE),
        rank: D::NDIM,
    });

    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        visitor.leaf(path, self);
    }

    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        visitor.leaf(path, self);
    }

    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        reader.leaf(path, |tensor, policy| array_from(tensor, policy))
    }
}

macro_rules! scalar_params {
    ($($ty:ty),*) => {$(
        impl SafeParams for $ty {
            const KIND: Kind = Kind::Leaf(LeafKind {
                dtype: Some(<$ty as Element>::DTYPE),
                rank: Some(0),
            });

            fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
                visitor.leaf(path, self);
            }

            fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
                visitor.leaf(path, self);
            }

            fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
                reader.leaf(path, |tensor, policy| {
                    let staged = tensor
                        .staged()
                        .map_err(|e| LeafProblem::Unreadable(e.to_string()))?;
                    staged.with_view(|view| {
                        let mut value = <$ty>::default();
                        LeafMut::check(&value, view, policy)?;
                        LeafMut::assign(&mut value, view, policy);
                        Ok(value)
                    })
                })
            }
        }
    )*};
}

scalar_params!(
    f32,
    f64,
    half::f16,
    half::bf16,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    bool
);

impl SafeParams for Tensor {
    const KIND: Kind = Kind::Leaf(LeafKind {
        dtype: None,
        rank: None,
    });

    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        visitor.leaf(path, self);
    }

    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        visitor.leaf(path, self);
    }

    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        reader.leaf(path, |tensor, _| {
            Tensor::from_ref(tensor).map_err(|e| LeafProblem::Unreadable(e.to_string()))
        })
    }
}

/// Whether a value `steps` below `path` would be deeper than [`MAX_DEPTH`], which a load would
/// refuse; if so, `invalid` is told. Checked where a recursive type can descend (lists, maps,
/// options), so that a save of a deep value fails with an error instead of a stack overflow.
fn too_deep(path: &KeyPath, steps: usize, invalid: impl FnOnce(&KeyPath, String)) -> bool {
    let deep = path.segments().len() + steps > MAX_DEPTH;
    if deep {
        invalid(path, depth_reason());
    }
    deep
}

/// The Objax class of a list that does not name one with `class`.
pub const LIST_CLASS: &str = "ModuleList";
/// The Objax class of a map that does not name one with `class`.
pub const MAP_CLASS: &str = "ModuleDict";

fn visit_elements_mut<'a, T: SafeParams + 'a>(
    items: impl Iterator<Item = &'a mut T>,
    path: &mut KeyPath,
    visitor: &mut dyn VisitorMut,
) {
    path.default_class(LIST_CLASS);
    for (i, item) in items.enumerate() {
        if too_deep(path, 1, |path, reason| visitor.invalid(path, reason)) {
            return;
        }
        path.push_index(i);
        item.visit_mut(path, visitor);
        path.pop();
    }
}

/// Counts the leaves a visit passes on.
struct Counting<'v, 'a> {
    inner: &'v mut dyn Visitor<'a>,
    leaves: usize,
}

impl<'a> Visitor<'a> for Counting<'_, 'a> {
    fn leaf(&mut self, path: &KeyPath, leaf: &'a dyn Leaf) {
        self.leaves += 1;
        self.inner.leaf(path, leaf);
    }

    fn invalid(&mut self, path: &KeyPath, reason: String) {
        self.inner.invalid(path, reason);
    }
}

/// How a value visits its leaves: [`SafeParams::visit`], or a view's.
pub(crate) type VisitFn<T> = for<'v> fn(&'v T, &mut KeyPath, &mut dyn Visitor<'v>);

/// Visits a `Vec`: a list's length is stored only as the indices of its tensors, so an element
/// that holds no tensors is refused when a later one holds some (the file could not be read
/// back); trailing ones are not stored.
pub(crate) fn visit_list<'a, T>(
    items: &'a [T],
    path: &mut KeyPath,
    visitor: &mut dyn Visitor<'a>,
    visit: VisitFn<T>,
) {
    path.default_class(LIST_CLASS);
    let mut first_empty = None;
    for (i, item) in items.iter().enumerate() {
        if too_deep(path, 1, |path, reason| visitor.invalid(path, reason)) {
            return;
        }
        path.push_index(i);
        let mut counting = Counting {
            inner: &mut *visitor,
            leaves: 0,
        };
        visit(item, path, &mut counting);
        let leaves = counting.leaves;
        path.pop();
        match first_empty {
            None if leaves == 0 => first_empty = Some(i),
            Some(empty) if leaves > 0 => {
                visitor.invalid(
                    path,
                    format!("has element {empty} holding no tensors before element {i}, which holds some: the list could not be read back"),
                );
                first_empty = None;
            }
            _ => {}
        }
    }
}

impl<T: SafeParams> SafeParams for Vec<T> {
    const KIND: Kind = Kind::List(&T::KIND);

    /// A list's length is stored only as the indices of its tensors, so an element that holds
    /// no tensors is refused when a later one holds some (the file could not be read back);
    /// trailing ones are not stored.
    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        visit_list(self, path, visitor, T::visit);
    }

    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        visit_elements_mut(self.iter_mut(), path, visitor);
    }

    fn entry_suffix(rest: &str) -> bool {
        list_suffix(rest, T::entry_suffix)
    }

    /// The length is the number of consecutive indices from 0 that have keys in the file; keys
    /// at later indices are left unread and reported as unexpected.
    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        path.default_class(LIST_CLASS);
        reader.elements(path, T::read)
    }
}

/// Visits an array: every element, at its index.
pub(crate) fn visit_array<'a, T>(
    items: &'a [T],
    path: &mut KeyPath,
    visitor: &mut dyn Visitor<'a>,
    visit: VisitFn<T>,
) {
    path.default_class(LIST_CLASS);
    for (i, item) in items.iter().enumerate() {
        if too_deep(path, 1, |path, reason| visitor.invalid(path, reason)) {
            return;
        }
        path.push_index(i);
        visit(item, path, visitor);
        path.pop();
    }
}

/// Visits an `Option`: its value, if any.
pub(crate) fn visit_option<'a, T>(
    value: &'a Option<T>,
    path: &mut KeyPath,
    visitor: &mut dyn Visitor<'a>,
    visit: VisitFn<T>,
) {
    if let Some(inner) = value
        && !too_deep(path, 0, |path, reason| visitor.invalid(path, reason))
    {
        visit(inner, path, visitor);
    }
}

impl<T: SafeParams, const N: usize> SafeParams for [T; N] {
    const KIND: Kind = Kind::Array(N, &T::KIND);

    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        visit_array(self, path, visitor, T::visit);
    }

    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        visit_elements_mut(self.iter_mut(), path, visitor);
    }

    fn entry_suffix(rest: &str) -> bool {
        list_suffix(rest, T::entry_suffix)
    }

    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        read_array(path, reader, T::read)
    }
}

/// Reads an array: every element, at its index, each required.
pub(crate) fn read_array<'d, T, const N: usize>(
    path: &mut KeyPath,
    reader: &mut Reader<'d>,
    mut read: impl FnMut(&mut KeyPath, &mut Reader<'d>) -> Option<T>,
) -> Option<[T; N]> {
    path.default_class(LIST_CLASS);
    let mut items = Vec::with_capacity(N);
    for i in 0..N {
        path.push_index(i);
        items.push(read(path, reader));
        path.pop();
    }
    let items: Option<Vec<T>> = items.into_iter().collect();
    items.and_then(|items| items.try_into().ok())
}

impl<T: SafeParams> SafeParams for Option<T> {
    const OPTIONAL: bool = true;
    const KIND: Kind = Kind::Optional(&T::KIND);

    fn entry_suffix(rest: &str) -> bool {
        T::entry_suffix(rest)
    }

    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        visit_option(self, path, visitor, T::visit);
    }

    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        if let Some(inner) = self
            && !too_deep(path, 0, |path, reason| visitor.invalid(path, reason))
        {
            inner.visit_mut(path, visitor);
        }
    }

    /// `None` when no key of the inner value is in the file; an error when only some are.
    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        reader.optional(path, T::read).into_option()
    }
}

impl<T: SafeParams> SafeParams for Box<T> {
    const KIND: Kind = T::KIND;

    fn entry_suffix(rest: &str) -> bool {
        T::entry_suffix(rest)
    }

    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        (**self).visit(path, visitor);
    }

    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        (**self).visit_mut(path, visitor);
    }

    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        T::read(path, reader).map(Box::new)
    }
}

impl<T: SafeParams> SafeParams for Arc<T> {
    const KIND: Kind = T::KIND;

    fn entry_suffix(rest: &str) -> bool {
        T::entry_suffix(rest)
    }

    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        (**self).visit(path, visitor);
    }

    /// Loads in place only into an `Arc` that is not shared.
    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        match Arc::get_mut(self) {
            Some(inner) => inner.visit_mut(path, visitor),
            None => visitor.invalid(
                path,
                "is a shared `Arc` and cannot be loaded in place".into(),
            ),
        }
    }

    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        T::read(path, reader).map(Arc::new)
    }
}

impl SafeParams for () {
    const KIND: Kind = Kind::Empty;
    fn visit<'a>(&'a self, _: &mut KeyPath, _: &mut dyn Visitor<'a>) {}
    fn visit_mut(&mut self, _: &mut KeyPath, _: &mut dyn VisitorMut) {}
    fn read(_: &mut KeyPath, _: &mut Reader<'_>) -> Option<Self> {
        Some(())
    }
}

impl<T: ?Sized> SafeParams for PhantomData<T> {
    const KIND: Kind = Kind::Empty;
    fn visit<'a>(&'a self, _: &mut KeyPath, _: &mut dyn Visitor<'a>) {}
    fn visit_mut(&mut self, _: &mut KeyPath, _: &mut dyn VisitorMut) {}
    fn read(_: &mut KeyPath, _: &mut Reader<'_>) -> Option<Self> {
        Some(PhantomData)
    }
}

/// Visits a map: every entry whose key can be one, at its key.
pub(crate) fn visit_entries<'a, T: 'a>(
    entries: impl Iterator<Item = (&'a String, &'a T)>,
    path: &mut KeyPath,
    visitor: &mut dyn Visitor<'a>,
    visit: VisitFn<T>,
) {
    path.default_class(MAP_CLASS);
    for (key, value) in entries {
        if let Err(reason) = check_name(key) {
            visitor.invalid(path, format!("has map key `{key}` that {reason}"));
            continue;
        }
        if too_deep(path, 1, |path, reason| visitor.invalid(path, reason)) {
            return;
        }
        path.push_key(key.as_str());
        visit(value, path, visitor);
        path.pop();
    }
}

fn visit_entries_mut<'a, T: SafeParams + 'a>(
    entries: impl Iterator<Item = (&'a String, &'a mut T)>,
    path: &mut KeyPath,
    visitor: &mut dyn VisitorMut,
) {
    path.default_class(MAP_CLASS);
    for (key, value) in entries {
        if let Err(reason) = check_name(key) {
            visitor.invalid(path, format!("has map key `{key}` that {reason}"));
            continue;
        }
        if too_deep(path, 1, |path, reason| visitor.invalid(path, reason)) {
            return;
        }
        path.push_key(key.as_str());
        value.visit_mut(path, visitor);
        path.pop();
    }
}

fn read_entries<T: SafeParams>(
    path: &mut KeyPath,
    reader: &mut Reader<'_>,
) -> Option<Vec<(String, T)>> {
    path.default_class(MAP_CLASS);
    reader.entries(path, T::entry_suffix, T::read)
}

/// A list element's name continues its list's: `_<index>`, then what the element allows.
pub(crate) fn list_suffix(rest: &str, element: fn(&str) -> bool) -> bool {
    let Some(index) = rest.strip_prefix('_') else {
        return false;
    };
    let digits = index.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && element(&index[digits..])
}

/// A map entry's name continues its map's: `_<name>`.
pub(crate) fn map_suffix(rest: &str) -> bool {
    rest.len() > 1 && rest.starts_with('_')
}

impl<T: SafeParams> SafeParams for BTreeMap<String, T> {
    const KIND: Kind = Kind::Map(&T::KIND);

    fn entry_suffix(rest: &str) -> bool {
        map_suffix(rest)
    }

    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        visit_entries(self.iter(), path, visitor, T::visit);
    }

    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        visit_entries_mut(self.iter_mut(), path, visitor);
    }

    /// The entries are the names found in the file under the map's key.
    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        read_entries(path, reader).map(|entries| entries.into_iter().collect())
    }
}

impl<T: SafeParams, S: BuildHasher + Default> SafeParams for HashMap<String, T, S> {
    const KIND: Kind = Kind::Map(&T::KIND);

    fn entry_suffix(rest: &str) -> bool {
        map_suffix(rest)
    }

    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        visit_entries(self.iter(), path, visitor, T::visit);
    }

    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        visit_entries_mut(self.iter_mut(), path, visitor);
    }

    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        read_entries(path, reader).map(|entries| entries.into_iter().collect())
    }
}
