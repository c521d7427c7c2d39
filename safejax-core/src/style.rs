//! The three naming styles: how a [`KeyPath`] becomes a flat key, and how a flat key is read back.

use std::fmt;
use std::str::FromStr;

use crate::error::KeyError;
use crate::key::{HaikuSep, KeyPath, Numbering, Segment, SegmentName};

/// How keys are written: the conventions of one JAX framework.
///
/// | style | example key |
/// |---|---|
/// | `Flax`  | `params.Dense_0.kernel` |
/// | `Haiku` | `mlp/~/linear_0.w`, `state.batch_norm/~/mean_ema.average` |
/// | `Objax` | `(MLP).layers(Sequential)[0](Linear).w::TrainVar` |
///
/// ```
/// use safejax_core::Style;
/// assert_eq!("haiku".parse::<Style>().unwrap(), Style::Haiku);
/// assert_eq!(Style::Objax.to_string(), "objax");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Style {
    /// `flax.linen`: nested dicts joined with `.`, collection first.
    #[default]
    Flax,
    /// `dm-haiku`: module paths joined with `/~/` or `/`, then `.` and the parameter name.
    Haiku,
    /// Objax: `(Class).attr(Class)[i](Class).var::VarKind`.
    Objax,
}

/// The Objax variable kind written when no collection is declared.
pub const OBJAX_DEFAULT_KIND: &str = "TrainVar";

impl Style {
    /// All three styles.
    pub const ALL: [Style; 3] = [Style::Flax, Style::Haiku, Style::Objax];

