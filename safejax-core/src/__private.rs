//! What `#[derive(SafeParams)]` expands to calls. Not public API: no semver promise.

pub use core::default::Default;
pub use core::marker::Sized;
pub use core::option::Option::{self, None, Some};

pub use crate::Dtype;
pub use crate::check;
pub use crate::key::{FieldInfo, HaikuSep, KeyPath, NodeInfo, Numbering};
pub use crate::params::{SafeParams, Visitor, VisitorMut};
pub use crate::reader::Reader;
pub use crate::schema::{FieldSchema, Kind, StructSchema};
pub use crate::style::Style;

/// Visits one field.
#[inline]
pub fn visit_field<'a, T: SafeParams>(
    value: &'a T,
    field: &FieldInfo,
    path: &mut KeyPath,
    visitor: &mut dyn Visitor<'a>,
) {
    let saved = path.enter_field(field);
    value.visit(path, visitor);
    path.leave_field(saved);
}

/// Visits one field mutably.
#[inline]
pub fn visit_field_mut<T: SafeParams>(
    value: &mut T,
    field: &FieldInfo,
    path: &mut KeyPath,
    visitor: &mut dyn VisitorMut,
) {
    let saved = path.enter_field(field);
    value.visit_mut(path, visitor);
    path.leave_field(saved);
}

/// Reads one required field.
#[inline]
pub fn read_field<T: SafeParams>(
    field: &FieldInfo,
    path: &mut KeyPath,
    reader: &mut Reader<'_>,
) -> Option<T> {
    let saved = path.enter_field(field);
    let value = T::read(path, reader);
    path.leave_field(saved);
    value
}

/// Reads a `default` field: `Default::default()` when none of its keys is in the file.
#[inline]
pub fn read_field_or_default<T: SafeParams + Default>(
    field: &FieldInfo,
    path: &mut KeyPath,
    reader: &mut Reader<'_>,
) -> Option<T> {
    let saved = path.enter_field(field);
    let value = reader.optional(path, T::read);
    path.leave_field(saved);
    value.into_option().map(Option::unwrap_or_default)
}

/// What a derived impl does with one field of type `T`: visit it, visit it mutably, read it.
///
/// Every method of the impl reaches a field through [`field`] or [`default_field`], so a field
/// type that is not `SafeParams` (or, for a `default` field, not `Default`) fails the same bound
/// at the same place three times, and rustc shows that error once instead of once per method.
pub struct FieldOps<T> {
    /// Visits the field.
    pub visit: for<'a> fn(&'a T, &FieldInfo, &mut KeyPath, &mut dyn Visitor<'a>),
    /// Visits the field mutably.
    pub visit_mut: fn(&mut T, &FieldInfo, &mut KeyPath, &mut dyn VisitorMut),
    /// Reads the field.
    pub read: fn(&FieldInfo, &mut KeyPath, &mut Reader<'_>) -> Option<T>,
    /// The field type's kind.
    pub kind: &'static Kind,
}

/// The operations on a required field.
#[inline]
pub const fn field<T: SafeParams>() -> FieldOps<T> {
    FieldOps {
        visit: visit_field::<T>,
        visit_mut: visit_field_mut::<T>,
        read: read_field::<T>,
        kind: const { &T::KIND },
    }
}

/// The operations on a `default` field: [`read_field_or_default`] reads it.
#[inline]
pub const fn default_field<T: SafeParams + Default>() -> FieldOps<T> {
    FieldOps {
        visit: visit_field::<T>,
        visit_mut: visit_field_mut::<T>,
        read: read_field_or_default::<T>,
        kind: const { &T::KIND },
    }
}

pub use crate::view::SafeView;

/// What a derived view impl does with one field of type `T`: visit it, read it. As with
/// [`FieldOps`], every method reaches a field through [`view_field`] or [`view_default_field`],
/// so that a field type that is not `SafeView` is one error.
pub struct ViewFieldOps<'a, T> {
    /// Visits the field.
    pub visit: for<'v> fn(&'v T, &FieldInfo, &mut KeyPath, &mut dyn Visitor<'v>),
    /// Reads the field.
    pub read: fn(&FieldInfo, &mut KeyPath, &mut Reader<'a>) -> Option<T>,
}

fn visit_view_field<'a, 'v, T: SafeView<'a>>(
    value: &'v T,
    field: &FieldInfo,
    path: &mut KeyPath,
    visitor: &mut dyn Visitor<'v>,
) {
    let saved = path.enter_field(field);
    value.visit_view(path, visitor);
    path.leave_field(saved);
}

