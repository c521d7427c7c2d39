//! Which framework named a file's keys.

use safejax_core::Style;

/// The style that names `keys`, and why it was chosen (one sentence for the user).
pub fn detect<'k>(keys: impl IntoIterator<Item = &'k str>) -> (Style, String) {
    let mut haiku = 0usize;
    let mut objax = 0usize;
    let mut total = 0usize;
    for key in keys {
        total += 1;
        if key.contains('(') && key.contains(')') {
            objax += 1;
        } else if key.contains('/') {
            haiku += 1;
        }
    }
    if objax > 0 && objax * 2 >= total {
        (
            Style::Objax,
            format!("{objax} of {total} keys name classes in parentheses"),
        )
    } else if haiku > 0 {
        (Style::Haiku, format!("{haiku} of {total} keys hold `/`"))
    } else {
        (Style::Flax, "no key names a class or holds `/`".to_owned())
    }
}
