//! What `#[derive(SafeParams)]` expands to calls. Not public API: no semver promise.

pub use core::default::Default;
pub use core::marker::Sized;
pub use core::option::Option::{self, None, Some};

pub use crate::key::{FieldInfo, HaikuSep, KeyPath, NodeInfo};
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