fn read_view_field<'a, T: SafeView<'a>>(
    field: &FieldInfo,
    path: &mut KeyPath,
    reader: &mut Reader<'a>,
) -> Option<T> {
    let saved = path.enter_field(field);
    let value = T::read_view(path, reader);
    path.leave_field(saved);
    value
}

fn read_view_field_or_default<'a, T: SafeView<'a> + Default>(
    field: &FieldInfo,
    path: &mut KeyPath,
    reader: &mut Reader<'a>,
) -> Option<T> {
    let saved = path.enter_field(field);
    let value = reader.optional(path, T::read_view);
    path.leave_field(saved);
    value.into_option().map(Option::unwrap_or_default)
}

/// The operations on a required field of a view.
#[inline]
pub const fn view_field<'a, T: SafeView<'a>>() -> ViewFieldOps<'a, T> {
    ViewFieldOps {
        visit: visit_view_field::<T>,
        read: read_view_field::<T>,
    }
}

/// The operations on a `default` field of a view.
#[inline]
pub const fn view_default_field<'a, T: SafeView<'a> + Default>() -> ViewFieldOps<'a, T> {
    ViewFieldOps {
        visit: visit_view_field::<T>,
        read: read_view_field_or_default::<T>,
    }
}

/// A list: what `numbering` may be put on.
#[diagnostic::on_unimplemented(
    message = "`numbering` needs a list field: `{Self}` is not a `Vec` or an array",
    label = "not a `Vec` or an array"
)]
pub trait List {}

impl<T> List for Vec<T> {}
impl<T, const N: usize> List for [T; N] {}

/// Fails to compile unless `T` is a list.
#[inline]
pub fn require_list<T: List>() {}

/// A list whose elements take consecutive positions of a tuple struct (`flatten`).
#[diagnostic::on_unimplemented(
    message = "`flatten` needs a list field: `{Self}` is not a `Vec` or an array",
    label = "not a `Vec` or an array"
)]
pub trait Flatten: Sized {
    /// The element type.
    type Item;
    /// The length of an array; `None` for a `Vec`, whose length the file tells.
    const LEN: Option<usize>;
    /// The elements.
    fn items(&self) -> &[Self::Item];
    /// The elements, mutably.
    fn items_mut(&mut self) -> &mut [Self::Item];
    /// The list of these elements, if there are as many as it holds.
    fn from_items(items: Vec<Self::Item>) -> Option<Self>;
}

impl<T> Flatten for Vec<T> {
    type Item = T;
    const LEN: Option<usize> = None;

    fn items(&self) -> &[T] {
        self
    }

    fn items_mut(&mut self) -> &mut [T] {
        self
    }

    fn from_items(items: Vec<T>) -> Option<Self> {
        Some(items)
    }
}

impl<T, const N: usize> Flatten for [T; N] {
    type Item = T;
    const LEN: Option<usize> = Some(N);

    fn items(&self) -> &[T] {
        self
    }

    fn items_mut(&mut self) -> &mut [T] {
        self
    }

    fn from_items(items: Vec<T>) -> Option<Self> {
        items.try_into().ok()
    }
}

/// `field` moved by `shift` positions, by the flattened lists before it.
#[inline]
pub fn shifted(field: &FieldInfo, shift: isize) -> FieldInfo {
    FieldInfo {
        position: field.position.wrapping_add_signed(shift),
        ..*field
    }
}

/// The `j`-th element of a flattened list at `field`.
fn element_at(field: &FieldInfo, shift: isize, j: usize) -> FieldInfo {
    FieldInfo {
        position: field.position.wrapping_add_signed(shift).wrapping_add(j),
        ..*field
    }
}

fn add_shift(shift: &mut isize, len: usize) {
    *shift = shift.wrapping_add_unsigned(len).wrapping_sub(1);
}

