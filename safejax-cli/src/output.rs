//! Writing the command's report.

use crate::Failure;

/// The failure of a write to the report (standard output closed, disk full).
pub fn write_failed(error: std::io::Error) -> Failure {
    Failure(format!("cannot write the report: {error}"))
}
