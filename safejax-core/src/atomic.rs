//! Atomic file replacement: a file is written to a temporary sibling, synced, and renamed over
//! its target, so that the target holds either its old content or the whole new one.
//!
//! The new file looks like the one it replaces to its readers: it keeps its mode, and its owner
//! and group where the process may set them. A file that did not exist gets mode `0o666` less the
//! umask, as `std::fs::write` gives it.

use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// What a save does with a file that has no write permission bit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ReadOnly {
    /// Refuses to replace it ([`Error::ReadOnly`]).
    #[default]
    Refuse,
    /// Replaces it; the new file keeps its mode, so it is read-only too.
    Overwrite,
}

/// [`replace`], refusing read-only files.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<()> {
    replace(path, ReadOnly::Refuse, write)
}

/// Writes a file through a temporary sibling and a rename, so that `path` holds either its old
/// content or the whole new one. Errors name `path`, the file the caller asked for.
pub(crate) fn replace(
    path: &Path,
    read_only: ReadOnly,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let old = existing(path)?;
    if let Some(old) = &old
        && read_only == ReadOnly::Refuse
        && let Some(mode) = sys::read_only_mode(old)
    {
        return Err(Error::ReadOnly {
            path: path.to_owned(),
            mode,
        });
    }
    let temp = create_temp(dir, path, old.is_some())
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    if let Some(old) = &old {
        sys::take_over(temp.as_file(), old)
            .map_err(|e| Error::io("set the mode and owner of", path, e))?;
    }
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

/// The metadata of the file `path` names, following symlinks (the new file takes over what the
/// readers of a link's target had), or `None` if there is none.
fn existing(path: &Path) -> Result<Option<Metadata>> {
    match fs::metadata(path) {
        // A dangling symlink too: the link is replaced by a new file.
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("inspect", path, e)),
        // Caught here, the rename would fail only after the whole file is written.
        Ok(meta) if meta.is_dir() => Err(Error::io(
            "replace",
            path,
            io::Error::from(ErrorKind::IsADirectory),
        )),
        Ok(meta) => Ok(Some(meta)),
    }
}

/// Ends the name of every temporary file a save creates.
const TEMP_SUFFIX: &str = ".safejax-tmp";
/// How many random characters a temporary file's name has.
const TEMP_RANDOM: usize = 6;
/// The longest file name, in bytes, of the usual filesystems (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Creates the temporary sibling of `path` in `dir`: `.{name}.{random}.safejax-tmp`, hidden, and
/// naming its target for whoever finds it.
fn create_temp(dir: &Path, path: &Path, replacing: bool) -> io::Result<NamedTempFile> {
    let create = |prefix: &str| {
        tempfile::Builder::new()
            .prefix(prefix)
            .rand_bytes(TEMP_RANDOM)
            .suffix(TEMP_SUFFIX)
            .make_in(dir, |temp| sys::create_new(temp, replacing))
    };
    match create(&temp_prefix(path)) {
        // A filesystem with shorter names than `NAME_MAX` (eCryptfs: 143 bytes) still takes the
        // name without its target's.
        Err(e) if e.kind() == ErrorKind::InvalidFilename => create(".."),
        created => created,
    }
}

/// The temporary name up to its random part: as much of the target's name as keeps the whole
/// within [`NAME_MAX`], cut at a character boundary, between two dots.
fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut end = name
        .len()
        .min(NAME_MAX - 2 - TEMP_RANDOM - TEMP_SUFFIX.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.", &name[..end])
}