    /// The lowercase name used in attributes: `flax`, `haiku`, `objax`.
    pub fn name(self) -> &'static str {
        match self {
            Style::Flax => "flax",
            Style::Haiku => "haiku",
            Style::Objax => "objax",
        }
    }

    /// Renders `path`. With `with_collection` false, Flax and Haiku keys leave the collection out
    /// (a file holding one collection, such as Flax `variables["params"]`); Objax keys always
    /// carry their `::Kind`.
    ///
    /// ```
    /// use safejax_core::{KeyPath, Segment, Style};
    /// let mut path = KeyPath::new();
    /// path.set_root_class(Some("MLP".into()));
    /// path.push(Segment { class: Some("Linear".into()), ..Segment::field("layer") });
    /// path.push(Segment::field("w"));
    /// assert_eq!(Style::Objax.render(&path, true), "(MLP).layer(Linear).w::TrainVar");
    /// assert_eq!(Style::Haiku.render(&path, false), "layer.w");
    /// ```
    pub fn render(self, path: &KeyPath, with_collection: bool) -> String {
        let mut out = String::new();
        self.render_into(path, with_collection, &mut out);
        out
    }

    /// [`Style::render`] appending to `out`, whose memory a caller can reuse key after key.
    pub(crate) fn render_into(self, path: &KeyPath, with_collection: bool, out: &mut String) {
        match self {
            Style::Flax | Style::Haiku => {
                if with_collection && let Some(collection) = path.collection() {
                    out.push_str(collection);
                    out.push('.');
                }
                self.render_steps(path.segments(), out, false);
            }
            Style::Objax => {
                render_objax(path, out);
                out.push_str("::");
                out.push_str(path.collection().unwrap_or(OBJAX_DEFAULT_KIND));
            }
        }
    }

    /// What every key under `path` starts with, leaving out the collection: the text a file key
    /// (or, for Flax and Haiku, its part after the collection) must begin with to belong to the
    /// value at `path`. Every step counts as a module, so Haiku joins even the last with its
    /// separator.
    pub(crate) fn prefix(self, path: &KeyPath) -> String {
        let mut out = String::new();
        match self {
            Style::Objax => render_objax(path, &mut out),
            _ => self.render_steps(path.segments(), &mut out, true),
        }
        out
    }

    /// The part of a rendered key that names the children of a map at `path` (the last segment
    /// of `path` is the map's own): the text before and after a child's key.
    pub(crate) fn child_affixes(self, path: &KeyPath, with_collection: bool) -> (String, String) {
        const MARK: &str = "\u{0}";
        let mut probe = path.clone();
        probe.push_key(MARK);
        let rendered = match self {
            Style::Objax => {
                let mut out = String::new();
                render_objax(&probe, &mut out);
                out
            }
            _ => self.render(&probe, with_collection),
        };
        match rendered.split_once(MARK) {
            Some((before, after)) => (before.to_owned(), after.to_owned()),
            None => (rendered, String::new()),
        }
    }

    /// Joins the steps; unless `all_modules`, the last step that is not joined to the one before
    /// it is the parameter name, joined with `.` in Haiku. A list element is joined to its list
    /// by the list's [`Numbering`]: `_<i>`; nothing for the first with Haiku's numbering and
    /// `_<i>` for the others; or as a module named `<i>`.
    fn render_steps(self, segments: &[Segment], out: &mut String, all_modules: bool) {
        let start = out.len();
        let numbering = |i: usize| match i.checked_sub(1).map(|at| &segments[at]) {
            Some(list) if segments[i].is_element() => list.numbering,
            _ => Numbering::Index,
        };
        let joined = |i: usize| segments[i].is_element() && numbering(i) != Numbering::Nested;
        for (i, segment) in segments.iter().enumerate() {
            let element = joined(i);
            if element && numbering(i) == Numbering::Haiku && segment.name == SegmentName::Index(0)
            {
                continue;
            }
            if element && out.len() > start {
                out.push('_');
            } else if out.len() > start {
                // The parameter name is the last step that is not joined to the one before.
                let leaf = !all_modules && !(i + 1..segments.len()).any(|j| !joined(j));
                // A nested element is joined to its list as the list is to its parent.
                let sep = match i.checked_sub(1) {
                    Some(list) if segment.is_element() => segments[list].sep,
                    _ => segment.sep,
                };
                out.push_str(match self {
                    Style::Haiku if !leaf => sep.as_str(),
                    _ => ".",
                });
            }
            push_name(&segment.name, out);
        }
    }

    /// Splits a flat key into its parts, the way this style writes them.
    ///
    /// Flax keys split on `.`; Haiku keys into module path, separators and parameter name; Objax
    /// keys into root class, attribute and index steps with their classes, and the `::Kind`
    /// suffix. Objax keys are never split on `.` alone. Flax and Haiku keys here carry no
    /// collection; see [`Style::parse_with_collection`].
    ///
    /// ```
    /// use safejax_core::Style;
    /// let key = Style::Objax.parse("(OMLP).layers(Sequential)[2](Linear).w::TrainVar").unwrap();
    /// assert_eq!(key.root_class.as_deref(), Some("OMLP"));
    /// assert_eq!(key.collection.as_deref(), Some("TrainVar"));
    /// assert_eq!(key.names(), ["layers", "2", "w"]);
    ///
    /// let key = Style::Haiku.parse("encoder/~/block/proj.w").unwrap();
    /// assert_eq!(key.names(), ["encoder", "block", "proj", "w"]);
    /// assert!(Style::Flax.parse("params..kernel").is_err());
    /// ```
    pub fn parse(self, key: &str) -> Result<ParsedKey, KeyError> {
        match self {
            Style::Flax => parse_flax(key, None),
            Style::Haiku => parse_haiku(key, None),
            Style::Objax => parse_objax(key),
        }
    }

    /// Like [`Style::parse`], but the first `.`-separated part of a Flax or Haiku key is the
    /// collection (`params.Dense_0.kernel`, `state.batch_norm/~/mean_ema.average`).
    ///
    /// ```
    /// use safejax_core::Style;
    /// let key = Style::Haiku.parse_with_collection("state.batch_norm/~/mean_ema.average").unwrap();
    /// assert_eq!(key.collection.as_deref(), Some("state"));
    /// assert_eq!(key.names(), ["batch_norm", "mean_ema", "average"]);
    /// ```
    pub fn parse_with_collection(self, key: &str) -> Result<ParsedKey, KeyError> {
        match self {
            Style::Objax => parse_objax(key),
            _ => {
                let (collection, rest) = key.split_once('.').ok_or_else(|| KeyError {
                    key: key.to_owned(),
                    reason: "has no collection before its first `.`".to_owned(),
                })?;
                if collection.is_empty() {
                    return Err(KeyError::new(key, "has an empty collection"));
                }
                let collection = Some(collection.to_owned());
                match self {
                    Style::Flax => parse_flax(rest, collection).map_err(|e| e.in_key(key)),
                    _ => parse_haiku(rest, collection).map_err(|e| e.in_key(key)),
                }
            }
        }
    }
}

