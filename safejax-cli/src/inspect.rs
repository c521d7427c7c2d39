//! `safejax inspect`.

use std::io::Write;

use crate::{Failure, InspectArgs, Outcome};

/// Runs `safejax inspect`.
pub fn run(args: &InspectArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let _ = (args, out);
    Err(Failure("not built yet".to_owned()))
}
