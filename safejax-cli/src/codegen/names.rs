//! Rust names for Python ones: snake_case fields, CamelCase types, never a keyword.

/// Words Rust reserves: a field or type may not be named after one (raw identifiers are not
/// used, so such a name takes a `_` and a `rename`).
const KEYWORDS: &[&str] = &[
    "Self", "abstract", "as", "async", "await", "become", "box", "break", "const", "continue",
    "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if",
    "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
    "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Type names the generated code uses, which a generated struct must not shadow.
const TAKEN_TYPES: &[&str] = &[
    "Array0",
    "Array1",
    "Array2",
    "Array3",
    "Array4",
    "Array5",
    "Array6",
    "ArrayD",
    "Box",
    "Debug",
    "Default",
    "Err",
    "None",
    "Ok",
    "Option",
    "Result",
    "SafeParams",
    "Some",
    "String",
    "Tensor",
    "Vec",
];

/// Splits a Python name into lowercase words: at `_` and other punctuation, before an uppercase
/// letter that follows a lowercase one or a digit, and before the last capital of an acronym
/// that starts a word (`WRNBlock` is `wrn`, `block`). Digits stay with the word before them.
pub fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        let starts_word = c.is_ascii_uppercase()
            && match prev {
                Some(p) if p.is_ascii_lowercase() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
        if starts_word && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The snake_case field name for a Python name: a valid identifier that is not a keyword.
pub fn field_ident(name: &str) -> String {
    let mut ident = words(name).join("_");
    if ident.is_empty() {
        ident = "field".to_owned();
    } else if ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident = format!("field_{ident}");
    }
    if KEYWORDS.contains(&ident.as_str()) {
        ident.push('_');
    }
    ident
}

/// The CamelCase type name for a Python name or class, not shadowing a name the generated code
/// uses.
pub fn type_ident(name: &str) -> String {
    let mut ident: String = words(name)
        .iter()
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect();
    // An uppercase letter alone after a digit stays uppercase: `Conv2D`, not `Conv2d`.
    ident = keep_capital_after_digit(name, ident);
    if ident.is_empty() {
        ident = "Module".to_owned();
    } else if ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident = format!("Module{ident}");
    }
    if KEYWORDS.contains(&ident.as_str()) || TAKEN_TYPES.contains(&ident.as_str()) {
        ident.push_str("Module");
    }
    ident
}

/// Restores the capitals that follow a digit in `name` (`2D`), which [`words`] lowercased.
fn keep_capital_after_digit(name: &str, ident: String) -> String {
    let original: Vec<char> = name.chars().filter(char::is_ascii_alphanumeric).collect();
    let mut out: Vec<char> = ident.chars().collect();
    if original.len() != out.len() {
        return ident;
    }
    for i in 1..out.len() {
        if original[i - 1].is_ascii_digit() && original[i].is_ascii_uppercase() {
            out[i] = original[i];
        }
    }
    out.into_iter().collect()
}

/// Whether `name` can name a type as given: an ASCII identifier, not a keyword nor a name the
/// generated code uses.
pub fn is_type_ident(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "_"
        && !KEYWORDS.contains(&name)
        && !TAKEN_TYPES.contains(&name)
}

/// `name` without a trailing `_<digits>`: the module name Flax and Haiku number.
pub fn strip_number(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((base, digits))
            if !base.is_empty()
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

/// The name of one element of a list called `name`: `blocks` gives `block`, `layers` `layer`;
/// names that do not end in a plain `s` (`bias`, `class`, `status`, `linear`) are kept.
pub fn singular(name: &str) -> &str {
    match name.strip_suffix('s') {
        Some(stem)
            if stem.len() > 1
                && !stem.ends_with(['a', 'i', 's', 'u', '_'])
                && stem.ends_with(|c: char| c.is_ascii_alphabetic()) =>
        {
            stem
        }
        _ => name,
    }
}

/// `name` split into a base and an index when it ends in `_<digits>` written as Python writes an
/// index (no leading zero).
pub fn split_index(name: &str) -> Option<(&str, usize)> {
    let (base, digits) = name.rsplit_once('_')?;
    parse_index(digits)
        .filter(|_| !base.is_empty())
        .map(|i| (base, i))
}

/// A decimal index without a leading zero.
pub fn parse_index(digits: &str) -> Option<usize> {
    let canonical = digits == "0" || (!digits.starts_with('0') && !digits.is_empty());
    if canonical && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_snake_case_and_never_keywords() {
        assert_eq!(field_ident("Dense_0"), "dense_0");
        assert_eq!(field_ident("conv_1"), "conv_1");
        assert_eq!(field_ident("type"), "type_");
        assert_eq!(field_ident("self"), "self_");
        assert_eq!(field_ident("layerNorm"), "layer_norm");
        assert_eq!(field_ident("conv-1"), "conv_1");
        assert_eq!(field_ident("0"), "field_0");
        assert_eq!(field_ident("~"), "field");
    }

    #[test]
    fn types_are_camel_case() {
        assert_eq!(type_ident("Conv2D"), "Conv2D");
        assert_eq!(type_ident("BatchNorm2D"), "BatchNorm2D");
        assert_eq!(type_ident("WRNBlock"), "WrnBlock");
        assert_eq!(type_ident("OMLP"), "Omlp");
        assert_eq!(type_ident("mean_ema"), "MeanEma");
        assert_eq!(type_ident("Sequential"), "Sequential");
        assert_eq!(type_ident("option"), "OptionModule");
        assert_eq!(type_ident("Linear"), "Linear");
    }

    #[test]
    fn list_elements_are_singular() {
        assert_eq!(singular("blocks"), "block");
        assert_eq!(singular("layers"), "layer");
        assert_eq!(singular("bias"), "bias");
        assert_eq!(singular("class"), "class");
        assert_eq!(singular("linear"), "linear");
        assert_eq!(singular("s"), "s");
    }

    #[test]
    fn indices_are_canonical() {
        assert_eq!(split_index("Dense_10"), Some(("Dense", 10)));
        assert_eq!(split_index("linear_01"), None);
        assert_eq!(split_index("_1"), None);
        assert_eq!(strip_number("blocks_3"), "blocks");
        assert_eq!(strip_number("norm"), "norm");
    }
}
