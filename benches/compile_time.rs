//! Compile time of `#[safejax(expect = "...")]`: `cargo build` (dev profile) of a generated
//! model crate, with and without the root struct pinned to its checkpoint.
//!
//! The bench writes, in a temporary directory, a standalone crate (its own `[workspace]`,
//! depending on this checkout by path and on ndarray 0.17, with this workspace's `Cargo.lock`)
//! holding a Flax model of about 200 `#[derive(SafeParams)]` structs and 2,000 stored fields,
//! and the model's header-only checkpoint. Before timing, an example of that crate loads the
//! full checkpoint strictly (the file is exactly what the struct reads) and checks the
//! header-only file with `Loader::check`.
//!
//! Variants of the crate, identical but for:
//! - `without`: no `expect` (the collision check of every struct still runs: it is always on);
//! - `with`: `#[safejax(expect = "model.safetensors")]` on the root struct;
//! - `collide-x2`: `without`, plus a second evaluation of every struct's collision check (a
//!   `const` item per struct calling `check::collision_message`), so that `collide-x2` less
//!   `without` is what the collision checks cost.
//!
//! Two measures, each variant built in turn (A B C A B C ...):
//! - the model crate alone: `cargo clean -p` of it (its incremental cache included), then
//!   `cargo build`, the dependencies staying built;
//! - a clean build: a fresh target directory, dependencies included.
//!
//! `cargo bench --bench compile_time` (options after `--`: `--runs N` builds of the crate alone
//! per variant, default 3; `--clean-runs N` clean builds per variant, default 1; `--structs N`,
//! `--fields N` the model's size, default 200 and 2000; `--list-scale N` multiplies the length of
//! every list in the checkpoint, default 1; `--keep` leaves the directory in place). Run without
//! `--bench`, as `cargo test --benches` does, it does nothing: each build takes a while.
//!
//! `RUSTFLAGS`, `CARGO_INCREMENTAL`, `CARGO_TARGET_DIR` and compiler wrappers are cleared for the
//! inner builds: they measure what a plain `cargo build` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CRATE: &str = "safejax-compile-model";
const CRATE_UNDERSCORED: &str = "safejax_compile_model";
/// The pinned checkpoint, header only, in the model crate's directory.
const PINNED: &str = "model.safetensors";
/// The whole checkpoint (data all zeros, a sparse file), for the verifying load.
const FULL: &str = "full.safetensors";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "compile_time: skipped (each build takes a while); run `cargo bench --bench compile_time`"
        );
        return;
    }
    let options = Options::parse(&args);
    let mut model = Model::generate(&options.shape, 0x005a_fe1a);
    model.allow_long_const_eval = options.allow_long_const_eval;
    let keys = model.keys();
    println!("{}", model.describe(&keys));
    if options.describe {
        print!("{}", model.source(Variant::Without));
        return;
    }

    let temp = tempfile::tempdir().expect("a temporary directory");
    let root = match options.keep {
        true => temp.keep(),
        false => temp.path().to_owned(),
    };
    let krate = root.join("model");
    let target = root.join("target");
    write_crate(&krate, &model, &keys);
    verify(&krate, &target, &model, keys.len());

    let variants = [Variant::Without, Variant::With, Variant::CollideTwice];
    let mut alone: BTreeMap<Variant, Vec<Duration>> = BTreeMap::new();
    for run in 0..options.runs {
        for variant in variants {
            let time = build_crate_alone(&krate, &target, &model, variant);
            eprintln!("crate alone, run {run}, {}: {time:.2?}", variant.name());
            alone.entry(variant).or_default().push(time);
        }
    }
    let mut clean: BTreeMap<Variant, Vec<Duration>> = BTreeMap::new();
    for run in 0..options.clean_runs {
        for variant in variants {
            let time = build_clean(&krate, &root.join("clean-target"), &model, variant);
            eprintln!("clean, run {run}, {}: {time:.2?}", variant.name());
            clean.entry(variant).or_default().push(time);
        }
    }
    println!("{}", report(&alone, &clean));
    if options.keep {
        println!("kept {}", root.display());
    }
}

// ---- Options.

