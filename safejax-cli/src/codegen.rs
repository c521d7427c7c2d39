//! `safejax codegen`.

use std::io::Write;

use crate::{CodegenArgs, Failure, Outcome};

/// Runs `safejax codegen`.
pub fn run(args: &CodegenArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let _ = (args, out);
    Err(Failure("not built yet".to_owned()))
}
