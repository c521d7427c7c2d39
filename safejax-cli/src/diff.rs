//! `safejax diff`.

use std::io::Write;

use crate::{DiffArgs, Failure, Outcome};

/// Runs `safejax diff`.
pub fn run(args: &DiffArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let _ = (args, out);
    Err(Failure("not built yet".to_owned()))
}