struct Options {
    runs: usize,
    clean_runs: usize,
    shape: Shape,
    allow_long_const_eval: bool,
    keep: bool,
    describe: bool,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut options = Options {
            runs: 3,
            clean_runs: 1,
            shape: Shape {
                structs: 200,
                fields: 2000,
                list_scale: 1,
                naming: Naming::Suffixed,
            },
            allow_long_const_eval: false,
            keep: false,
            describe: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut number = || -> usize {
                let value = args.next().map(String::as_str).unwrap_or_default();
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("{arg} takes a number, not `{value}`"))
            };
            match arg.as_str() {
                "--runs" => options.runs = number(),
                "--clean-runs" => options.clean_runs = number(),
                "--structs" => options.shape.structs = number(),
                "--fields" => options.shape.fields = number(),
                "--list-scale" => options.shape.list_scale = number(),
                "--names" => {
                    options.shape.naming = match args.next().map(String::as_str) {
                        Some("suffixed") => Naming::Suffixed,
                        Some("distinct") => Naming::Distinct,
                        other => panic!("--names takes `suffixed` or `distinct`, not {other:?}"),
                    }
                }
                "--allow-long-const-eval" => options.allow_long_const_eval = true,
                "--keep" => options.keep = true,
                "--describe" => options.describe = true,
                // `cargo bench` passes `--bench`, and a filter may follow.
                _ => {}
            }
        }
        assert!(options.shape.structs >= 20, "--structs: at least 20");
        options
    }
}

// ---- The model: struct definitions, their source, their checkpoint's keys.

/// One struct of the generated model.
struct Def {
    name: String,
    fields: Vec<Field>,
}

struct Field {
    name: String,
    rename: Option<String>,
    collection: Option<&'static str>,
    ty: Ty,
}

enum Ty {
    /// An `f32` array of this shape.
    Array(Vec<usize>),
    /// Another struct of the model, by index.
    Child(usize),
    /// A `Vec` of a struct, and its length in the checkpoint.
    List(usize, usize),
    /// An `Option`, and whether the checkpoint has it.
    Maybe(Box<Ty>, bool),
}

/// The generated model: its structs, the root last.
struct Model {
    defs: Vec<Def>,
    /// Whether the crate allows rustc's `long_running_const_eval` lint.
    allow_long_const_eval: bool,
}

/// What to generate.
struct Shape {
    /// Structs, the root included.
    structs: usize,
    /// Stored fields of all structs.
    fields: usize,
    /// A factor on the length of every list in the checkpoint.
    list_scale: usize,
    naming: Naming,
}

/// The roles of each level's structs, from the leaves' modules up to the towers below the root.
const ROLES: [&[&str]; 5] = [
    &[
        "Dense", "Conv", "Norm", "Embed", "Gate", "Proj", "Scale", "PosEmbed",
    ],
    &["Attention", "Mlp", "ConvUnit", "Mixer", "Router", "Adapter"],
    &["Block", "Layer", "Cell", "Fusion"],
    &["Stage", "Encoder", "Decoder"],
    &["Tower", "Backbone", "Head"],
];

/// The share of the structs at each level of `ROLES`; the root is one more.
const LEVEL_SHARES: [f64; 5] = [0.45, 0.27, 0.16, 0.08, 0.035];

/// Relative field counts per level (the root's is what is left).
const FIELD_WEIGHTS: [f64; 5] = [0.8, 1.1, 1.3, 1.4, 1.0];

/// Array field names, with their ranks.
const ARRAYS: [(&str, usize); 20] = [
    ("kernel", 2),
    ("bias", 1),
    ("scale", 1),
    ("embedding", 2),
    ("conv_kernel", 4),
    ("gamma", 1),
    ("beta", 1),
    ("pos_embedding", 2),
    ("cls_token", 1),
    ("gate", 2),
    ("a_log", 2),
    ("d_skip", 1),
    ("dt_bias", 1),
    ("depthwise", 4),
    ("rel_bias", 2),
    ("logit_scale", 1),
    ("query", 2),
    ("value", 2),
    ("offset", 1),
    ("pointwise", 4),
];

/// Dimensions of the arrays: small, since the build reads names, dtypes and ranks, not sizes.
const DIMS: [usize; 6] = [8, 16, 24, 32, 48, 64];