fn push_name(name: &SegmentName, out: &mut String) {
    match name {
        SegmentName::Field(name) => out.push_str(name),
        SegmentName::Key(key) => out.push_str(key),
        SegmentName::Position(i) => {
            out.push_str("layers_");
            out.push_str(&i.to_string());
        }
        SegmentName::Index(i) => out.push_str(&i.to_string()),
    }
}

fn render_objax(path: &KeyPath, out: &mut String) {
    if let Some(class) = path.root_class() {
        out.push('(');
        out.push_str(class);
        out.push(')');
    }
    let segments = path.segments();
    for (i, segment) in segments.iter().enumerate() {
        match &segment.name {
            SegmentName::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            name => {
                out.push('[');
                match name {
                    SegmentName::Position(i) | SegmentName::Index(i) => {
                        out.push_str(&i.to_string())
                    }
                    SegmentName::Key(key) => out.push_str(key),
                    SegmentName::Field(_) => {}
                }
                out.push(']');
            }
        }
        if i + 1 < segments.len()
            && let Some(class) = &segment.class
        {
            out.push('(');
            out.push_str(class);
            out.push(')');
        }
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Style {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flax" => Ok(Style::Flax),
            "haiku" => Ok(Style::Haiku),
            "objax" => Ok(Style::Objax),
            _ => Err(KeyError::new(
                s,
                "is not a style: expected `flax`, `haiku` or `objax`",
            )),
        }
    }
}

/// One step of a parsed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSegment {
    /// The name: a field name, or an index or map key written in `[...]` (Objax).
    pub name: String,
    /// Whether it was written as `[...]` (Objax list index or map key).
    pub indexed: bool,
    /// The Objax class that follows the step, if any.
    pub class: Option<String>,
    /// The Haiku separator before the step (`None` for the first step and the parameter name).
    pub sep: Option<HaikuSep>,
}

/// A flat key split into its parts by [`Style::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// The collection: Flax/Haiku prefix, Objax `::Kind` suffix.
    pub collection: Option<String>,
    /// The Objax root class.
    pub root_class: Option<String>,
    /// The steps from the root to the leaf; the last one is the parameter name.
    pub segments: Vec<ParsedSegment>,
}

impl ParsedKey {
    /// The names of all steps.
    pub fn names(&self) -> Vec<&str> {
        self.segments.iter().map(|s| s.name.as_str()).collect()
    }
}

fn plain(name: &str, sep: Option<HaikuSep>) -> ParsedSegment {
    ParsedSegment {
        name: name.to_owned(),
        indexed: false,
        class: None,
        sep,
    }
}

fn parse_flax(key: &str, collection: Option<String>) -> Result<ParsedKey, KeyError> {
    let mut segments = Vec::new();
    for part in key.split('.') {
        if part.is_empty() {
            return Err(KeyError::new(key, "has an empty segment"));
        }
        segments.push(plain(part, None));
    }
    Ok(ParsedKey {
        collection,
        root_class: None,
        segments,
    })
}

