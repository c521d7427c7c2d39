//! `safejax inspect`: the key tree of a checkpoint as its framework sees it.
//!
//! - Flax: collection, then one level per module path segment, then the variable.
//! - Haiku: collection, then the module path whole (`mlp/~/linear_0`, as in Haiku's two-level
//!   params dict), then the parameter.
//! - Objax: the root class, then each attribute or index step with its class
//!   (`[1](WRNBlock)`, `conv_1(Conv2D)`), then the variable with its kind (`TrainVar`, ...).
//!
//! Each tensor shows its dtype, shape and byte size; each collection and module its number of
//! tensors and bytes; each file its totals and metadata. With `--style auto` the style is
//! recognised from the keys ([`crate::detect::detect`]) and the report says which and why.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safejax_core::format::TensorRef;
use safejax_core::{ParsedKey, Style};
use serde_json::{Value, json};

use crate::checkpoint::Checkpoint;
use crate::output::write_failed;
use crate::units::human_bytes;
use crate::{Failure, InspectArgs, Outcome, StyleArg};

/// Flax collections recognised as the first part of a key.
const FLAX_COLLECTIONS: [&str; 8] = [
    "params",
    "batch_stats",
    "cache",
    "intermediates",
    "losses",
    "perturbations",
    "spectral",
    "state",
];

/// Runs `safejax inspect`.
pub fn run(args: &InspectArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let mut reports = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let checkpoint = Checkpoint::open(path)?;
        reports.push(Report::of(&checkpoint, args.style)?);
    }
    if args.json {
        let document = json!({
            "checkpoints": reports.iter().map(Report::to_json).collect::<Vec<_>>(),
            "totals": Totals::sum(reports.iter().map(|r| r.tree.totals)).to_json(),
        });
        let text = serde_json::to_string_pretty(&document)
            .map_err(|e| Failure(format!("cannot write the report: {e}")))?;
        writeln!(out, "{text}").map_err(write_failed)?;
    } else {
        for (i, report) in reports.iter().enumerate() {
            if i > 0 {
                writeln!(out).map_err(write_failed)?;
            }
            report.write_text(out).map_err(write_failed)?;
        }
        if reports.len() > 1 {
            let totals = Totals::sum(reports.iter().map(|r| r.tree.totals));
            writeln!(out, "\ntotal: {}", totals.describe()).map_err(write_failed)?;
        }
    }
    Ok(Outcome::Clean)
}

/// How the keys are read: the style, whether Flax/Haiku keys start with a collection, and why.
#[derive(Debug, Clone)]
pub struct Reading {
    /// The style.
    pub style: Style,
    /// Whether the first `.`-part of a Flax or Haiku key is its collection.
    pub with_collection: bool,
    /// Whether the style was recognised (`auto`) rather than given.
    pub recognised: bool,
    /// Why, in a sentence.
    pub reason: String,
}

impl Reading {
    /// How to read `keys`: in the style given, or the one [`crate::detect::detect`] recognises.
    ///
    /// Flax keys start with a collection when every key's first part is one of Flax's
    /// (`params`, `batch_stats`, `cache`, `intermediates`, `losses`, `perturbations`,
    /// `spectral`, `state`); Haiku keys when every key has two `.` (`collection.module.param`;
    /// a module path holds none).
    pub fn of(keys: &[&str], style: StyleArg) -> Self {
        let (style, recognised, mut reason) = match style {
            StyleArg::Auto => {
                let (style, why) = crate::detect::detect(keys.iter().copied());
                (style, true, format!("recognised: {why}"))
            }
            StyleArg::Flax => (Style::Flax, false, "given".to_owned()),
            StyleArg::Haiku => (Style::Haiku, false, "given".to_owned()),
            StyleArg::Objax => (Style::Objax, false, "given".to_owned()),
        };
        let with_collection = !keys.is_empty()
            && match style {
                Style::Flax => keys.iter().all(|key| {
                    key.split_once('.')
                        .is_some_and(|(first, _)| FLAX_COLLECTIONS.contains(&first))
                }),
                Style::Haiku => keys.iter().all(|key| key.matches('.').count() == 2),
                Style::Objax => false,
            };
        if with_collection {
            reason.push_str("; keys start with their collection");
        }
        Reading {
            style,
            with_collection,
            recognised,
            reason,
        }
    }