/// Every `BATCH_NORM_EVERY`th struct of the lowest level is a batch norm, with statistics in
/// the `batch_stats` collection.
const BATCH_NORM_EVERY: usize = 10;

impl Model {
    /// A model of `shape`, the same for the same `seed`.
    fn generate(shape: &Shape, seed: u64) -> Model {
        let mut rng = Rng(seed);
        let levels = level_sizes(shape.structs);
        let counts = field_counts(&levels, shape.fields, &mut rng);
        let mut defs: Vec<Def> = Vec::new();
        let mut first_of_level: Vec<usize> = Vec::new();
        for (level, &size) in levels.iter().enumerate() {
            let below = first_of_level.last().copied();
            first_of_level.push(defs.len());
            for i in 0..size {
                let index = defs.len();
                let count = counts[index];
                let def = match below {
                    None => leaf_module(index, i, count, shape.naming, &mut rng),
                    Some(below) => {
                        // Each struct of the level below is a child of one here (round robin),
                        // so that every struct is reachable from the root.
                        let covered: Vec<usize> = (below..first_of_level[level])
                            .filter(|c| (c - below) % size == i)
                            .collect();
                        let spec = Parent {
                            level,
                            index,
                            count,
                            covered: &covered,
                            below: (below, first_of_level[level]),
                            list_scale: shape.list_scale,
                            naming: shape.naming,
                        };
                        parent_module(&spec, &defs, &mut rng)
                    }
                };
                defs.push(def);
            }
        }
        Model {
            defs,
            allow_long_const_eval: false,
        }
    }

    fn root(&self) -> usize {
        self.defs.len() - 1
    }

    /// The checkpoint's tensors: key and shape, sorted by key.
    fn keys(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.keys_of(self.root(), &mut path, "params", &mut out);
        out.sort();
        out
    }

    fn keys_of(
        &self,
        def: usize,
        path: &mut Vec<String>,
        collection: &str,
        out: &mut Vec<(String, Vec<usize>)>,
    ) {
        for field in &self.defs[def].fields {
            let segment = field.rename.as_ref().unwrap_or(&field.name);
            let collection = field.collection.unwrap_or(collection);
            self.keys_of_ty(&field.ty, segment, path, collection, out);
        }
    }

    fn keys_of_ty(
        &self,
        ty: &Ty,
        segment: &str,
        path: &mut Vec<String>,
        collection: &str,
        out: &mut Vec<(String, Vec<usize>)>,
    ) {
        match ty {
            Ty::Array(shape) => {
                let key = format!(
                    "{collection}.{}",
                    [&path[..], &[segment.to_owned()]].concat().join(".")
                );
                out.push((key, shape.clone()));
            }
            Ty::Child(child) => {
                path.push(segment.to_owned());
                self.keys_of(*child, path, collection, out);
                path.pop();
            }
            Ty::List(child, len) => {
                for i in 0..*len {
                    path.push(format!("{segment}_{i}"));
                    self.keys_of(*child, path, collection, out);
                    path.pop();
                }
            }
            Ty::Maybe(inner, present) => {
                if *present {
                    self.keys_of_ty(inner, segment, path, collection, out);
                }
            }
        }
    }

    /// The crate's `src/lib.rs` for `variant`.
    fn source(&self, variant: Variant) -> String {
        let mut s = String::from(
            "//! A generated model (safejax's `benches/compile_time.rs`).\n\
             #![allow(dead_code)]\n",
        );
        if self.allow_long_const_eval {
            s.push_str("#![allow(long_running_const_eval)]\n");
        }
        s.push_str("\nuse ndarray::{Array1, Array2, Array4};\nuse safejax::SafeParams;\n");
        for (index, def) in self.defs.iter().enumerate() {
            s.push_str("\n#[derive(SafeParams)]\n");
            if index == self.root() {
                let expect = match variant {
                    Variant::With => format!(", expect = \"{PINNED}\""),
                    _ => String::new(),
                };
                writeln!(
                    s,
                    "#[safejax(style = \"flax\", collection = \"params\"{expect})]"
                )
                .unwrap();
            }
            writeln!(s, "pub struct {} {{", def.name).unwrap();
            for field in &def.fields {
                self.write_field(&mut s, field);
            }
            s.push_str("}\n");
            if variant == Variant::CollideTwice {
                writeln!(
                    s,
                    "const _: () = if let Some(m) = safejax::check::collision_message(\n    \
                     &<{} as SafeParams>::KIND,\n) {{\n    panic!(\"{{}}\", m.as_str())\n}};",
                    def.name
                )
                .unwrap();
            }
        }
        s
    }

