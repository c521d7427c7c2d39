//! `safejax check`.

use std::io::Write;

use crate::{CheckArgs, Failure, Outcome};

/// Runs `safejax check`.
pub fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let _ = (args, out);
    Err(Failure("not built yet".to_owned()))
}
