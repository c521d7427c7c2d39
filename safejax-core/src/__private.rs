//! What `#[derive(SafeParams)]` expands to calls. Not public API: no semver promise.

pub use core::default::Default;
pub use core::marker::Sized;
pub use core::option::Option::{self, None, Some};

pub use crate::key::{FieldInfo, HaikuSep, KeyPath, NodeInfo, Numbering};
pub use crate::params::{SafeParams, Visitor, VisitorMut};
pub use crate::reader::Reader;
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
}

/// The operations on a required field.
#[inline]
pub const fn field<T: SafeParams>() -> FieldOps<T> {
    FieldOps {
        visit: visit_field::<T>,
        visit_mut: visit_field_mut::<T>,
        read: read_field::<T>,
    }
}

/// The operations on a `default` field: [`read_field_or_default`] reads it.
#[inline]
pub const fn default_field<T: SafeParams + Default>() -> FieldOps<T> {
    FieldOps {
        visit: visit_field::<T>,
        visit_mut: visit_field_mut::<T>,
        read: read_field_or_default::<T>,
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
