//! Which framework named a file's keys.
//!
//! Objax keys start with the root module's class in parentheses and end with the variable's
//! kind (`(MLP).layers(Sequential)[0](Linear).w::TrainVar`); Haiku keys join modules with `/~/`
//! or `/` before the parameter name (`mlp/~/linear_0.w`); Flax keys are dotted paths
//! (`params.Dense_0.kernel`). Keys of Haiku modules at the top level only (`linear.w`) read the
//! same in Flax and Haiku, so such a file is Flax.

use safejax_core::Style;

/// The style that names `keys`, and why it was chosen (one sentence for the user).
///
/// ```
/// use safejax_cli::detect::detect;
/// use safejax_core::Style;
///
/// let (style, why) = detect(["mlp/~/linear_0.w", "mlp/~/linear_0.b"]);
/// assert_eq!(style, Style::Haiku);
/// assert_eq!(why, "2 of 2 keys join modules with `/~/` or `/`, as in `mlp/~/linear_0.w`");
/// ```
pub fn detect<'k>(keys: impl IntoIterator<Item = &'k str>) -> (Style, String) {
    let mut total = 0usize;
    let mut objax = (0usize, None);
    let mut haiku = (0usize, None);
    let mut first = None;
    for key in keys {
        total += 1;
        first.get_or_insert(key);
        if is_objax(key) {
            objax.0 += 1;
            objax.1.get_or_insert(key);
        } else if is_haiku(key) {
            haiku.0 += 1;
            haiku.1.get_or_insert(key);
        }
    }
    match (objax, haiku) {
        ((n, Some(example)), _) if n * 2 >= total => (
            Style::Objax,
            format!(
                "{n} of {total} keys start with a class in parentheses and end with a `::` \
                 variable kind, as in `{example}`"
            ),
        ),
        (_, (n, Some(example))) => (
            Style::Haiku,
            format!("{n} of {total} keys join modules with `/~/` or `/`, as in `{example}`"),
        ),
        _ => (
            Style::Flax,
            match first {
                Some(example) => format!(
                    "no key names an Objax class or joins Haiku modules with `/`: \
                     the keys are dotted paths, as in `{example}`"
                ),
                None => "there are no keys; Flax is the default".to_owned(),
            },
        ),
    }
}

/// `(Class)...::Kind`, or at least the leading class.
fn is_objax(key: &str) -> bool {
    key.starts_with('(') && key[1..].find(')').is_some_and(|end| end > 0)
}

/// A `/` in the module path, before the parameter name.
fn is_haiku(key: &str) -> bool {
    key.rsplit_once('.')
        .is_some_and(|(module, _)| module.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_is_recognised() {
        let cases: [(&[&str], Style); 5] = [
            (
                &["params.Dense_0.bias", "params.Dense_1.kernel"],
                Style::Flax,
            ),
            (&["mlp/~/linear_0.b", "mlp/~/linear_1.w"], Style::Haiku),
            (
                &["params.linear.b", "state.batch_norm/~/mean_ema.average"],
                Style::Haiku,
            ),
            (
                &[
                    "language_model.positional_embeddings",
                    "language_model/embed.embeddings",
                ],
                Style::Haiku,
            ),
            (
                &[
                    "(WideResNet)[0](Conv2D).w::TrainVar",
                    "(WideResNet)[7](BatchNorm2D).running_mean::StateVar",
                ],
                Style::Objax,
            ),
        ];
        for (keys, style) in cases {
            assert_eq!(detect(keys.iter().copied()).0, style, "{keys:?}");
        }
    }

    #[test]
    fn the_reason_names_an_example() {
        let (style, why) = detect(["(OMLP).layers(Sequential)[0](Linear).w::TrainVar"]);
        assert_eq!(style, Style::Objax);
        assert!(
            why.contains("`(OMLP).layers(Sequential)[0](Linear).w::TrainVar`"),
            "{why}"
        );
        let (style, why) = detect(["params.Dense_0.kernel"]);
        assert_eq!(style, Style::Flax);
        assert!(why.ends_with("`params.Dense_0.kernel`"), "{why}");
        assert_eq!(detect([]).0, Style::Flax);
    }

    #[test]
    fn a_slash_in_a_flax_parameter_name_is_not_haiku() {
        assert_eq!(detect(["a.b/c"]).0, Style::Flax);
    }
}
