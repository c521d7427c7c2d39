//! `safejax convert`.

use std::io::Write;

use crate::{ConvertArgs, Failure, Outcome};

/// Runs `safejax convert`.
pub fn run(args: &ConvertArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let _ = (args, out);
    Err(Failure("not built yet".to_owned()))
}
