//! The structs' names and their source text, laid out as rustfmt lays it out.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write;

use safejax_core::{Dtype, Style};

use super::layout::{Field, Layout, Shape, Ty, Uses};
use super::names::{type_ident, words};

/// The longest line rustfmt keeps on one line.
const MAX_WIDTH: usize = 100;

/// What the text says besides the structs.
pub struct Header<'a> {
    /// The file's name, for the first comment.
    pub file_name: &'a str,
    /// The style the keys were read in.
    pub style: Style,
    /// The root struct's name.
    pub root: &'a str,
    /// The path for `#[safejax(expect = "...")]`, if asked for.
    pub expect: Option<&'a str>,
}

/// The source text of `layout`'s structs, the root first, then the others in the order the root
/// reaches them.
pub fn render(layout: &Layout, header: &Header<'_>) -> String {
    let (root_shape, root_uses) = &layout.root;
    let order = reach_order(layout, root_shape);
    let names = name_structs(layout, header, &order);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// Structs that load `{}` strictly, its keys read in {} style.",
        header.file_name.escape_debug(),
        header.style
    );
    out.push('\n');
    write_imports(&mut out, layout, root_shape);
    let mut attrs = vec![format!("style = {:?}", header.style.name())];
    if let Some(collection) = &layout.root_collection {
        attrs.push(format!("collection = {collection:?}"));
    }
    if let Some(class) = &root_shape.class
        && class != header.root
    {
        attrs.push(format!("class = {class:?}"));
    }
    let mut extra = Vec::new();
    if let Some(path) = header.expect {
        extra.push(format!("expect = {path:?}"));
    }
    let root = Item {
        name: header.root,
        shape: root_shape,
        uses: root_uses,
        doc: format!(
            "The whole file: `{}::load(path)` reads every tensor.",
            header.root
        ),
        attrs: vec![attrs, extra],
    };
    write_struct(&mut out, &names, root);
    for &i in &order {
        let (shape, uses) = &layout.structs[i];
        let mut attrs = Vec::new();
        if let Some(class) = &shape.class
            && *class != names[i]
        {
            attrs.push(format!("class = {class:?}"));
        }
        let item = Item {
            name: &names[i],
            shape,
            uses,
            doc: places_doc(uses),
            attrs: vec![attrs],
        };
        write_struct(&mut out, &names, item);
    }
    out
}

/// The structs the root reaches, each once, in the order a walk from the root first meets them.
fn reach_order(layout: &Layout, root: &Shape) -> Vec<usize> {
    fn visit(layout: &Layout, shape: &Shape, seen: &mut HashSet<usize>, order: &mut Vec<usize>) {
        for field in &shape.fields {
            if let Some(i) = struct_of(&field.ty)
                && seen.insert(i)
            {
                order.push(i);
                visit(layout, &layout.structs[i].0, seen, order);
            }
        }
    }
    let mut order = Vec::new();
    visit(layout, root, &mut HashSet::new(), &mut order);
    order
}

fn struct_of(ty: &Ty) -> Option<usize> {
    match ty {
        Ty::Struct(i) => Some(*i),
        Ty::Vec(inner) | Ty::Option(inner) | Ty::Map(inner) => struct_of(inner),
        Ty::Leaf(..) | Ty::Unit => None,
    }
}

/// A name for each struct: its Objax class, or the common end of the names of the modules it
/// stands for, CamelCased; a number after it where two structs would share one.
fn name_structs(layout: &Layout, header: &Header<'_>, order: &[usize]) -> Vec<String> {
    let mut names = vec![String::new(); layout.structs.len()];
    let mut taken: HashSet<String> = HashSet::from([header.root.to_owned()]);
    for &i in order {
        let (shape, uses) = &layout.structs[i];
        let wanted = match &shape.class {
            Some(class) => type_ident(class),
            None => type_ident(&common_end(&uses.names)),
        };
        let name = std::iter::once(wanted.clone())
            .chain((2..).map(|n| format!("{wanted}{n}")))
            .find(|candidate| !taken.contains(candidate))
            .unwrap_or(wanted);
        taken.insert(name.clone());
        names[i] = name;
    }
    names
}

