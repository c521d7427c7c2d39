//! `#[safejax(expect = "...")]`: the pinned files' headers, read at macro time into the table
//! the runtime's const checker walks the struct's kind against.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use crate::ast::Container;
use crate::attr::{Attr, Expect, Style};
use crate::ctxt::Ctxt;

/// The largest pinned file: the build reads all of it (so that it reruns when the file changes).
/// A larger checkpoint is pinned through its header-only file.
const MAX_PINNED: u64 = 16 << 20;

/// The format's limit on the header, as the runtime has it.
const MAX_HEADER: u64 = 100_000_000;

/// One tensor of a pinned file's header.
struct Tensor {
    name: String,
    dtype: &'static str,
    shape: Vec<u64>,
    start: u64,
    end: u64,
}

/// A pinned file, read and checked.
struct Pinned {
    path: PathBuf,
    tensors: Vec<Tensor>,
}

/// The check of the struct against its pinned files, as items of the expansion; errors about
/// the files themselves go to `cx`.
pub fn check(cx: &Ctxt, cont: &Container, style: Style) -> TokenStream {
    let Some(first) = cont.attrs.expect.first() else {
        return TokenStream::new();
    };
    // First: a `borrow` struct is generic too, over its lifetime.
    if cont.attrs.borrow.is_some() {
        cx.error(
            first.key,
            "safejax `expect` pins an owned struct: pin the owned twin of a `borrow` struct, or check with `Loader::check`",
        );
        return TokenStream::new();
    }
    if !cont.original.generics.params.is_empty() {
        cx.error(
            first.key,
            "safejax `expect` pins a root struct to a file: a generic struct is checked where it is used, so pin the struct that uses it",
        );
        return TokenStream::new();
    }
    let pinned: Vec<(Pinned, &Attr<Expect>)> = cont
        .attrs
        .expect
        .iter()
        .filter_map(|expect| match read(&expect.value.path) {
            Ok(pinned) => Some((pinned, expect)),
            Err(reason) => {
                cx.error(
                    expect.span,
                    format_args!(
                        "safejax `expect` cannot use `{}`: {reason}",
                        expect.value.path
                    ),
                );
                None
            }
        })
        .collect();
    if pinned.len() < cont.attrs.expect.len() {
        return TokenStream::new();
    }
    table(cont, style, &pinned, first.span)
}