    /// The steps from the root to the tensor `key`: the collections and modules above it, and
    /// its own name; `None` when the key does not follow the style.
    fn steps(&self, key: &str) -> Option<(Vec<Step>, Step)> {
        let parsed = if self.with_collection {
            self.style.parse_with_collection(key)
        } else {
            self.style.parse(key)
        }
        .ok()?;
        let (leaf, above) = parsed.segments.split_last()?;
        let mut steps = Vec::new();
        match self.style {
            Style::Flax | Style::Haiku => {
                if let Some(collection) = &parsed.collection {
                    steps.push(Step::new(Kind::Collection, collection));
                }
                if self.style == Style::Flax {
                    steps.extend(above.iter().map(|s| Step::new(Kind::Module, &s.name)));
                } else if !above.is_empty() {
                    steps.push(Step::new(Kind::Module, &haiku_module(&parsed)));
                }
                Some((steps, Step::new(Kind::Tensor, &leaf.name)))
            }
            Style::Objax => {
                if let Some(root) = &parsed.root_class {
                    steps.push(Step {
                        kind: Kind::Module,
                        name: String::new(),
                        indexed: false,
                        class: Some(root.clone()),
                    });
                }
                steps.extend(above.iter().map(|s| Step {
                    kind: Kind::Module,
                    name: s.name.clone(),
                    indexed: s.indexed,
                    class: s.class.clone(),
                }));
                let leaf = Step {
                    indexed: leaf.indexed,
                    ..Step::new(Kind::Tensor, &leaf.name)
                };
                Some((steps, leaf))
            }
        }
    }
}

/// A Haiku key's module path, as written (`mlp/~/linear_0`).
fn haiku_module(parsed: &ParsedKey) -> String {
    let mut module = String::new();
    for segment in &parsed.segments[..parsed.segments.len().saturating_sub(1)] {
        if let Some(sep) = segment.sep {
            module.push_str(sep.as_str());
        }
        module.push_str(&segment.name);
    }
    module
}

/// What a node of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Collection,
    Module,
    Tensor,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Collection => "collection",
            Kind::Module => "module",
            Kind::Tensor => "tensor",
        }
    }
}

/// One step of a key's path.
#[derive(Debug, Clone)]
struct Step {
    kind: Kind,
    name: String,
    /// Written `[name]` (an Objax index).
    indexed: bool,
    /// The Objax class after the step.
    class: Option<String>,
}

impl Step {
    fn new(kind: Kind, name: &str) -> Self {
        Step {
            kind,
            name: name.to_owned(),
            indexed: false,
            class: None,
        }
    }

    /// The step as its framework writes it: `Dense_0`, `[1](WRNBlock)`, `(WideResNet)`.
    fn label(&self) -> String {
        let mut label = if self.indexed {
            format!("[{}]", self.name)
        } else {
            self.name.clone()
        };
        if let Some(class) = &self.class {
            label.push_str(&format!("({class})"));
        }
        label
    }
}

/// Counts under a node.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    tensors: u64,
    parameters: u64,
    bytes: u64,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.tensors += other.tensors;
        self.parameters += other.parameters;
        self.bytes += other.bytes;
    }

    fn sum(all: impl Iterator<Item = Totals>) -> Totals {
        let mut sum = Totals::default();
        all.for_each(|t| sum.add(t));
        sum
    }

    fn describe(&self) -> String {
        format!(
            "{} tensor{}, {} parameters, {} of tensor data",
            self.tensors,
            if self.tensors == 1 { "" } else { "s" },
            self.parameters,
            human_bytes(self.bytes)
        )
    }

    fn to_json(self) -> Value {
        json!({"tensors": self.tensors, "parameters": self.parameters, "bytes": self.bytes})
    }
}

/// A tensor of the tree.
#[derive(Debug, Clone)]
struct Tensor {
    key: String,
    dtype: String,
    shape: Vec<usize>,
    /// The Objax variable kind, where the key names one.
    var_kind: Option<String>,
}

/// A node of the key tree.
#[derive(Debug, Default)]
struct Node {
    step: Option<Step>,
    tensor: Option<Tensor>,
    totals: Totals,
    children: Vec<Node>,
    /// Where each module or collection child is in `children`, by label.
    index: HashMap<String, usize>,
}

impl Node {
    /// Adds the tensor `key` under `steps`.
    fn insert(&mut self, steps: &[Step], leaf: Step, tensor: Tensor, totals: Totals) {
        self.totals.add(totals);
        let Some((first, rest)) = steps.split_first() else {
            self.children.push(Node {
                step: Some(leaf),
                tensor: Some(tensor),
                totals,
                ..Node::default()
            });
            return;
        };
        let label = first.label();
        let at = match self.index.get(&label) {
            Some(&at) => at,
            None => {
                self.children.push(Node {
                    step: Some(first.clone()),
                    ..Node::default()
                });
                self.index.insert(label, self.children.len() - 1);
                self.children.len() - 1
            }
        };
        self.children[at].insert(rest, leaf, tensor, totals);
    }

    /// Orders every level naturally: `[2]` before `[10]`, `linear` before `linear_1`.
    fn sort(&mut self) {
        self.children
            .sort_by(|a, b| natural_cmp(&a.label(), &b.label()));
        self.index.clear();
        self.children.iter_mut().for_each(Node::sort);
    }

