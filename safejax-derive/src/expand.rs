//! Code generation: the `SafeParams` impl, or a stub impl and the errors.

use proc_macro2::{Ident, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Type};

use crate::ast::{Container, Field};
use crate::attr::{Numbering, Sep, Style};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expect;

/// Expands `#[derive(SafeParams)]` on `input`.
pub fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let container = Container::from_ast(&cx, input);
    let mut pinned = TokenStream::new();
    if let Some(container) = &container {
        check::check(&cx, container);
        let style = container
            .attrs
            .style
            .as_ref()
            .map_or(Style::Flax, |s| s.value);
        pinned = expect::check(&cx, container, style);
    }
    let krate = container
        .as_ref()
        .and_then(|c| c.attrs.krate.as_ref())
        .map(|krate| &krate.value);
    let import = import(krate);
    match (cx.check(), &container) {
        (Ok(()), Some(container)) => impl_params(container, &import, pinned),
        (Err(error), _) => fallback(input, &import, &error),
        (Ok(()), None) => fallback(
            input,
            &import,
            &syn::Error::new(Span::call_site(), "#[derive(SafeParams)] expects a struct"),
        ),
    }
}

/// Brings the runtime in as `_safejax`.
fn import(krate: Option<&syn::Path>) -> TokenStream {
    match krate {
        Some(path) => quote!(use #path as _safejax;),
        None => quote!(
            extern crate safejax as _safejax;
        ),
    }
}

/// Wraps generated items in an anonymous const, so that nothing leaks into the user's scope.
fn wrap(import: &TokenStream, items: TokenStream) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(
            non_upper_case_globals,
            unused_assignments,
            unused_attributes,
            unused_qualifications,
            clippy::all
        )]
        const _: () = {
            #import
            #items
        };
    }
}

/// On errors: the errors, and an impl whose methods are never called, so that uses of the type
/// elsewhere do not add a cascade of "trait not implemented" errors.
fn fallback(input: &DeriveInput, import: &TokenStream, error: &syn::Error) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let errors = error.to_compile_error();
    let stub = wrap(
        import,
        quote! {
            #[automatically_derived]
            impl #impl_generics _safejax::__private::SafeParams for #ident #ty_generics #where_clause {
                fn visit<'__a>(
                    &'__a self,
                    _: &mut _safejax::__private::KeyPath,
                    _: &mut dyn _safejax::__private::Visitor<'__a>,
                ) {
                    ::core::unreachable!()
                }

                fn visit_mut(
                    &mut self,
                    _: &mut _safejax::__private::KeyPath,
                    _: &mut dyn _safejax::__private::VisitorMut,
                ) {
                    ::core::unreachable!()
                }

                fn read(
                    _: &mut _safejax::__private::KeyPath,
                    _: &mut _safejax::__private::Reader<'_>,
                ) -> _safejax::__private::Option<Self> {
                    ::core::unreachable!()
                }
            }
        },
    );
    quote! {
        #errors
        #stub
    }
}

/// Code located at `span` (so that rustc's errors point there) but resolved like the rest of the
/// expansion (so that its locals are the expansion's, even in a struct a `macro_rules!` wrote).
fn at(span: Span) -> Span {
    Span::call_site().located_at(span)
}

/// The lifetime of the bytes a `borrow` struct borrows its tensors from: its first lifetime.
fn data_lifetime<'c>(cont: &Container<'c>) -> Option<&'c syn::Lifetime> {
    cont.attrs.borrow.as_ref()?;
    cont.original
        .generics
        .lifetimes()
        .next()
        .map(|param| &param.lifetime)
}