/// The table's items and the const that checks the struct against it.
fn table(
    cont: &Container,
    style: Style,
    pinned: &[(Pinned, &Attr<Expect>)],
    span: Span,
) -> TokenStream {
    let mut parts = Vec::new();
    let mut includes = Vec::new();
    let mut first = 0usize;
    // Each file's tensors sorted by name, the order of the table's lists (and of the runtime's).
    let mut sorted: Vec<Vec<&Tensor>> = Vec::new();
    for (file, _) in pinned {
        let mut tensors: Vec<&Tensor> = file.tensors.iter().collect();
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        sorted.push(tensors);
    }
    for (i, ((file, expect), tensors)) in pinned.iter().zip(&sorted).enumerate() {
        // The dtypes were checked against the same list when the header was read.
        let code = |dtype: &str| crate::tree::DTYPES.iter().position(|d| *d == dtype);
        let laid_out = crate::tree::tensors(tensors.iter().map(|t| {
            let number = code(t.dtype).map_or(0, |at| at as u8 + 1);
            (t.name.as_str(), number, t.shape.iter().copied())
        }));
        let len = tensors.len();
        let names = &laid_out.names;
        let records = syn::LitByteStr::new(&laid_out.records, Span::call_site());
        let dims = syn::LitByteStr::new(&laid_out.dims, Span::call_site());
        let collections = match &expect.value.collections {
            Some(list) => quote!(_safejax::__private::Some(&[#(#list),*])),
            None => quote!(_safejax::__private::None),
        };
        let with_collection = expect.value.with_collection;
        let written = &expect.value.path;
        parts.push(quote! {
            _safejax::__private::check::TablePart {
                collections: #collections,
                with_collection: #with_collection,
                len: #len,
                names: #names,
                tensors: #records,
                dims: #dims,
                first: #first,
                file: #written,
            }
        });
        first += tensors.len();
        let path = file.path.to_string_lossy().into_owned();
        let include = syn::Ident::new(&format!("__PINNED_{i}"), Span::call_site());
        includes.push(quote! {
            // Read so that the build reruns when the file changes.
            const #include: &[u8] = ::core::include_bytes!(#path);
        });
    }
    let counts: Vec<usize> = sorted.iter().map(Vec::len).collect();
    let firsts: Vec<usize> = counts
        .iter()
        .scan(0, |first, count| {
            let at = *first;
            *first += count;
            Some(at)
        })
        .collect();
    let key = |p: usize, e: usize| sorted[p][e].name.as_str();
    let names = crate::tree::searchable(&counts, key, style != Style::Objax);
    let lists = crate::tree::lists(&names, &firsts, key);
    let names_len = names.len();
    let names = syn::LitByteStr::new(&lists.names, Span::call_site());
    let tree = syn::LitByteStr::new(&lists.tree, Span::call_site());
    let collections = &lists.collections;
    let ident = cont.ident;
    let files: Vec<String> = cont
        .attrs
        .expect
        .iter()
        .map(|e| format!("`{}`", e.value.path))
        .collect();
    let what = format!(
        "safejax: `{ident}` does not load {} strictly",
        files.join(" + ")
    );
    let used = first;
    quote_spanned! {span=>
        #(#includes)*
        const __TABLE: _safejax::__private::check::Table<'static> = _safejax::__private::check::Table {
            parts: &[#(#parts),*],
            names: #names,
            tree: #tree,
            collections: &[#(#collections),*],
        };
        // Bounded by the struct's kind and the file's keys; a large model takes longer than the
        // lint's guess at an endless loop.
        #[allow(long_running_const_eval)]
        const _: () = {
            let mut __used = [false; #used];
            let mut __tried = [""; _safejax::__private::check::map_room(
                &<#ident as _safejax::__private::SafeParams>::KIND,
                #names_len,
            )];
            let mut __findings = [_safejax::__private::check::FINDING; 128];
            let mut __text = [0u8; 1 << 16];
            let mut __out = _safejax::__private::check::Out {
                used: &mut __used,
                tried: &mut __tried,
                findings: &mut __findings,
                text: &mut __text,
                count: 0,
                text_len: 0,
                overflow: false,
            };
            if let _safejax::__private::Some(__message) = _safejax::__private::check::expect_message(
                &<#ident as _safejax::__private::SafeParams>::KIND,
                &__TABLE,
                <#ident as _safejax::__private::SafeParams>::STYLE,
                &mut __out,
                #what,
            ) {
                ::core::panic!("{}", __message.as_str());
            }
        };
    }
}

/// Reads and checks the pinned file at `written` (relative to the crate's manifest directory).
/// The reasons it gives do not name the file: the caller names it as written, since the path it
/// resolves to differs from one machine to the next.
fn read(written: &str) -> Result<Pinned, String> {
    let path = Path::new(written);
    let path = if path.is_absolute() {
        path.to_owned()
    } else {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .ok_or("the crate's directory is unknown (`CARGO_MANIFEST_DIR` is not set)")?;
        Path::new(&dir).join(path)
    };
    let mut file = File::open(&path).map_err(|e| match e.kind() {
        ErrorKind::NotFound if Path::new(written).is_relative() => {
            "no such file (a relative path starts at the crate's directory, the one with its Cargo.toml)"
                .to_owned()
        }
        ErrorKind::NotFound => "no such file".to_owned(),
        _ => format!("cannot open it: {e}"),
    })?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    let mut head = [0u8; 8];
    file.read_exact(&mut head).map_err(|_| {
        format!("not a safetensors file: {len} bytes are too few for its 8-byte header length")
    })?;
    let header_len = u64::from_le_bytes(head);
    if header_len > MAX_HEADER || header_len > len - 8 {
        return Err(format!(
            "not a safetensors file: its header length {header_len} is more than the {} bytes after it",
            len - 8
        ));
    }
    let header_only = len == 8 + header_len;
    if len > MAX_PINNED && !header_only {
        return Err(format!(
            "it is {len} bytes, more than the {} MiB a pinned file may have (the build reads it whole): pin its header-only file instead, written by `safejax::format::write_header_only`",
            MAX_PINNED >> 20
        ));
    }
    let mut text = vec![0u8; header_len as usize];
    file.read_exact(&mut text)
        .map_err(|e| format!("cannot read its header: {e}"))?;
    let tensors = parse(&text).map_err(|why| format!("its header is invalid: {why}"))?;
    let data_len = tensors.iter().map(|t| t.end).max().unwrap_or(0);
    if !header_only && len - 8 - header_len != data_len {
        return Err(format!(
            "it has {} bytes of data where its header describes {data_len}: neither the whole file nor its header only",
            len - 8 - header_len
        ));
    }
    Ok(Pinned { path, tensors })
}

/// The tensors of a JSON header, their offsets checked against each other and their shapes.
fn parse(text: &[u8]) -> Result<Vec<Tensor>, String> {
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let mut tensors = Vec::new();
    for (name, value) in json {
        if name == "__metadata__" {
            continue;
        }
        let field = |key: &str| {
            value
                .get(key)
                .ok_or(format!("tensor `{name}` has no `{key}`"))
        };
        let numbers = |key: &str| -> Result<Vec<u64>, String> {
            field(key)?
                .as_array()
                .and_then(|list| list.iter().map(serde_json::Value::as_u64).collect())
                .ok_or(format!(
                    "tensor `{name}` has a `{key}` that is not a list of integers"
                ))
        };
        let dtype = field("dtype")?.as_str().unwrap_or_default();
        let (dtype, bits) =
            dtype_of(dtype).ok_or(format!("tensor `{name}` has unknown dtype `{dtype}`"))?;
        let shape = numbers("shape")?;
        let offsets = numbers("data_offsets")?;
        let [start, end] = offsets[..] else {
            return Err(format!("tensor `{name}` does not have two `data_offsets`"));
        };
        let elements = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .and_then(|n| n.checked_mul(bits))
            .ok_or(format!("tensor `{name}` is too large"))?;
        let bits_spanned = end
            .checked_sub(start)
            .and_then(|bytes| bytes.checked_mul(8));
        if bits_spanned != Some(elements) {
            return Err(format!(
                "tensor `{name}` of shape {shape:?} and dtype {dtype} has offsets {start}..{end}, which do not span its {} bits",
                elements
            ));
        }
        tensors.push(Tensor {
            name,
            dtype,
            shape,
            start,
            end,
        });
    }
    let mut order: Vec<&Tensor> = tensors.iter().collect();
    order.sort_by_key(|t| (t.start, t.end));
    let mut at = 0;
    for t in order {
        if t.start != at {
            return Err(format!(
                "tensor `{}` starts at data offset {}, where the previous tensor ends at {at}",
                t.name, t.start
            ));
        }
        at = t.end;
    }
    Ok(tensors)
}

/// A header dtype's variant name in `safetensors::Dtype` and its size in bits.
fn dtype_of(name: &str) -> Option<(&'static str, u64)> {
    const DTYPES: &[(&str, u64)] = &[
        ("BOOL", 8),
        ("F4", 4),
        ("F6_E2M3", 6),
        ("F6_E3M2", 6),
        ("U8", 8),
        ("I8", 8),
        ("F8_E5M2", 8),
        ("F8_E4M3", 8),
        ("F8_E8M0", 8),
        ("F8_E4M3FNUZ", 8),
        ("F8_E5M2FNUZ", 8),
        ("I16", 16),
        ("U16", 16),
        ("F16", 16),
        ("BF16", 16),
        ("I32", 32),
        ("U32", 32),
        ("F32", 32),
        ("C64", 64),
        ("F64", 64),
        ("I64", 64),
        ("U64", 64),
    ];
    DTYPES.iter().find(|(n, _)| *n == name).copied()
}

#[cfg(test)]
mod tests {
    use super::{parse, read};

    #[test]
    fn a_missing_file_is_named_as_written_not_resolved() {
        let reason = read("no/such/file.safetensors").err();
        assert_eq!(
            reason.as_deref(),
            Some(
                "no such file (a relative path starts at the crate's directory, the one with its Cargo.toml)"
            )
        );
    }

    #[test]
    fn offsets_past_u64_are_an_error_not_a_panic() {
        let header =
            br#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}"#;
        let reason = parse(header).err().unwrap_or_default();
        assert!(reason.contains("do not span its 32 bits"), "{reason}");
    }
}