    fn label(&self) -> String {
        self.step.as_ref().map(Step::label).unwrap_or_default()
    }

    fn to_json(&self) -> Value {
        let Some(step) = &self.step else {
            return json!({
                "totals": self.totals.to_json(),
                "children": self.children.iter().map(Node::to_json).collect::<Vec<_>>(),
            });
        };
        let mut node = json!({"kind": step.kind.as_str(), "name": step.name});
        if step.indexed {
            node["indexed"] = json!(true);
        }
        if let Some(class) = &step.class {
            node["class"] = json!(class);
        }
        match &self.tensor {
            Some(tensor) => {
                node["key"] = json!(tensor.key);
                node["dtype"] = json!(tensor.dtype);
                node["shape"] = json!(tensor.shape);
                node["parameters"] = json!(self.totals.parameters);
                node["bytes"] = json!(self.totals.bytes);
                if let Some(kind) = &tensor.var_kind {
                    node["var_kind"] = json!(kind);
                }
            }
            None => {
                node["totals"] = self.totals.to_json();
                node["children"] = self.children.iter().map(Node::to_json).collect();
            }
        }
        node
    }

    /// The lines of the subtree, `depth` levels in.
    fn lines(&self, depth: usize, out: &mut Vec<Line>) {
        for child in &self.children {
            let (middle, extra) = match &child.tensor {
                Some(tensor) => (
                    format!("{} {:?}", tensor.dtype, tensor.shape),
                    tensor.var_kind.clone().unwrap_or_default(),
                ),
                None => (
                    format!(
                        "{} tensor{}",
                        child.totals.tensors,
                        if child.totals.tensors == 1 { "" } else { "s" }
                    ),
                    String::new(),
                ),
            };
            out.push(Line {
                label: format!("{}{}", "  ".repeat(depth), child.label()),
                middle,
                bytes: human_bytes(child.totals.bytes),
                extra,
            });
            child.lines(depth + 1, out);
        }
    }
}

/// One line of the text tree, in columns.
struct Line {
    label: String,
    middle: String,
    bytes: String,
    extra: String,
}

/// The widest label column; longer labels push their own line only.
const MAX_LABEL_WIDTH: usize = 64;

/// Compares names with their runs of digits as numbers.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let run = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                let (na, nb) = (run(a), run(b));
                let (da, db) = (
                    a[..na].trim_start_matches('0'),
                    b[..nb].trim_start_matches('0'),
                );
                let order = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (&a[na..], &b[nb..]);
            }
            (Some(x), Some(y)) if x != y => return x.cmp(&y),
            (Some(x), Some(_)) => (a, b) = (&a[x.len_utf8()..], &b[x.len_utf8()..]),
        }
    }
}

/// What `inspect` reports on one checkpoint.
struct Report {
    path: String,
    files: Vec<(String, u64, usize)>,
    reading: Reading,
    unparsed: usize,
    metadata: safejax_core::Metadata,
    warnings: Vec<String>,
    tree: Node,
}

impl Report {
    fn of(checkpoint: &Checkpoint, style: StyleArg) -> Result<Self, Failure> {
        let tensors = checkpoint.parse()?;
        let keys: Vec<&str> = tensors.iter().map(|(key, _)| key).collect();
        let reading = Reading::of(&keys, style);
        let mut tree = Node::default();
        let mut unparsed = 0;
        for (key, entry) in tensors.iter() {
            let tensor = entry.tensor;
            let (steps, leaf) = reading.steps(key).unwrap_or_else(|| {
                unparsed += 1;
                (Vec::new(), Step::new(Kind::Tensor, key))
            });
            let var_kind = (reading.style == Style::Objax)
                .then(|| key.rsplit_once("::").map(|(_, kind)| kind.to_owned()))
                .flatten();
            tree.insert(
                &steps,
                leaf,
                describe(key, &tensor, var_kind),
                totals(&tensor),
            );
        }
        tree.sort();
        let files = checkpoint
            .files()
            .iter()
            .zip(tensors.counts())
            .map(|(file, count)| (shown(file.path()), file.len(), count))
            .collect();
        Ok(Report {
            path: shown(checkpoint.path()),
            files,
            reading,
            unparsed,
            metadata: tensors.metadata.clone(),
            warnings: checkpoint.warnings().to_vec(),
            tree,
        })
    }

