//! Atomic file replacement: a file is written to a temporary sibling, synced, and renamed over
//! its target, so that the target holds either its old content or the whole new one.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes a file through a temporary sibling and a rename, so that `path` holds either its old
/// content or the whole new one. Errors name `path`, the file the caller asked for.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    {
        let mut buffered = BufWriter::with_capacity(1 << 20, temp.as_file());
        write(&mut buffered).map_err(|e| match e {
            Error::Write(source) => Error::io("write", path, source),
            other => other,
        })?;
        buffered.flush().map_err(|e| Error::io("write", path, e))?;
    }
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io("sync", path, e))?;
    temp.persist(path)
        .map_err(|e| Error::io("replace", path, e.error))?;
    // Make the rename itself durable. Directories cannot be opened for syncing everywhere.
    if let Ok(dir) = File::open(dir) {
        dir.sync_all()
            .map_err(|e| Error::io("sync directory", path, e))?;
    }
    Ok(())
}
