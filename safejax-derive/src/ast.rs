//! The typed model of a `#[derive(SafeParams)]` input.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Ident, Index, Member, Type};

use crate::attr::{ContainerAttrs, FieldAttrs};
use crate::ctxt::Ctxt;

/// A struct deriving `SafeParams`.
pub struct Container<'a> {
    pub original: &'a DeriveInput,
    pub ident: &'a Ident,
    pub attrs: ContainerAttrs,
    pub fields: Vec<Field<'a>>,
}

/// One field of the struct.
pub struct Field<'a> {
    pub original: &'a syn::Field,
    /// `self.<member>`: the name, or the tuple index.
    pub member: Member,
    /// The position among the struct's fields.
    pub index: usize,
    pub attrs: FieldAttrs,
    pub ty: &'a Type,
}

impl<'a> Container<'a> {
    /// The model of `input`; `None` (with the reason in `cx`) for enums and unions.
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let data = match &input.data {
            Data::Struct(data) => data,
            Data::Enum(data) => {
                cx.error(
                    data.enum_token.span,
                    "#[derive(SafeParams)] does not support enums, only structs",
                );
                return None;
            }
            Data::Union(data) => {
                cx.error(
                    data.union_token.span,
                    "#[derive(SafeParams)] does not support unions, only structs",
                );
                return None;
            }
        };
        let attrs = ContainerAttrs::from_ast(cx, &input.attrs);
        let fields = data
            .fields
            .iter()
            .enumerate()
            .map(|(index, field)| Field::from_ast(cx, index, field))
            .collect();
        Some(Container {
            original: input,
            ident: &input.ident,
            attrs,
            fields,
        })
    }

    /// The Objax class: the `class` attribute, or the type's name.
    pub fn class(&self) -> String {
        match &self.attrs.class {
            Some(class) => class.value.clone(),
            None => self.ident.unraw().to_string(),
        }
    }
}

impl<'a> Field<'a> {
    fn from_ast(cx: &Ctxt, index: usize, field: &'a syn::Field) -> Self {
        let member = match &field.ident {
            Some(ident) => Member::Named(ident.clone()),
            None => Member::Unnamed(Index {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                span: field.ty.span(),
            }),
        };
        Field {
            original: field,
            member,
            index,
            attrs: FieldAttrs::from_ast(cx, &field.attrs),
            ty: &field.ty,
        }
    }

    /// The name this field has in keys: its `rename`, its name, or `None` for an unrenamed
    /// tuple field (which the runtime writes `layers_<i>` or `[i]`).
    pub fn key_name(&self) -> Option<String> {
        if let Some(rename) = &self.attrs.rename {
            return Some(rename.value.clone());
        }
        self.original
            .ident
            .as_ref()
            .map(|ident| ident.unraw().to_string())
    }

    /// The key segment in Flax and Haiku keys: the name, or `layers_<i>`.
    pub fn key_segment(&self) -> String {
        self.key_name()
            .unwrap_or_else(|| format!("layers_{}", self.index))
    }

    /// The field as the user wrote it: its name, or its index.
    pub fn display(&self) -> String {
        match &self.original.ident {
            Some(ident) => ident.unraw().to_string(),
            None => self.index.to_string(),
        }
    }

    /// Where errors about the field as a whole point: its name, or its type in a tuple struct.
    pub fn name_span(&self) -> Span {
        match &self.original.ident {
            Some(ident) => ident.span(),
            None => self.ty.span(),
        }
    }

    /// Whether the field is stored (not `skip`).
    pub fn is_stored(&self) -> bool {
        self.attrs.skip.is_none()
    }
}