/// The words that all `names` end with (`mean_ema`, `var_ema`: `ema`), or else the most
/// frequent name (the first of those as frequent).
fn common_end(names: &[String]) -> String {
    let split: Vec<Vec<String>> = names.iter().map(|n| words(n)).collect();
    let mut most = None;
    let mut best = 0;
    for candidate in &split {
        let count = split.iter().filter(|s| *s == candidate).count();
        if count > best {
            best = count;
            most = Some(candidate);
        }
    }
    let (Some(first), Some(most)) = (split.first(), most) else {
        return String::new();
    };
    let mut common = first.clone();
    for other in &split[1..] {
        let shared = common
            .iter()
            .rev()
            .zip(other.iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        common.drain(..common.len() - shared);
    }
    if common.is_empty() {
        most.join("_")
    } else {
        common.join("_")
    }
}

/// Where a struct is in the file: as many places as fit on a line, and how many more there are.
fn places_doc(uses: &Uses) -> String {
    let room = MAX_WIDTH - "/// ".len();
    let mut doc = String::new();
    for (i, place) in uses.places.iter().enumerate() {
        let more = uses.places.len() - i;
        let item = format!("`{}`", place.escape_debug());
        let tail = if more > 1 {
            format!(" and {} more.", more - 1)
        } else {
            ".".to_owned()
        };
        if i > 0 && doc.len() + 2 + item.len() + tail.len() > room {
            let _ = write!(doc, " and {more} more");
            break;
        }
        if i > 0 {
            doc.push_str(", ");
        }
        doc.push_str(&item);
    }
    doc.push('.');
    doc
}

fn write_imports(out: &mut String, layout: &Layout, root: &Shape) {
    let mut arrays = BTreeSet::new();
    let mut halves = BTreeSet::new();
    let mut tensor = false;
    let mut map = false;
    let shapes = std::iter::once(root).chain(layout.structs.iter().map(|(s, _)| s));
    for shape in shapes {
        for field in &shape.fields {
            let mut ty = &field.ty;
            while let Ty::Vec(inner) | Ty::Option(inner) | Ty::Map(inner) = ty {
                map |= matches!(ty, Ty::Map(_));
                ty = inner;
            }
            if let Ty::Leaf(dtype, rank) = ty {
                match element(*dtype) {
                    Some(name @ ("f16" | "bf16")) => {
                        halves.insert(name);
                    }
                    Some(_) => {}
                    None => tensor = true,
                }
                if element(*dtype).is_some() && *rank > 0 {
                    arrays.insert(array(*rank));
                }
            }
        }
    }
    // One `use` a line, in the order rustfmt sorts them.
    out.push_str("use safejax::SafeParams;\n");
    if tensor {
        out.push_str("use safejax::Tensor;\n");
    }
    let arrays: BTreeSet<&str> = arrays.iter().map(String::as_str).collect();
    for (module, names) in [("half", &halves), ("ndarray", &arrays)] {
        let list: Vec<&str> = names.iter().copied().collect();
        match list.as_slice() {
            [] => {}
            [one] => {
                let _ = writeln!(out, "use safejax::{module}::{one};");
            }
            many => {
                let _ = writeln!(out, "use safejax::{module}::{{{}}};", many.join(", "));
            }
        }
    }
    if map {
        out.push_str("use std::collections::BTreeMap;\n");
    }
}

/// The Rust element type of a dtype; `None` for those only [`safejax_core::Tensor`] holds.
fn element(dtype: Dtype) -> Option<&'static str> {
    Some(match dtype {
        Dtype::BOOL => "bool",
        Dtype::U8 => "u8",
        Dtype::I8 => "i8",
        Dtype::U16 => "u16",
        Dtype::I16 => "i16",
        Dtype::F16 => "f16",
        Dtype::BF16 => "bf16",
        Dtype::U32 => "u32",
        Dtype::I32 => "i32",
        Dtype::F32 => "f32",
        Dtype::U64 => "u64",
        Dtype::I64 => "i64",
        Dtype::F64 => "f64",
        _ => return None,
    })
}

fn array(rank: usize) -> String {
    if rank <= 6 {
        format!("Array{rank}")
    } else {
        "ArrayD".to_owned()
    }
}

fn type_text(ty: &Ty, names: &[String]) -> String {
    match ty {
        Ty::Leaf(dtype, rank) => match element(*dtype) {
            None => "Tensor".to_owned(),
            Some(element) if *rank == 0 => element.to_owned(),
            Some(element) => format!("{}<{element}>", array(*rank)),
        },
        Ty::Struct(i) => names[*i].clone(),
        Ty::Vec(inner) => format!("Vec<{}>", type_text(inner, names)),
        Ty::Option(inner) => format!("Option<{}>", type_text(inner, names)),
        Ty::Map(inner) => format!("BTreeMap<String, {}>", type_text(inner, names)),
        Ty::Unit => "()".to_owned(),
    }
}