    fn file_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }

    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let bytes = self.file_bytes();
        writeln!(
            out,
            "{}: {}; file {} ({bytes} bytes)",
            self.path,
            self.tree.totals.describe(),
            human_bytes(bytes)
        )?;
        if self.files.len() > 1 {
            for (path, len, count) in &self.files {
                writeln!(
                    out,
                    "  shard {path}: {count} tensors, {}",
                    human_bytes(*len)
                )?;
            }
        }
        for warning in &self.warnings {
            writeln!(out, "warning: {warning}")?;
        }
        writeln!(
            out,
            "style: {} ({})",
            self.reading.style, self.reading.reason
        )?;
        if self.unparsed > 0 {
            writeln!(
                out,
                "{} keys do not follow the {} style; they are shown whole",
                self.unparsed, self.reading.style
            )?;
        }
        if self.metadata.is_empty() {
            writeln!(out, "metadata: none")?;
        } else {
            writeln!(out, "metadata:")?;
            for (key, value) in &self.metadata {
                writeln!(out, "  {}: {}", key.escape_debug(), value.escape_debug())?;
            }
        }
        writeln!(out)?;
        let mut lines = Vec::new();
        self.tree.lines(0, &mut lines);
        let width = |f: fn(&Line) -> usize| lines.iter().map(f).max().unwrap_or(0);
        let label = width(|l| l.label.chars().count()).min(MAX_LABEL_WIDTH);
        let middle = width(|l| l.middle.len());
        let bytes = width(|l| l.bytes.len());
        for line in &lines {
            let text = format!(
                "{:<label$}  {:<middle$}  {:>bytes$}  {}",
                line.label, line.middle, line.bytes, line.extra
            );
            writeln!(out, "{}", text.trim_end())?;
        }
        Ok(())
    }

    fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "files": self.files.iter().map(|(path, bytes, tensors)| json!({
                "path": path, "bytes": bytes, "tensors": tensors,
            })).collect::<Vec<_>>(),
            "style": self.reading.style.name(),
            "style_recognised": self.reading.recognised,
            "style_reason": self.reading.reason,
            "keys_have_collection": self.reading.with_collection,
            "unparsed_keys": self.unparsed,
            "metadata": self.metadata,
            "warnings": self.warnings,
            "totals": self.tree.totals.to_json(),
            "tree": self.tree.children.iter().map(Node::to_json).collect::<Vec<_>>(),
        })
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn describe(key: &str, tensor: &TensorRef<'_, '_>, var_kind: Option<String>) -> Tensor {
    Tensor {
        key: key.to_owned(),
        dtype: tensor.dtype().to_string(),
        shape: tensor.shape().to_vec(),
        var_kind,
    }
}

fn totals(tensor: &TensorRef<'_, '_>) -> Totals {
    Totals {
        tensors: 1,
        parameters: tensor.shape().iter().map(|&d| d as u64).product(),
        bytes: tensor.byte_len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_reads_numbers_as_numbers() {
        let mut names = vec![
            "[10]",
            "[2]",
            "linear_1",
            "linear",
            "[1](WRNBlock)",
            "a01",
            "a1",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "[1](WRNBlock)",
                "[2]",
                "[10]",
                "a01",
                "a1",
                "linear",
                "linear_1"
            ]
        );
    }

    #[test]
    fn collections_are_recognised_only_when_every_key_has_one() {
        let flax = Reading::of(
            &["params.Dense_0.kernel", "batch_stats.bn.mean"],
            StyleArg::Auto,
        );
        assert_eq!((flax.style, flax.with_collection), (Style::Flax, true));
        let bare = Reading::of(&["params.Dense_0.kernel", "Dense_1.bias"], StyleArg::Flax);
        assert!(!bare.with_collection);
        let haiku = Reading::of(
            &["state.bn/~/mean_ema.average", "params.bn.scale"],
            StyleArg::Auto,
        );
        assert_eq!((haiku.style, haiku.with_collection), (Style::Haiku, true));
        let lm = Reading::of(&["lm.pos", "lm/embed.embeddings"], StyleArg::Auto);
        assert_eq!((lm.style, lm.with_collection), (Style::Haiku, false));
    }

    #[test]
    fn steps_follow_each_framework() {
        let haiku = Reading::of(&["state.bn/~/mean_ema.average"], StyleArg::Haiku);
        let (steps, leaf) = haiku
            .steps("state.bn/~/mean_ema.average")
            .unwrap_or_default();
        let labels: Vec<String> = steps.iter().map(Step::label).collect();
        assert_eq!(
            (labels, leaf.label()),
            (
                vec!["state".to_owned(), "bn/~/mean_ema".to_owned()],
                "average".to_owned()
            )
        );
        let objax = Reading::of(&[], StyleArg::Objax);
        let (steps, leaf) = objax
            .steps("(WideResNet)[1](WRNBlock).conv_1(Conv2D).w::TrainVar")
            .unwrap_or_default();
        let labels: Vec<String> = steps.iter().map(Step::label).collect();
        assert_eq!(labels, ["(WideResNet)", "[1](WRNBlock)", "conv_1(Conv2D)"]);
        assert_eq!(leaf.label(), "w");
    }

    impl Default for Step {
        fn default() -> Self {
            Step::new(Kind::Tensor, "")
        }
    }
}