fn parse_haiku(key: &str, collection: Option<String>) -> Result<ParsedKey, KeyError> {
    let Some((module, leaf)) = key.rsplit_once('.') else {
        return Err(KeyError::new(
            key,
            "has no `.` between module path and parameter name",
        ));
    };
    if leaf.is_empty() {
        return Err(KeyError::new(key, "has an empty parameter name"));
    }
    if module.contains('.') {
        return Err(KeyError::new(key, "has a `.` inside its module path"));
    }
    let mut segments = Vec::new();
    let mut rest = module;
    let mut sep = None;
    loop {
        let (name, next, next_sep) = match rest.find('/') {
            None => (rest, None, None),
            Some(at) if rest[at..].starts_with("/~/") && at > 0 => (
                &rest[..at],
                Some(&rest[at + 3..]),
                Some(HaikuSep::Constructor),
            ),
            Some(at) => (&rest[..at], Some(&rest[at + 1..]), Some(HaikuSep::Call)),
        };
        if name.is_empty() {
            return Err(KeyError::new(key, "has an empty module name"));
        }
        segments.push(plain(name, sep));
        match next {
            Some(next) => {
                rest = next;
                sep = next_sep;
            }
            None => break,
        }
    }
    segments.push(plain(leaf, None));
    Ok(ParsedKey {
        collection,
        root_class: None,
        segments,
    })
}