    fn write_field(&self, s: &mut String, field: &Field) {
        if let Some(rename) = &field.rename {
            writeln!(s, "    #[safejax(rename = \"{rename}\")]").unwrap();
        }
        if let Some(collection) = field.collection {
            writeln!(s, "    #[safejax(collection = \"{collection}\")]").unwrap();
        }
        writeln!(s, "    pub {}: {},", field.name, self.type_name(&field.ty)).unwrap();
    }

    fn type_name(&self, ty: &Ty) -> String {
        match ty {
            Ty::Array(shape) => format!("Array{}<f32>", shape.len()),
            Ty::Child(child) => self.defs[*child].name.clone(),
            Ty::List(child, _) => format!("Vec<{}>", self.defs[*child].name),
            Ty::Maybe(inner, _) => format!("Option<{}>", self.type_name(inner)),
        }
    }

    /// Counts, for the report.
    fn describe(&self, keys: &[(String, Vec<usize>)]) -> String {
        let mut ranks = [0usize; 5];
        let (mut children, mut lists, mut options, mut renames, mut collections) = (0, 0, 0, 0, 0);
        let mut count = |ty: &Ty| {
            let mut ty = ty;
            if let Ty::Maybe(inner, _) = ty {
                options += 1;
                ty = inner;
            }
            match ty {
                Ty::Array(shape) => ranks[shape.len()] += 1,
                Ty::Child(_) => children += 1,
                Ty::List(..) => lists += 1,
                Ty::Maybe(..) => unreachable!("no option of an option"),
            }
        };
        for field in self.defs.iter().flat_map(|d| &d.fields) {
            count(&field.ty);
            renames += usize::from(field.rename.is_some());
            collections += usize::from(field.collection.is_some());
        }
        let fields: usize = self.defs.iter().map(|d| d.fields.len()).sum();
        let header: usize = keys.iter().map(|(k, s)| k.len() + 40 + 4 * s.len()).sum();
        let deepest = keys.iter().map(|(k, _)| k.split('.').count()).max();
        let longest = keys.iter().map(|(k, _)| k.len()).max();
        format!(
            "model: {} structs, {fields} stored fields: {} Array1, {} Array2, {} Array4 (f32), {children} structs, \
             {lists} Vec of structs, {options} of them in an Option; {renames} renamed, {collections} in `batch_stats`\n\
             checkpoint: {} tensors, header about {} KB, keys of up to {} segments and {} bytes",
            self.defs.len(),
            ranks[1],
            ranks[2],
            ranks[4],
            keys.len(),
            header / 1000,
            deepest.unwrap_or(0),
            longest.unwrap_or(0),
        )
    }
}

/// How many structs each level has, the root's level last (one struct).
fn level_sizes(structs: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = LEVEL_SHARES
        .iter()
        .map(|share| ((structs as f64 * share).round() as usize).max(1))
        .collect();
    let assigned: usize = sizes.iter().sum();
    sizes[0] += (structs - 1).saturating_sub(assigned);
    sizes.push(1);
    sizes
}

