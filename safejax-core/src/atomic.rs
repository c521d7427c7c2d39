//! Atomic file replacement: a file is written to a temporary sibling, synced, and renamed over
//! its target, so that the target holds either its old content or the whole new one.
//!
//! The new file looks like the one it replaces to its readers: it keeps its mode, and its owner
//! and group where the process may set them. A file that did not exist gets mode `0o666` less the
//! umask, as `std::fs::write` gives it.
//!
//! A save killed midway cannot remove its temporary file, so the next save into the directory
//! does. Every save holds an exclusive advisory lock (`flock`) on its temporary file for as long
//! as the file is open, and the kernel drops it when the process dies, however it dies. A save
//! removes the temporary files of the directory whose lock it can take: their writer is gone. A
//! live save's lock makes that fail, so its file is left alone, whichever process or thread it
//! belongs to (each opening holds its own lock).

use std::ffi::OsStr;
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
    reclaim(dir);
    let temp = create_locked(dir, path, old.is_some())
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

/// [`create_temp`], locked for as long as the file is open.
fn create_locked(dir: &Path, path: &Path, replacing: bool) -> io::Result<NamedTempFile> {
    // A retry needs another save's reclaiming to remove each new file between its creation
    // and its lock; three in a row would be no race but a bug.
    for _ in 0..3 {
        let temp = create_temp(dir, path, replacing)?;
        // Where the filesystem has no locks, no save can take one to reclaim this file either.
        if temp.as_file().lock().is_err() || sys::is_linked(temp.as_file())? {
            return Ok(temp);
        }
        // Its name is gone; another save may take it again, and must keep its file.
        drop(temp.into_temp_path().keep());
    }
    Err(io::Error::other(
        "each new temporary file was removed before it could be locked",
    ))
}

/// Removes the temporary files that saves into `dir` left when they were killed: those whose
/// lock no process holds. Whatever cannot be read, locked or removed is left for a later save,
/// which this one does not need to succeed.
fn reclaim(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        // A regular file only: opening a FIFO would wait for a writer.
        if is_temp_name(&entry.file_name()) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = reclaim_one(&entry.path());
        }
    }
}

fn reclaim_one(temp: &Path) -> io::Result<()> {
    let file = File::open(temp)?;
    if file.try_lock().is_err() {
        return Ok(());
    }
    // Its save may have finished (and renamed the file to its target) between the opening and
    // the lock; only the same file under the same name is a leftover.
    if sys::same_file(&file.metadata()?, &fs::symlink_metadata(temp)?) {
        fs::remove_file(temp)?;
    }
    Ok(())
}

/// Whether `name` is that of a temporary file of [`create_temp`]: `.`, a name, `.`, the random
/// part, the suffix.
fn is_temp_name(name: &OsStr) -> bool {
    let Some(stem) = name.as_encoded_bytes().strip_suffix(TEMP_SUFFIX.as_bytes()) else {
        return false;
    };
    let Some(random_start) = stem.len().checked_sub(TEMP_RANDOM) else {
        return false;
    };
    random_start >= 2
        && stem[0] == b'.'
        && stem[random_start - 1] == b'.'
        && stem[random_start..].iter().all(u8::is_ascii_alphanumeric)
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

    /// Whether `file` still has a name (no other save reclaimed it).
    pub(super) fn is_linked(file: &File) -> io::Result<bool> {
        Ok(file.metadata()?.nlink() > 0)
    }

    /// Whether `a` and `b` describe the same file.
    pub(super) fn same_file(a: &Metadata, b: &Metadata) -> bool {
        (a.dev(), a.ino()) == (b.dev(), b.ino())
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

    /// An open file cannot lose its name here.
    pub(super) fn is_linked(_file: &File) -> io::Result<bool> {
        Ok(true)
    }

    /// Without file identities there is no telling a leftover from a file that took its name:
    /// temporary files are never reclaimed here.
    pub(super) fn same_file(_a: &Metadata, _b: &Metadata) -> bool {
        false
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

    #[test]
    fn temporary_names_are_told_from_others() {
        for name in [
            ".model.safetensors.aZ09xy.safejax-tmp",
            "..aZ09xy.safejax-tmp",
            ".a.b.c.123456.safejax-tmp",
        ] {
            assert!(is_temp_name(OsStr::new(name)), "{name}");
        }
        for name in [
            "model.safetensors",
            ".model.safetensors.aZ09xy.tmp",
            "model.aZ09xy.safejax-tmp",
            ".model.safetensors.aZ09x.safejax-tmp",
            ".model.safetensors.aZ-09x.safejax-tmp",
            ".aZ09xy.safejax-tmp",
            ".safejax-tmp",
            "",
        ] {
            assert!(!is_temp_name(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn a_temporary_file_has_a_temporary_name() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        for name in ["model.safetensors", &"a".repeat(255)] {
            let temp = create_temp(dir.path(), &dir.path().join(name), false)?;
            let file_name = temp.path().file_name().unwrap_or_default();
            assert!(is_temp_name(file_name), "{file_name:?}");
        }
        Ok(())
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