#[cfg(unix)]
mod sys {
    use std::fs::{File, Metadata, OpenOptions, Permissions};
    use std::io::{self, ErrorKind};
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, fchown};
    use std::path::Path;

    /// Creates the file `path`, failing if anything is there.
    ///
    /// A new file asks for mode `0o666` and the kernel subtracts the umask, as for
    /// `std::fs::write` (reading the umask would mean setting it, which is process-wide and races
    /// other threads). A replacement starts private and is widened to the old file's mode before
    /// any byte is written: a reader who opened it under a wider mode would keep reading it.
    pub(super) fn create_new(path: &Path, replacing: bool) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if replacing { 0o600 } else { 0o666 })
            .open(path)
    }

    /// Gives `file` the owner, group and mode of `old`.
    ///
    /// Only a privileged process may give a file away, and an owner may set only a group it
    /// belongs to: a save by anyone else still succeeds, owned by its writer. Filesystems without
    /// Unix modes (FAT, some network mounts) refuse changes their mount options fix; their files
    /// have the mount's mode anyway.
    pub(super) fn take_over(file: &File, old: &Metadata) -> io::Result<()> {
        let own = file.metadata()?;
        if (own.uid(), own.gid()) != (old.uid(), old.gid()) {
            let chowned = fchown(file, Some(old.uid()), Some(old.gid())).or_else(|e| match e {
                e if denied(&e) => fchown(file, None, Some(old.gid())),
                e => Err(e),
            });
            match chowned {
                Err(e) if !denied(&e) => return Err(e),
                _ => {}
            }
        }
        // After `fchown`, which clears the set-user-ID and set-group-ID bits.
        let mode = old.mode() & 0o7777;
        match file.set_permissions(Permissions::from_mode(mode)) {
            Err(e) if !denied(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// The permission bits of a file none may write, going by its mode alone: root may write
    /// anything, yet a file made read-only is one someone meant to keep.
    pub(super) fn read_only_mode(meta: &Metadata) -> Option<u32> {
        let mode = meta.mode() & 0o7777;
        (mode & 0o222 == 0).then_some(mode)
    }

    /// `EPERM`, or `EINVAL` for an owner that this user namespace cannot map.
    fn denied(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            ErrorKind::PermissionDenied | ErrorKind::InvalidInput
        )
    }
}

#[cfg(not(unix))]
mod sys {
    use std::fs::{File, Metadata, OpenOptions};
    use std::io;
    use std::path::Path;

    /// Creates the file `path`, failing if anything is there.
    pub(super) fn create_new(path: &Path, _replacing: bool) -> io::Result<File> {
        OpenOptions::new().write(true).create_new(true).open(path)
    }

    /// The read-only attribute, shown as the Unix mode it stands for.
    pub(super) fn read_only_mode(meta: &Metadata) -> Option<u32> {
        meta.permissions().readonly().then_some(0o444)
    }

    /// Files have no Unix mode or owner to take over here.
    pub(super) fn take_over(_file: &File, _old: &Metadata) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length of a temporary name with `prefix`.
    fn temp_len(prefix: &str) -> usize {
        prefix.len() + TEMP_RANDOM + TEMP_SUFFIX.len()
    }

    #[test]
    fn a_short_name_is_kept_whole() {
        assert_eq!(
            temp_prefix(Path::new("dir/model.safetensors")),
            ".model.safetensors."
        );
    }

    #[test]
    fn a_long_name_is_cut_to_fit_at_a_character_boundary() {
        for name in [
            "a".repeat(255),
            format!("{}x.safetensors", "é".repeat(121)),
            format!("{}abc.safetensors", "🦀".repeat(60)),
        ] {
            assert_eq!(name.len(), 255);
            let prefix = temp_prefix(Path::new(&name));
            assert!(temp_len(&prefix) <= NAME_MAX, "{prefix}");
            assert!(temp_len(&prefix) > NAME_MAX - 4, "{prefix}");
            let kept = &prefix[1..prefix.len() - 1];
            assert!(name.starts_with(kept), "{prefix}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_name_that_is_not_unicode_still_fits() {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(&[0xff; 255]);
        let prefix = temp_prefix(Path::new(name));
        assert!(temp_len(&prefix) <= NAME_MAX, "{prefix}");
    }
}