/// Field counts per struct, in order, summing to `total` (when the minimums allow).
fn field_counts(levels: &[usize], total: usize, rng: &mut Rng) -> Vec<usize> {
    let mut weights = Vec::new();
    let mut minimums = Vec::new();
    for (level, &size) in levels.iter().enumerate() {
        // A parent needs room for the structs of the level below it holds.
        let covers = match level {
            0 => 0,
            _ => levels[level - 1].div_ceil(size),
        };
        for i in 0..size {
            let weight = FIELD_WEIGHTS.get(level).copied().unwrap_or(1.0);
            weights.push(weight * (0.5 + rng.unit()));
            minimums.push(match level == 0 && is_batch_norm(i) {
                true => 4,
                false => (covers + 1).max(2),
            });
        }
    }
    let sum: f64 = weights.iter().sum();
    let mut counts: Vec<usize> = weights
        .iter()
        .zip(&minimums)
        .map(|(w, &min)| ((total as f64 * w / sum).round() as usize).max(min))
        .collect();
    // Batch norms have their four fields; the others absorb the rounding.
    let batch_norms = (0..levels[0]).filter(|&i| is_batch_norm(i));
    batch_norms.clone().for_each(|i| counts[i] = 4);
    let adjustable: Vec<usize> = (0..counts.len())
        .filter(|&i| i >= levels[0] || !is_batch_norm(i))
        .collect();
    for _ in 0..100 * total {
        let sum: usize = counts.iter().sum();
        let i = adjustable[rng.below(adjustable.len())];
        if sum < total {
            counts[i] += 1;
        } else if sum > total && counts[i] > minimums[i] {
            counts[i] -= 1;
        } else if sum == total {
            break;
        }
    }
    counts
}

/// Whether the `i`th struct of the lowest level is a batch norm.
fn is_batch_norm(i: usize) -> bool {
    i % BATCH_NORM_EVERY == BATCH_NORM_EVERY - 1
}

/// A struct of arrays only (or a batch norm).
fn leaf_module(index: usize, i: usize, count: usize, naming: Naming, rng: &mut Rng) -> Def {
    if is_batch_norm(i) {
        let d = DIMS[rng.below(DIMS.len())];
        let field = |name: &str, collection| Field {
            name: name.to_owned(),
            rename: None,
            collection,
            ty: Ty::Array(vec![d]),
        };
        let stats = Some("batch_stats");
        return Def {
            name: format!("BatchNorm{index}"),
            fields: vec![
                field("scale", None),
                field("bias", None),
                field("mean", stats),
                field("var", stats),
            ],
        };
    }
    let role = ROLES[0][i % ROLES[0].len()];
    let mut names = Names::new(naming);
    let fields = (0..count).map(|_| array_field(&mut names, rng)).collect();
    Def {
        name: format!("{role}{index}"),
        fields,
    }
}

fn array_field(names: &mut Names, rng: &mut Rng) -> Field {
    let (base, rank) = ARRAYS[rng.below(ARRAYS.len())];
    let mut dim = || DIMS[rng.below(DIMS.len())];
    let shape = match rank {
        1 => vec![dim()],
        2 => vec![dim(), dim()],
        _ => vec![3, 3, dim(), dim()],
    };
    // An optional bias or scale, present or not in the checkpoint.
    let ty = match rank == 1 && rng.unit() < 0.15 {
        true => Ty::Maybe(Box::new(Ty::Array(shape)), rng.unit() < 0.7),
        false => Ty::Array(shape),
    };
    Field {
        name: names.fresh(base),
        rename: None,
        collection: None,
        ty,
    }
}

/// What a struct above the lowest level is made of.
struct Parent<'a> {
    level: usize,
    index: usize,
    count: usize,
    /// The structs of the level below that only this one holds.
    covered: &'a [usize],
    /// The range of the level below.
    below: (usize, usize),
    list_scale: usize,
    naming: Naming,
}

