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
    let value = reader.optional(|r| T::read(path, r));
    path.leave_field(saved);
    value.into_option().map(Option::unwrap_or_default)
}