/// `f32 [8, 16]`: the dtype and the shapes a field's tensors have; `_` stands for the sizes
/// that differ when there are many.
fn leaf_doc(ty: &Ty, shapes: &BTreeSet<Vec<usize>>) -> Option<String> {
    let mut ty = ty;
    while let Ty::Vec(inner) | Ty::Option(inner) | Ty::Map(inner) = ty {
        ty = inner;
    }
    let Ty::Leaf(dtype, _) = ty else {
        return None;
    };
    let show = |shape: &[Option<usize>]| {
        let dims: Vec<String> = shape
            .iter()
            .map(|d| d.map_or("_".to_owned(), |d| d.to_string()))
            .collect();
        format!("[{}]", dims.join(", "))
    };
    let text = if shapes.len() <= 3 {
        let all: Vec<String> = shapes
            .iter()
            .map(|s| show(&s.iter().copied().map(Some).collect::<Vec<_>>()))
            .collect();
        all.join(", ")
    } else {
        let first = shapes.first().cloned().unwrap_or_default();
        let pattern: Vec<Option<usize>> = first
            .iter()
            .enumerate()
            .map(|(d, &size)| {
                shapes
                    .iter()
                    .all(|s| s.get(d) == Some(&size))
                    .then_some(size)
            })
            .collect();
        show(&pattern)
    };
    Some(format!("{} {text}", format!("{dtype:?}").to_lowercase()))
}

/// One struct to write.
struct Item<'l> {
    name: &'l str,
    shape: &'l Shape,
    uses: &'l Uses,
    doc: String,
    /// The items of its `#[safejax(...)]` attributes, one attribute per list.
    attrs: Vec<Vec<String>>,
}

fn write_struct(out: &mut String, names: &[String], item: Item<'_>) {
    let Item {
        name,
        shape,
        uses,
        doc,
        mut attrs,
    } = item;
    out.push('\n');
    let _ = writeln!(out, "/// {doc}");
    out.push_str("#[derive(Debug, SafeParams)]\n");
    if shape.sep_call
        && let Some(first) = attrs.first_mut()
    {
        first.push("sep = \"/\"".to_owned());
    }
    for group in attrs {
        write_attr(out, "", &group);
    }
    if shape.tuple {
        write_tuple(out, names, name, &shape.fields);
        return;
    }
    let head = format!("pub struct {name} {{");
    if head.len() <= MAX_WIDTH {
        out.push_str(&head);
        out.push('\n');
    } else {
        let _ = writeln!(out, "pub struct {name}\n{{");
    }
    let no_shapes = BTreeSet::new();
    for (i, field) in shape.fields.iter().enumerate() {
        let shapes = uses.shapes.get(i).unwrap_or(&no_shapes);
        if let Some(doc) = leaf_doc(&field.ty, shapes) {
            let _ = writeln!(out, "    /// {doc}");
        }
        write_attr(out, "    ", &field.attrs);
        let ident = field.ident.as_deref().unwrap_or("_");
        let ty = type_text(&field.ty, names);
        let line = format!("    pub {ident}: {ty},");
        if line.len() <= MAX_WIDTH {
            out.push_str(&line);
            out.push('\n');
        } else {
            let _ = writeln!(out, "    pub {ident}:\n        {ty},");
        }
    }
    out.push_str("}\n");
}

/// `#[safejax(...)]` with `items`, on one line if it fits, else one item a line.
fn write_attr(out: &mut String, indent: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let line = format!("{indent}#[safejax({})]", items.join(", "));
    if line.len() <= MAX_WIDTH {
        out.push_str(&line);
        out.push('\n');
        return;
    }
    let _ = writeln!(out, "{indent}#[safejax(");
    let inner = format!(",\n{indent}    ");
    let _ = writeln!(out, "{indent}    {}", items.join(&inner));
    let _ = writeln!(out, "{indent})]");
}

fn write_tuple(out: &mut String, names: &[String], name: &str, fields: &[Field]) {
    let items: Vec<String> = fields
        .iter()
        .map(|field| {
            let ty = type_text(&field.ty, names);
            if field.attrs.is_empty() {
                format!("pub {ty}")
            } else {
                format!("#[safejax({})] pub {ty}", field.attrs.join(", "))
            }
        })
        .collect();
    // rustfmt keeps a tuple struct on one line when it fits and no field has an attribute.
    let line = format!("pub struct {name}({});", items.join(", "));
    if line.len() <= MAX_WIDTH && fields.iter().all(|f| f.attrs.is_empty()) {
        out.push_str(&line);
        out.push('\n');
        return;
    }
    let _ = writeln!(out, "pub struct {name}(");
    for item in items {
        let _ = writeln!(out, "    {item},");
    }
    out.push_str(");\n");
}