/// Visits a flattened list: each element at the next position; `shift` moves on by its length
/// less one.
fn visit_flattened<'a, L: Flatten>(
    list: &'a L,
    field: &FieldInfo,
    shift: &mut isize,
    path: &mut KeyPath,
    visitor: &mut dyn Visitor<'a>,
) where
    L::Item: SafeParams,
{
    for (j, item) in list.items().iter().enumerate() {
        visit_field(item, &element_at(field, *shift, j), path, visitor);
    }
    add_shift(shift, list.items().len());
}

/// [`visit_flattened`], mutably.
fn visit_flattened_mut<L: Flatten>(
    list: &mut L,
    field: &FieldInfo,
    shift: &mut isize,
    path: &mut KeyPath,
    visitor: &mut dyn VisitorMut,
) where
    L::Item: SafeParams,
{
    let len = list.items().len();
    for (j, item) in list.items_mut().iter_mut().enumerate() {
        visit_field_mut(item, &element_at(field, *shift, j), path, visitor);
    }
    add_shift(shift, len);
}

/// Reads a flattened list: an array's elements at the next positions; a `Vec`'s from the next
/// position on, as long as keys lie under it; `shift` moves on by the length less one.
fn read_flattened<L: Flatten>(
    field: &FieldInfo,
    shift: &mut isize,
    path: &mut KeyPath,
    reader: &mut Reader<'_>,
) -> Option<L>
where
    L::Item: SafeParams,
{
    let mut items = Vec::new();
    let mut failed = false;
    let mut taken = 0;
    for j in 0..L::LEN.unwrap_or(usize::MAX) {
        let element = element_at(field, *shift, j);
        if L::LEN.is_some() {
            match read_field::<L::Item>(&element, path, reader) {
                Some(item) => items.push(item),
                None => failed = true,
            }
            taken += 1;
            continue;
        }
        let saved = path.enter_field(&element);
        let item = reader.optional(path, L::Item::read);
        path.leave_field(saved);
        match item {
            crate::reader::Presence::Present(item) => items.push(item),
            crate::reader::Presence::Absent => break,
            crate::reader::Presence::Failed => failed = true,
        }
        taken += 1;
    }
    add_shift(shift, taken);
    if failed {
        return None;
    }
    L::from_items(items)
}

/// What a derived impl does with a flattened list field of type `L`; as with [`FieldOps`], one
/// bound for the three methods, so that a field that is not a list is one error.
pub struct FlattenOps<L> {
    /// Visits the list.
    pub visit: for<'a> fn(&'a L, &FieldInfo, &mut isize, &mut KeyPath, &mut dyn Visitor<'a>),
    /// Visits the list mutably.
    pub visit_mut: fn(&mut L, &FieldInfo, &mut isize, &mut KeyPath, &mut dyn VisitorMut),
    /// Reads the list.
    pub read: fn(&FieldInfo, &mut isize, &mut KeyPath, &mut Reader<'_>) -> Option<L>,
    /// The list's kind: a `Vec`'s or an array's.
    pub kind: &'static Kind,
}

/// The operations on a flattened list field.
#[inline]
pub const fn flatten_field<L: Flatten>() -> FlattenOps<L>
where
    L::Item: SafeParams,
{
    FlattenOps {
        visit: visit_flattened::<L>,
        visit_mut: visit_flattened_mut::<L>,
        read: read_flattened::<L>,
        kind: const {
            &match L::LEN {
                Some(n) => Kind::Array(n, &L::Item::KIND),
                None => Kind::List(&L::Item::KIND),
            }
        },
    }
}

/// The collision check of a generic struct, run where it is used with concrete types.
pub struct NoCollisions<T>(core::marker::PhantomData<T>);

impl<T: SafeParams> NoCollisions<T> {
    /// Fails the build with a description of two fields that write the same key.
    pub const OK: () = if let Some(message) = crate::check::collision_message(&T::KIND) {
        panic!("{}", message.as_str())
    };
}

/// Makes the sharded saves of the calling thread stop after step `step`, leaving their files as
/// a crash there would: the `k`-th shard written is step `k`, the index of `n` shards step
/// `n + 1`. `None` lets them run to the end again. For tests of crash safety only.
pub fn stop_sharded_saves_after(step: Option<usize>) {
    crate::shard::stop_saves_after(step);
}