fn parse_objax(key: &str) -> Result<ParsedKey, KeyError> {
    let (body, kind) = match key.rsplit_once("::") {
        Some((body, kind)) if !kind.is_empty() => (body, Some(kind.to_owned())),
        Some(_) => return Err(KeyError::new(key, "has an empty `::` variable kind")),
        None => (key, None),
    };
    let bytes = body.as_bytes();
    let mut at = 0;
    let mut root_class = None;
    let mut segments: Vec<ParsedSegment> = Vec::new();
    let close = |at: usize, open: u8, close: u8| -> Result<(usize, &str), KeyError> {
        let end = body[at + 1..]
            .find(close as char)
            .map(|i| at + 1 + i)
            .ok_or_else(|| KeyError::new(key, format!("has an unclosed `{}`", open as char)))?;
        let inner = &body[at + 1..end];
        if inner.is_empty() {
            return Err(KeyError::new(
                key,
                format!("has an empty `{}{}`", open as char, close as char),
            ));
        }
        Ok((end + 1, inner))
    };
    while at < bytes.len() {
        match bytes[at] {
            b'(' => {
                let (next, class) = close(at, b'(', b')')?;
                match segments.last_mut() {
                    Some(segment) if segment.class.is_none() => {
                        segment.class = Some(class.to_owned())
                    }
                    None if root_class.is_none() => root_class = Some(class.to_owned()),
                    _ => return Err(KeyError::new(key, "has two classes in a row")),
                }
                at = next;
            }
            b'[' => {
                let (next, name) = close(at, b'[', b']')?;
                segments.push(ParsedSegment {
                    name: name.to_owned(),
                    indexed: true,
                    class: None,
                    sep: None,
                });
                at = next;
            }
            b'.' => {
                let end = body[at + 1..]
                    .find(['.', '(', '['])
                    .map_or(body.len(), |i| at + 1 + i);
                let name = &body[at + 1..end];
                if name.is_empty() {
                    return Err(KeyError::new(key, "has an empty attribute name"));
                }
                segments.push(plain(name, None));
                at = end;
            }
            _ => {
                return Err(KeyError::new(
                    key,
                    format!("has an unexpected character at byte {at}: expected `(`, `[` or `.`"),
                ));
            }
        }
    }
    if segments.is_empty() {
        return Err(KeyError::new(key, "names no variable"));
    }
    Ok(ParsedKey {
        collection: kind,
        root_class,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{FieldInfo, NodeInfo};

    fn field(name: &'static str) -> FieldInfo {
        FieldInfo {
            name: Some(name),
            position: 0,
            class: None,
            collection: None,
            sep: HaikuSep::Constructor,
            numbering: crate::key::Numbering::Index,
        }
    }

    /// Builds a path from `(name, class)` steps; `None` names are list indices.
    fn path(collection: Option<&'static str>, root: &'static str, steps: &[Segment]) -> KeyPath {
        let mut path = KeyPath::new();
        path.set_root_class(Some(root.into()));
        path.set_collection(collection.map(Into::into));
        for step in steps {
            path.push(step.clone());
        }
        path
    }

    fn f(name: &'static str, class: Option<&'static str>, sep: HaikuSep) -> Segment {
        Segment {
            class: class.map(Into::into),
            sep,
            ..Segment::field(name)
        }
    }

    fn idx(i: usize, class: Option<&'static str>) -> Segment {
        let mut p = KeyPath::new();
        p.push_index(i);
        let mut s = p.pop().unwrap_or_else(|| Segment::field("unreachable"));
        s.class = class.map(Into::into);
        s
    }

    const C: HaikuSep = HaikuSep::Constructor;

    #[test]
    fn flax_keys_of_naming_md() {
        let p = path(
            Some("params"),
            "Mlp",
            &[f("Dense_0", Some("Dense"), C), f("kernel", None, C)],
        );
        assert_eq!(p.render(Style::Flax), "params.Dense_0.kernel");
        assert_eq!(Style::Flax.render(&p, false), "Dense_0.kernel");
        let p = path(
            Some("batch_stats"),
            "Net",
            &[
                f("blocks", None, C),
                idx(0, Some("Block")),
                f("norm", None, C),
                f("mean", None, C),
            ],
        );
        assert_eq!(p.render(Style::Flax), "batch_stats.blocks_0.norm.mean");
    }

    #[test]
    fn haiku_keys_of_naming_md() {
        let p = path(
            None,
            "Mlp",
            &[
                f("mlp", None, C),
                f("linear", None, C),
                idx(0, None),
                f("w", None, C),
            ],
        );
        assert_eq!(p.render(Style::Haiku), "mlp/~/linear_0.w");
        let call = HaikuSep::Call;
        let p = path(
            None,
            "M",
            &[
                f("encoder", None, C),
                f("block", None, call),
                f("proj", None, call),
                f("w", None, C),
            ],
        );
        assert_eq!(p.render(Style::Haiku), "encoder/block/proj.w");
        let p = path(
            Some("state"),
            "M",
            &[
                f("batch_norm", None, C),
                f("mean_ema", None, C),
                f("average", None, C),
            ],
        );
        assert_eq!(
            p.render(Style::Haiku),
            "state.batch_norm/~/mean_ema.average"
        );
        let p = path(None, "M", &[f("ws", None, C), idx(1, None)]);
        assert_eq!(p.render(Style::Haiku), "ws_1");
    }

    #[test]
    fn objax_keys_of_naming_md() {
        let p = path(
            None,
            "MLP",
            &[
                f("layers", Some("Sequential"), C),
                idx(0, Some("Linear")),
                f("w", None, C),
            ],
        );
        assert_eq!(
            p.render(Style::Objax),
            "(MLP).layers(Sequential)[0](Linear).w::TrainVar"
        );
        let p = path(
            Some("StateVar"),
            "Net",
            &[
                f("body", Some("Block"), C),
                f("bn", Some("BatchNorm0D"), C),
                f("running_mean", None, C),
            ],
        );
        assert_eq!(
            p.render(Style::Objax),
            "(Net).body(Block).bn(BatchNorm0D).running_mean::StateVar"
        );
    }

    #[test]
    fn tuple_positions() {
        let mut p = KeyPath::new();
        let root = p.enter_node(&NodeInfo {
            class: "Seq",
            collection: None,
        });
        let pos = FieldInfo {
            name: None,
            position: 2,
            ..field("x")
        };
        let s = p.enter_field(&pos);
        let n = p.enter_node(&NodeInfo {
            class: "Linear",
            collection: None,
        });
        let w = p.enter_field(&field("w"));
        assert_eq!(p.render(Style::Flax), "layers_2.w");
        assert_eq!(p.render(Style::Objax), "(Seq)[2](Linear).w::TrainVar");
        p.leave_field(w);
        p.leave_node(n);
        p.leave_field(s);
        p.leave_node(root);
    }

    #[test]
    fn parse_round_trips_every_example() {
        for (style, key, names) in [
            (Style::Flax, "Dense_0.kernel", vec!["Dense_0", "kernel"]),
            (
                Style::Haiku,
                "mlp/~/linear_0.w",
                vec!["mlp", "linear_0", "w"],
            ),
            (
                Style::Haiku,
                "encoder/block/proj.w",
                vec!["encoder", "block", "proj", "w"],
            ),
            (Style::Haiku, "a/~/b/c/~/d.w", vec!["a", "b", "c", "d", "w"]),
            (Style::Haiku, "~.w", vec!["~", "w"]),
            (
                Style::Objax,
                "(MLP).layers(Sequential)[0](Linear).w::TrainVar",
                vec!["layers", "0", "w"],
            ),
            (
                Style::Objax,
                "(Net).body(Block).bn(BatchNorm0D).running_mean::StateVar",
                vec!["body", "bn", "running_mean"],
            ),
        ] {
            let parsed = style.parse(key).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(parsed.names(), names, "{key}");
        }
        let h = Style::Haiku
            .parse("a/~/b/c.w")
            .unwrap_or_else(|e| panic!("{e}"));
        let seps: Vec<_> = h.segments.iter().map(|s| s.sep).collect();
        assert_eq!(seps, [None, Some(C), Some(HaikuSep::Call), None]);
        let o = Style::Objax
            .parse("(MLP).layers(Sequential)[0](Linear).w::TrainVar")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.segments[0].class.as_deref(), Some("Sequential"));
        assert!(o.segments[1].indexed);
        assert_eq!(o.segments[1].class.as_deref(), Some("Linear"));
        let f = Style::Flax
            .parse_with_collection("params.Dense_0.kernel")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.collection.as_deref(), Some("params"));
    }

    #[test]
    fn malformed_keys_are_refused_with_the_reason() {
        for (style, key, reason) in [
            (Style::Flax, "", "empty segment"),
            (Style::Flax, "a..b", "empty segment"),
            (Style::Flax, "a.", "empty segment"),
            (Style::Haiku, "mlp/~/linear", "no `.`"),
            (Style::Haiku, "mlp//x.w", "empty module"),
            (Style::Haiku, "mlp.", "empty parameter"),
            (Style::Haiku, "a.b.c", "inside its module"),
            (Style::Objax, "(MLP", "unclosed `(`"),
            (Style::Objax, "(MLP).l[0", "unclosed `[`"),
            (Style::Objax, "(MLP).w::", "empty `::`"),
            (Style::Objax, "(MLP)..w", "empty attribute"),
            (Style::Objax, "(MLP)", "names no variable"),
            (Style::Objax, "(MLP)()", "empty `()`"),
            (Style::Objax, "MLP.w", "unexpected character at byte 0"),
        ] {
            let err = style
                .parse(key)
                .err()
                .unwrap_or_else(|| panic!("{key:?} parsed"));
            let text = err.to_string();
            assert!(text.contains(reason), "{key:?}: {text}");
            assert!(text.contains(&format!("`{key}`")), "{key:?}: {text}");
        }
        assert!(Style::Flax.parse_with_collection("kernel").is_err());
    }

    #[test]
    fn map_children_affixes() {
        let mut p = KeyPath::new();
        p.set_root_class(Some("Net".into()));
        p.set_collection(Some("params".into()));
        p.push(Segment {
            class: Some("ModuleDict".into()),
            ..Segment::field("heads")
        });
        assert_eq!(
            Style::Flax.child_affixes(&p, true),
            ("params.heads_".to_owned(), String::new())
        );
        assert_eq!(
            Style::Objax.child_affixes(&p, true),
            ("(Net).heads(ModuleDict)[".to_owned(), "]".to_owned())
        );
    }
}