fn impl_params(cont: &Container, import: &TokenStream, pinned: TokenStream) -> TokenStream {
    let ident = cont.ident;
    let generics = &cont.original.generics;
    let (impl_generics, ty_generics, _) = generics.split_for_impl();
    let lifetime = data_lifetime(cont);
    let where_clause = where_clause(cont, lifetime);
    let stored: Vec<&Field> = cont.fields.iter().filter(|f| f.is_stored()).collect();

    let class = cont.class();
    let node_collection = option_str(cont.attrs.collection.as_ref().map(|c| c.value.as_str()));
    let container_sep = cont.attrs.sep.as_ref().map(|sep| sep.value);
    let field_infos = stored.iter().map(|field| field_info(field, container_sep));
    let count = stored.len();
    let fields_const = (count > 0).then(|| {
        quote! {
            const __FIELDS: [_safejax::__private::FieldInfo; #count] = [#(#field_infos),*];
        }
    });
    // Two fields writing one key: checked once for a struct, where used for a generic one.
    let generic = !generics.params.is_empty();
    let collisions_const = (!generic).then(|| {
        quote_spanned! {at(ident.span())=>
            #[allow(long_running_const_eval)]
            const _: () = if let _safejax::__private::Some(__message) =
                _safejax::__private::check::collision_message(
                    &<#ident as _safejax::__private::SafeParams>::KIND,
                )
            {
                ::core::panic!("{}", __message.as_str())
            };
        }
    });
    let collisions_use = generic.then(|| {
        quote! {
            let () = _safejax::__private::NoCollisions::<Self>::OK;
        }
    });
    let style = cont.attrs.style.as_ref().map(|style| {
        let variant = match style.value {
            Style::Flax => quote!(Flax),
            Style::Haiku => quote!(Haiku),
            Style::Objax => quote!(Objax),
        };
        quote! {
            const STYLE: _safejax::__private::Style = _safejax::__private::Style::#variant;
        }
    });

    // Every method reaches a field through `field::<T>()`, so that a field type that is not
    // `SafeParams` is one error (the same in each method, which rustc shows once).
    let ops = |field: &Field| {
        let ty = field.ty;
        let ops = match (field.attrs.default.is_some(), lifetime.is_some()) {
            (true, false) => quote!(default_field),
            (false, false) => quote!(field),
            (true, true) => quote!(view_default_field),
            (false, true) => quote!(view_field),
        };
        quote_spanned!(at(ty.span())=> _safejax::__private::#ops::<#ty>())
    };
    let kind = kind(cont, &stored, &ops);
    // With a flattened list, the positions after it move by its length less one: `__shift`.
    let flattens = stored.iter().any(|field| field.attrs.flatten.is_some());
    let shift = flattens.then(|| quote!(let mut __shift: isize = 0;));
    let info = |i: &Literal| match flattens {
        true => quote!(&_safejax::__private::shifted(&__FIELDS[#i], __shift)),
        false => quote!(&__FIELDS[#i]),
    };
    let visits = stored.iter().enumerate().map(|(i, field)| {
        let member = &field.member;
        let ops = ops(field);
        let i = Literal::usize_unsuffixed(i);
        if field.attrs.flatten.is_some() {
            let ty = field.ty;
            return quote_spanned! {at(field.ty.span())=>
                (_safejax::__private::flatten_field::<#ty>().visit)(&self.#member, &__FIELDS[#i], &mut __shift, __path, __visitor);
            };
        }
        let info = info(&i);
        quote_spanned! {at(field.ty.span())=>
            (#ops.visit)(&self.#member, #info, __path, __visitor);
        }
    });
    let visits_mut = stored.iter().enumerate().map(|(i, field)| {
        let member = &field.member;
        let ops = ops(field);
        let i = Literal::usize_unsuffixed(i);
        if field.attrs.flatten.is_some() {
            let ty = field.ty;
            return quote_spanned! {at(field.ty.span())=>
                (_safejax::__private::flatten_field::<#ty>().visit_mut)(&mut self.#member, &__FIELDS[#i], &mut __shift, __path, __visitor);
            };
        }
        let info = info(&i);
        quote_spanned! {at(field.ty.span())=>
            (#ops.visit_mut)(&mut self.#member, #info, __path, __visitor);
        }
    });

    // The first flattened `Vec`: an `Option` after it would make the file ambiguous.
    let variable_list = cont.fields.iter().position(|field| {
        field.attrs.flatten.is_some() && !matches!(field.ty, Type::Array(_)) && field.is_stored()
    });
    let mut stored_index = 0;
    let mut reads = Vec::new();
    let mut unwraps = Vec::new();
    let mut inits = Vec::new();
    for field in &cont.fields {
        let local = Ident::new(&format!("__f{}", field.index), Span::call_site());
        let ty = field.ty;
        let span = at(ty.span());
        if field.is_stored() {
            let ops = ops(field);
            let i = Literal::usize_unsuffixed(stored_index);
            stored_index += 1;
            if variable_list.is_some_and(|list| field.index > cont.fields[list].index)
                && lifetime.is_none()
            {
                reads.push(quote_spanned! {span=>
                    const {
                        ::core::assert!(
                            !<#ty as _safejax::__private::SafeParams>::OPTIONAL,
                            "safejax: an `Option` field after a flattened list of variable length: an absent field and a longer list would read alike"
                        )
                    };
                });
            }
            // `numbering` needs a list: checked by a bound, at the attribute.
            if let Some(numbering) = &field.attrs.numbering {
                reads.push(quote_spanned! {at(numbering.span)=>
                    _safejax::__private::require_list::<#ty>();
                });
            }
            if field.attrs.flatten.is_some() {
                reads.push(quote_spanned! {span=>
                    let #local = (_safejax::__private::flatten_field::<#ty>().read)(&__FIELDS[#i], &mut __shift, __path, __reader);
                });
            } else {
                let info = info(&i);
                reads.push(quote_spanned! {span=>
                    let #local = (#ops.read)(#info, __path, __reader);
                });
            }
            unwraps.push(quote! {
                let _safejax::__private::Some(#local) = #local else {
                    return _safejax::__private::None;
                };
            });
        } else {
            // Spanned on the type, so that a missing `Default` points at the field.
            reads.push(quote_spanned! {span=>
                let #local = <#ty as _safejax::__private::Default>::default();
            });
        }
        let member = &field.member;
        inits.push(quote!(#member: #local));
    }

    let node = quote! {
        const __NODE: _safejax::__private::NodeInfo = _safejax::__private::NodeInfo {
            class: #class,
            collection: #node_collection,
        };
        #fields_const
    };
    let read_body = quote! {
        let __saved = __path.enter_node(&__NODE);
        #shift
        // Every field is read before any failure is acted on, so that one load reports every
        // problem.
        #(#reads)*
        __path.leave_node(__saved);
        #(#unwraps)*
        _safejax::__private::Some(Self { #(#inits),* })
    };
    let Some(lifetime) = lifetime else {
        let mut view_generics = generics.clone();
        view_generics.params.insert(0, syn::parse_quote!('__view));
        let (view_generics, _, _) = view_generics.split_for_impl();
        let own_predicates = generics
            .where_clause
            .iter()
            .flat_map(|c| c.predicates.iter());
        return wrap(
            import,
            quote! {
                #node
                #pinned
                #collisions_const

                #[automatically_derived]
                impl #impl_generics _safejax::__private::SafeParams for #ident #ty_generics #where_clause {
                    #style
                    #kind

                    fn visit<'__a>(
                        &'__a self,
                        __path: &mut _safejax::__private::KeyPath,
                        __visitor: &mut dyn _safejax::__private::Visitor<'__a>,
                    ) {
                        #collisions_use
                        let __saved = __path.enter_node(&__NODE);
                        #shift
                        #(#visits)*
                        __path.leave_node(__saved);
                    }

                    fn visit_mut(
                        &mut self,
                        __path: &mut _safejax::__private::KeyPath,
                        __visitor: &mut dyn _safejax::__private::VisitorMut,
                    ) {
                        let __saved = __path.enter_node(&__NODE);
                        #shift
                        #(#visits_mut)*
                        __path.leave_node(__saved);
                    }

                    fn read(
                        __path: &mut _safejax::__private::KeyPath,
                        __reader: &mut _safejax::__private::Reader<'_>,
                    ) -> _safejax::__private::Option<Self> {
                        #collisions_use
                        #read_body
                    }
                }

                // An owned struct can be part of a value that borrows its tensors: it copies
                // its own, as it does when read.
                #[automatically_derived]
                impl #view_generics _safejax::__private::SafeView<'__view> for #ident #ty_generics
                where
                    Self: _safejax::__private::SafeParams,
                    #(#own_predicates,)*
                {
                    const STYLE: _safejax::__private::Style =
                        <Self as _safejax::__private::SafeParams>::STYLE;

                    fn visit_view<'__v>(
                        &'__v self,
                        __path: &mut _safejax::__private::KeyPath,
                        __visitor: &mut dyn _safejax::__private::Visitor<'__v>,
                    ) {
                        _safejax::__private::SafeParams::visit(self, __path, __visitor);
                    }

                    fn view_entry_suffix(
                        __rest: &::core::primitive::str,
                    ) -> ::core::primitive::bool {
                        <Self as _safejax::__private::SafeParams>::entry_suffix(__rest)
                    }

                    fn read_view(
                        __path: &mut _safejax::__private::KeyPath,
                        __reader: &mut _safejax::__private::Reader<'__view>,
                    ) -> _safejax::__private::Option<Self> {
                        <Self as _safejax::__private::SafeParams>::read(__path, __reader)
                    }
                }
            },
        );
    };
    // A struct with a lifetime borrows its tensors from the bytes it is read from.
    wrap(
        import,
        quote! {
            #node

            #[automatically_derived]
            impl #impl_generics _safejax::__private::SafeView<#lifetime> for #ident #ty_generics #where_clause {
                #style

                fn visit_view<'__v>(
                    &'__v self,
                    __path: &mut _safejax::__private::KeyPath,
                    __visitor: &mut dyn _safejax::__private::Visitor<'__v>,
                ) {
                    let __saved = __path.enter_node(&__NODE);
                    #shift
                    #(#visits)*
                    __path.leave_node(__saved);
                }

                fn read_view(
                    __path: &mut _safejax::__private::KeyPath,
                    __reader: &mut _safejax::__private::Reader<#lifetime>,
                ) -> _safejax::__private::Option<Self> {
                    #read_body
                }
            }
        },
    )
}

/// The struct's `KIND`: its node and its stored fields' kinds. A field whose type holds the
/// struct itself takes its kind through a function, so that the kind stays finite.
fn kind(cont: &Container, stored: &[&Field], ops: &dyn Fn(&Field) -> TokenStream) -> TokenStream {
    let this = Ident::new("Self", Span::call_site());
    let recursive = [cont.ident, &this];
    let fields = stored.iter().enumerate().map(|(i, field)| {
        let ty = field.ty;
        let rust_name = field.display();
        let default = field.attrs.default.is_some();
        let flatten = field.attrs.flatten.is_some();
        // Through the same `field::<T>()` as the methods, so a bad field type is one error.
        let span = at(ty.span());
        let kind = if field.attrs.recursive.is_some() || names_any(ty, &recursive) {
            quote_spanned!(span=> &_safejax::__private::Kind::Recursive(<#ty as _safejax::__private::SafeParams>::kind))
        } else if flatten {
            quote_spanned!(span=> _safejax::__private::flatten_field::<#ty>().kind)
        } else {
            let ops = ops(field);
            quote_spanned!(span=> #ops.kind)
        };
        quote_spanned! {at(ty.span())=>
            _safejax::__private::FieldSchema {
                rust_name: #rust_name,
                info: __FIELDS[#i],
                default: #default,
                flatten: #flatten,
                kind: #kind,
            }
        }
    });
    let name = cont.ident.to_string();
    quote! {
        const KIND: _safejax::__private::Kind = _safejax::__private::Kind::Struct(
            &_safejax::__private::StructSchema {
                name: #name,
                node: __NODE,
                fields: &[#(#fields),*],
            },
        );
    }
}

/// `Some("x")` or `None`, as runtime tokens.
fn option_str(value: Option<&str>) -> TokenStream {
    match value {
        Some(value) => quote!(_safejax::__private::Some(#value)),
        None => quote!(_safejax::__private::None),
    }
}

/// A field's static description; its separator is its own `sep`, else the struct's.
fn field_info(field: &Field, container_sep: Option<Sep>) -> TokenStream {
    let name = option_str(field.key_name().as_deref());
    let position = field.index;
    let class = option_str(field.attrs.class.as_ref().map(|c| c.value.as_str()));
    let collection = option_str(field.attrs.collection.as_ref().map(|c| c.value.as_str()));
    let sep = match field
        .attrs
        .sep
        .as_ref()
        .map(|sep| sep.value)
        .or(container_sep)
    {
        Some(Sep::Call) => quote!(Call),
        Some(Sep::Constructor) | None => quote!(Constructor),
    };
    let numbering = match field.attrs.numbering.as_ref().map(|n| n.value) {
        Some(Numbering::Haiku) => quote!(Haiku),
        Some(Numbering::Nested) => quote!(Nested),
        Some(Numbering::Index) | None => quote!(Index),
    };
    quote! {
        _safejax::__private::FieldInfo {
            name: #name,
            position: #position,
            class: #class,
            collection: #collection,
            sep: _safejax::__private::HaikuSep::#sep,
            numbering: _safejax::__private::Numbering::#numbering,
        }
    }
}

/// The struct's own where-clause, plus the `bound` attribute's predicates or, without one,
/// `FieldType: SafeParams` for every stored field whose type mentions a type parameter.
fn where_clause(cont: &Container, lifetime: Option<&syn::Lifetime>) -> TokenStream {
    let generics = &cont.original.generics;
    let mut predicates: Vec<TokenStream> = generics
        .where_clause
        .iter()
        .flat_map(|clause| clause.predicates.iter())
        .map(ToTokens::to_token_stream)
        .collect();
    match &cont.attrs.bound {
        Some(bound) => predicates.extend(bound.value.iter().map(ToTokens::to_token_stream)),
        None => {
            let params: Vec<&Ident> = generics.type_params().map(|p| &p.ident).collect();
            let this = Ident::new("Self", Span::call_site());
            let recursive = [cont.ident, &this];
            let mut seen: Vec<String> = Vec::new();
            for field in cont.fields.iter().filter(|f| f.is_stored()) {
                // A field holding the type itself (`children: Vec<Node<T>>`) needs no bound of
                // its own: it holds when the impl does, and bounding it would make the impl
                // depend on itself, so that it never applies.
                if !mentions_any(field.ty, &params) || names_any(field.ty, &recursive) {
                    continue;
                }
                let key = field.ty.to_token_stream().to_string();
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                let ty = field.ty;
                predicates.push(match lifetime {
                    Some(lifetime) => quote_spanned! {at(ty.span())=>
                        #ty: _safejax::__private::SafeView<#lifetime>
                    },
                    None => quote_spanned! {at(ty.span())=>
                        #ty: _safejax::__private::SafeParams
                    },
                });
            }
        }
    }
    if predicates.is_empty() {
        TokenStream::new()
    } else {
        quote!(where #(#predicates),*)
    }
}

/// Whether `ty` names one of `params` (not as the tail of a longer path such as `module::T`).
fn mentions_any(ty: &Type, params: &[&Ident]) -> bool {
    !params.is_empty() && tokens_mention(ty.to_token_stream(), params, false)
}

/// Whether `ty` names one of `idents` anywhere, as in `Vec<crate::Node>`.
fn names_any(ty: &Type, idents: &[&Ident]) -> bool {
    tokens_mention(ty.to_token_stream(), idents, true)
}

fn tokens_mention(tokens: TokenStream, idents: &[&Ident], in_paths: bool) -> bool {
    let mut after_path_sep = false;
    let mut colons = 0;
    for token in tokens {
        match token {
            TokenTree::Ident(ident) => {
                if (in_paths || !after_path_sep) && idents.iter().any(|p| **p == ident) {
                    return true;
                }
                after_path_sep = false;
                colons = 0;
            }
            TokenTree::Punct(punct) if punct.as_char() == ':' => {
                colons += 1;
                after_path_sep = colons >= 2;
            }
            TokenTree::Group(group) => {
                if tokens_mention(group.stream(), idents, in_paths) {
                    return true;
                }
                after_path_sep = false;
                colons = 0;
            }
            _ => {
                after_path_sep = false;
                colons = 0;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn finds_type_parameters_in_field_types() {
        let t: Ident = parse_quote!(T);
        let params = [&t];
        let yes: [Type; 5] = [
            parse_quote!(T),
            parse_quote!(Array2<T>),
            parse_quote!(Vec<Box<Dense<T>>>),
            parse_quote!([T; 3]),
            parse_quote!(<T as Trait>::Assoc),
        ];
        for ty in &yes {
            assert!(mentions_any(ty, &params), "{}", ty.to_token_stream());
        }
        let no: [Type; 3] = [
            parse_quote!(Array2<f32>),
            parse_quote!(module::T),
            parse_quote!(Tensor),
        ];
        for ty in &no {
            assert!(!mentions_any(ty, &params), "{}", ty.to_token_stream());
        }
        let node: Ident = parse_quote!(Node);
        let recursive: Type = parse_quote!(Vec<crate::tree::Node<T>>);
        assert!(names_any(&recursive, &[&node]));
        assert!(!names_any(&parse_quote!(Vec<Leaf<T>>), &[&node]));
    }
}
