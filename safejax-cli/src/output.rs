//! Writing the command's report.

use crate::Failure;

/// The failure of a write to the report (standard output closed, disk full). A reader that
/// closed the pipe (`safejax inspect ... | head`) wanted no more: the command stops without a
/// message ([`Failure::quiet`]).
pub fn write_failed(error: std::io::Error) -> Failure {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return Failure::quiet();
    }
    Failure(format!("cannot write the report: {error}"))
}