/// A struct of structs (some in lists or options, a few renamed) and arrays.
fn parent_module(spec: &Parent, defs: &[Def], rng: &mut Rng) -> Def {
    let root = spec.level == ROLES.len();
    let (list_chance, max_len) = match spec.level {
        1 => (0.05, 3),
        2 => (0.2, 3),
        3 => (0.35, 6),
        4 => (0.3, 4),
        _ => (0.0, 1),
    };
    let extra = match root {
        true => 0,
        false => rng.below(3),
    };
    let structs = (spec.covered.len() + extra).min(spec.count);
    let mut children: Vec<usize> = spec.covered.to_vec();
    while children.len() < structs {
        // Mostly the level below; sometimes any struct lower down, as shared modules are.
        let child = match rng.unit() < 0.7 {
            true => spec.below.0 + rng.below(spec.below.1 - spec.below.0),
            false => rng.below(spec.below.1),
        };
        children.push(child);
    }
    let mut names = Names::new(spec.naming);
    let mut renamed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut fields = Vec::new();
    for child in children {
        let role = role_of(&defs[child].name);
        let snake = snake_case(role);
        let roll = rng.unit();
        let field = if roll < list_chance {
            let len = (2 + rng.below(max_len - 1)) * spec.list_scale;
            Field {
                name: names.fresh(&format!("{snake}s")),
                rename: None,
                collection: None,
                ty: Ty::List(child, len),
            }
        } else if roll < list_chance + 0.1 {
            Field {
                name: names.fresh(&snake),
                rename: None,
                collection: None,
                ty: Ty::Maybe(Box::new(Ty::Child(child)), rng.unit() < 0.75),
            }
        } else {
            // Flax's automatic names, `Dense_0`, `Dense_1`, for some.
            let rename = (rng.unit() < 0.15).then(|| {
                let n = renamed.entry(role).or_default();
                *n += 1;
                format!("{role}_{}", *n - 1)
            });
            Field {
                name: names.fresh(&snake),
                rename,
                collection: None,
                ty: Ty::Child(child),
            }
        };
        fields.push(field);
    }
    while fields.len() < spec.count {
        fields.push(array_field(&mut names, rng));
    }
    rng.shuffle(&mut fields);
    let name = match root {
        true => "Model".to_owned(),
        false => {
            let roles = ROLES[spec.level];
            format!("{}{}", roles[spec.index % roles.len()], spec.index)
        }
    };
    Def { name, fields }
}

/// The role of a struct's name: `Attention` of `Attention57`.
fn role_of(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit())
}

fn snake_case(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// How sibling fields are named when a base name repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    /// `bias`, `bias_a`, `bias_b`; lists `blocks` beside a `block`: some names start with a
    /// sibling's, as in real models (`text_encoder` and `text_encoder_2`, `Dense_1` and
    /// `Dense_10`).
    Suffixed,
    /// `bias`, `b_bias`, `c_bias`: no name starts with a sibling's.
    Distinct,
}

/// Field names of one struct (never `_<digit>` at the end, which a list's elements use).
struct Names {
    naming: Naming,
    seen: BTreeMap<String, usize>,
    taken: Vec<String>,
}

impl Names {
    fn new(naming: Naming) -> Names {
        Names {
            naming,
            seen: BTreeMap::new(),
            taken: Vec::new(),
        }
    }

    fn fresh(&mut self, base: &str) -> String {
        let seen = self.seen.entry(base.to_owned()).or_default();
        *seen += 1;
        let mut n = *seen - 1;
        let name = loop {
            let name = match (n, self.naming) {
                (0, _) => base.to_owned(),
                (_, Naming::Suffixed) => format!("{base}_{}", letters(n)),
                (_, Naming::Distinct) => format!("{}_{base}", letters(n + 1)),
            };
            let related = |t: &String| t.starts_with(&name) || name.starts_with(t.as_str());
            let clash = match self.naming {
                Naming::Suffixed => self.taken.contains(&name),
                Naming::Distinct => self.taken.iter().any(related),
            };
            if !clash {
                break name;
            }
            n += 1;
        };
        self.taken.push(name.clone());
        name
    }
}

/// Bijective base 26: 1 is `a`, 26 is `z`, 27 is `aa`.
fn letters(mut n: usize) -> String {
    let mut out = Vec::new();
    while n > 0 {
        n -= 1;
        out.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII letters")
}

/// xorshift64*: a fixed model for a fixed seed, without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

// ---- The crate on disk.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Variant {
    Without,
    With,
    CollideTwice,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Without => "without",
            Variant::With => "with",
            Variant::CollideTwice => "collide-x2",
        }
    }
}

fn write_crate(krate: &Path, model: &Model, keys: &[(String, Vec<usize>)]) {
    std::fs::create_dir_all(krate.join("src")).expect("create the crate's directory");
    std::fs::create_dir_all(krate.join("examples")).expect("create the examples directory");
    let safejax = env!("CARGO_MANIFEST_DIR");
    let manifest = format!(
        "[package]\nname = \"{CRATE}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nsafejax = {{ path = {safejax:?} }}\nndarray = \"0.17\"\n\n\
         # Not part of any enclosing workspace.\n[workspace]\n"
    );
    write(&krate.join("Cargo.toml"), &manifest);
    // The versions this workspace builds with: nothing to resolve or download.
    let lock = Path::new(safejax).join("Cargo.lock");
    std::fs::copy(&lock, krate.join("Cargo.lock")).expect("copy Cargo.lock");
    write(&krate.join("src/lib.rs"), &model.source(Variant::Without));
    let verify = format!(
        "//! Loads the full checkpoint strictly and checks the header-only one.\n\
         use safejax::{{Loader, SafeParams}};\n\
         use {CRATE_UNDERSCORED}::Model;\n\n\
         fn main() {{\n    \
             let model = Model::load({FULL:?}).unwrap_or_else(|e| panic!(\"{{e}}\"));\n    \
             Loader::new().check::<Model>({PINNED:?}).unwrap_or_else(|e| panic!(\"{{e}}\"));\n    \
             println!(\"{{}}\", model.keys().expect(\"keys\").len());\n\
         }}\n"
    );
    write(&krate.join("examples/verify.rs"), &verify);
    write_checkpoint(&krate.join(FULL), keys);
    safejax::format::write_header_only(krate.join(FULL), krate.join(PINNED))
        .expect("write the header-only file");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A safetensors file of `f32` zeros: the header as the format lays it out (offsets in key
/// order, padded with spaces to 8 bytes), then the data as a hole in a sparse file.
fn write_checkpoint(path: &Path, keys: &[(String, Vec<usize>)]) {
    let mut header = serde_json::Map::new();
    let mut at = 0usize;
    for (key, shape) in keys {
        let bytes = 4 * shape.iter().product::<usize>();
        let entry = serde_json::json!({
            "dtype": "F32",
            "shape": shape,
            "data_offsets": [at, at + bytes],
        });
        header.insert(key.clone(), entry);
        at += bytes;
    }
    let mut text = serde_json::to_vec(&header).expect("a JSON header");
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&text);
    write_bytes(path, &bytes);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open the checkpoint");
    file.set_len((bytes.len() + at) as u64)
        .expect("extend the checkpoint with zeros");
}

fn write_bytes(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

// ---- Builds.

fn cargo(krate: &Path, target: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(krate).env("CARGO_TARGET_DIR", target);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_INCREMENTAL",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs `command` in the crate `krate`; its stdout and stderr, or a panic that says why it
/// failed.
fn run(mut command: Command, what: &str, krate: &Path) -> (String, String) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let long = long_evaluations(&stderr, krate);
    if !output.status.success() && !long.is_empty() {
        panic!(
            "{what} failed: rustc's `long_running_const_eval` lint (deny by default) stopped the \
             const evaluation at {} structs: {}\n\
             (`--allow-long-const-eval` times the build without the limit)",
            long.len(),
            long.join(", "),
        );
    }
    assert!(output.status.success(), "{what} failed:\n{stdout}{stderr}");
    // Allowed, the lint still warns as the evaluation goes on: never silently.
    if stderr.contains("taking a long time") {
        println!("{what}: rustc warned of long const evaluations:\n{stderr}");
    }
    (stdout, stderr)
}

/// The structs of `krate` whose const evaluation rustc reports as taking a long time.
fn long_evaluations(stderr: &str, krate: &Path) -> Vec<String> {
    let source = std::fs::read_to_string(krate.join("src/lib.rs")).unwrap_or_default();
    let lines: Vec<&str> = source.lines().collect();
    let mut structs = Vec::new();
    let mut pending = false;
    for line in stderr.lines() {
        if line.contains("constant evaluation is taking a long time") {
            pending = true;
        }
        let at = line.trim_start().strip_prefix("--> src/lib.rs:");
        let number = at.and_then(|a| a.split(':').next()?.parse::<usize>().ok());
        if let (true, Some(number)) = (pending, number) {
            pending = false;
            let line = lines.get(number - 1).copied().unwrap_or_default();
            let name = line.trim_start_matches("pub struct ").split(' ').next();
            structs.push(name.unwrap_or_default().to_owned());
        }
    }
    structs
}

/// Builds the example that loads the full checkpoint, runs it, and removes the checkpoint: the
/// pinned header-only file stays. The dependencies are built in `target` on the way.
fn verify(krate: &Path, target: &Path, model: &Model, tensors: usize) {
    let mut command = cargo(krate, target);
    command.args(["run", "--quiet", "--example", "verify"]);
    let (stdout, _) = run(command, "the verifying load", krate);
    assert_eq!(
        stdout.trim(),
        tensors.to_string(),
        "keys of the loaded model"
    );
    std::fs::remove_file(krate.join(FULL)).expect("remove the full checkpoint");
    eprintln!(
        "verified: {} loads its {tensors} tensors strictly",
        model.defs[model.root()].name
    );
}

/// Writes the variant's source, and builds the crate alone after a `cargo clean -p` of it.
fn build_crate_alone(krate: &Path, target: &Path, model: &Model, variant: Variant) -> Duration {
    write(&krate.join("src/lib.rs"), &model.source(variant));
    let mut clean = cargo(krate, target);
    clean.args(["clean", "--quiet", "-p", CRATE]);
    run(clean, "cargo clean -p", krate);
    remove_incremental(target);
    let (time, stderr) = timed_build(krate, target);
    let compiled: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("Compiling"))
        .collect();
    assert!(
        compiled.len() == 1 && compiled[0].contains(CRATE),
        "expected the model crate alone to compile, got:\n{stderr}"
    );
    time
}

/// What `cargo clean -p` may leave: the crate's incremental cache, which would let rustc reuse
/// the const evaluations of the previous build.
fn remove_incremental(target: &Path) {
    let Ok(entries) = std::fs::read_dir(target.join("debug/incremental")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(CRATE_UNDERSCORED) {
            std::fs::remove_dir_all(entry.path()).expect("remove the incremental cache");
        }
    }
}

/// A build in a fresh target directory.
fn build_clean(krate: &Path, target: &Path, model: &Model, variant: Variant) -> Duration {
    write(&krate.join("src/lib.rs"), &model.source(variant));
    if target.exists() {
        std::fs::remove_dir_all(target).expect("remove the target directory");
    }
    timed_build(krate, target).0
}

fn timed_build(krate: &Path, target: &Path) -> (Duration, String) {
    let mut build = cargo(krate, target);
    build.arg("build");
    let start = Instant::now();
    let (_, stderr) = run(build, "cargo build", krate);
    (start.elapsed(), stderr)
}

// ---- The report.

fn report(
    alone: &BTreeMap<Variant, Vec<Duration>>,
    clean: &BTreeMap<Variant, Vec<Duration>>,
) -> String {
    let mut s = String::new();
    let seconds = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    s.push_str("| build | runs | without `expect` | with `expect` | with / without | collide-x2 | collision checks (collide-x2 - without) |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    let measures = [("model crate alone", alone), ("clean", clean)];
    let measures: Vec<_> = measures
        .into_iter()
        .filter(|(_, t)| !t.is_empty())
        .collect();
    for &(name, times) in &measures {
        let median = |v: Variant| median(&times[&v]);
        let (without, with, twice) = (
            median(Variant::Without),
            median(Variant::With),
            median(Variant::CollideTwice),
        );
        let collide = twice.as_secs_f64() - without.as_secs_f64();
        writeln!(
            s,
            "| {name} | {} | {} | {} | {:.3} | {} | {:.2} s ({:.1}% of without) |",
            times[&Variant::Without].len(),
            seconds(without),
            seconds(with),
            with.as_secs_f64() / without.as_secs_f64(),
            seconds(twice),
            collide,
            100.0 * collide / without.as_secs_f64(),
        )
        .unwrap();
    }
    s.push('\n');
    for &(name, times) in &measures {
        let pairs = &times[&Variant::With];
        let ratios: Vec<f64> = pairs
            .iter()
            .zip(&times[&Variant::Without])
            .map(|(w, o)| w.as_secs_f64() / o.as_secs_f64())
            .collect();
        let all = |v: Variant| {
            let list: Vec<String> = times[&v]
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect();
            list.join(", ")
        };
        writeln!(
            s,
            "{name}: without [{}] s; with [{}] s; collide-x2 [{}] s; with / without per run [{}]",
            all(Variant::Without),
            all(Variant::With),
            all(Variant::CollideTwice),
            ratios
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
        .unwrap();
    }
    s
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let n = sorted.len();
    match n % 2 {
        1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}
