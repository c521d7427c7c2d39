//! Saves are atomic: a save that fails midway leaves the previous file as it was and no
//! temporary file behind, and a value that cannot be written is refused before any file is
//! touched. The saved file looks like the one it replaced to its readers (mode, owner, group); a
//! new one gets the mode `std::fs::write` gives. A read-only file is refused unless asked for.
//! Symlinks and hard links are replaced, never written through. The temporary file of a save
//! that was killed is removed by the next save, that of a save still running never.
//!
//! Tests run as root, where permissions prove nothing, so the failing save runs in a child
//! process (this test binary again) whose file size limit (`RLIMIT_FSIZE`) is far below the
//! model's size: its writes fail with `EFBIG` halfway through. The killed and concurrent saves
//! are children too, whose save stalls midway until the test releases or kills them.

mod common;

use common::{colliding_maps, tree_with};

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ndarray::{Array1, array};
use safejax::{
    Dtype, Error, KeyPath, Leaf, Reader, SafeParams, Saver, Tensor, Tree, Visitor, VisitorMut,
    flax, haiku,
};

/// Set (to the file to save) in the child process of [`interrupted_save_keeps_the_old_file`].
const CHILD_TARGET: &str = "SAFEJAX_TEST_INTERRUPTED_SAVE_TARGET";
/// What the child prints when its save failed as it should.
const CHILD_MARKER: &str = "interrupted save failed with: ";
/// The child's file size limit, in the 1024-byte blocks of bash's `ulimit -f`.
const LIMIT_BLOCKS: usize = 64;

fn old_model() -> Vec<Array1<f32>> {
    vec![array![1.0f32, 2.0, 3.0], array![4.0f32]]
}

/// 4 MiB of parameters, 64 times the child's file size limit.
fn big_model() -> Vec<Array1<f32>> {
    vec![Array1::from_elem(1 << 20, 0.5f32)]
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .ino()
}

/// The names of the entries of `dir`, sorted, hidden ones included.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{e}"))
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A directory holding `model.safetensors` written from [`old_model`].
fn dir_with_old_file() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = temp_dir();
    let path = dir.path().join("model.safetensors");
    old_model().save(&path).unwrap_or_else(|e| panic!("{e}"));
    let bytes = read(&path);
    assert_eq!(
        bytes,
        old_model().to_bytes().unwrap_or_else(|e| panic!("{e}"))
    );
    (dir, path, bytes)
}

/// Runs the test `name` of this binary alone in a child process, after the bash commands `setup`,
/// with `target` in the environment variable `var`. The child tests do nothing without it.
fn child(name: &str, setup: &str, var: &str, target: &Path) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!(r#"{setup} && exec "$0" "$@""#))
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, target);
    command
}

/// Runs `command` to its end, asserting that it succeeded and printed `marker`.
fn run_child(mut command: Command, marker: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run the child: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(marker),
        "child failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
fn interrupted_save_keeps_the_old_file() {
    let (dir, path, old_bytes) = dir_with_old_file();
    let old_inode = inode(&path);
    // `trap "" XFSZ` makes the limit an error (EFBIG) instead of a signal that kills the child;
    // an ignored signal stays ignored across `exec`.
    let setup = format!(r#"ulimit -f {LIMIT_BLOCKS} && trap "" XFSZ"#);
    run_child(
        child(
            "child_save_under_a_file_size_limit",
            &setup,
            CHILD_TARGET,
            &path,
        ),
        CHILD_MARKER,
    );
    assert_eq!(read(&path), old_bytes, "the old file changed");
    assert_eq!(inode(&path), old_inode, "the old file was replaced");
    assert_eq!(entries(dir.path()), ["model.safetensors"]);
}

/// The child half of [`interrupted_save_keeps_the_old_file`]; does nothing in a normal run.
#[test]
fn child_save_under_a_file_size_limit() {
    let Some(target) = std::env::var_os(CHILD_TARGET) else {
        return;
    };
    let path = PathBuf::from(target);
    let Err(err) = big_model().save(&path) else {
        panic!("a save of 4 MiB succeeded under a limit of {LIMIT_BLOCKS} KiB");
    };
    let text = err.to_string();
    let Error::Io {
        action,
        path: failed,
        source,
    } = &err
    else {
        panic!("not an I/O error: {text}");
    };
    assert_eq!(*action, "write", "{text}");
    assert_eq!(source.raw_os_error(), Some(27), "not EFBIG: {text}");
    // The write failed on the temporary sibling; the error names the file asked for.
    assert_eq!(failed, &path, "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    println!("{CHILD_MARKER}{text}");
}

/// A writer that takes `left` bytes, then fails.
struct FailAfter {
    left: usize,
    taken: Vec<u8>,
}

impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other("device full"));
        }
        let n = buf.len().min(self.left);
        self.taken.extend_from_slice(&buf[..n]);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_writer_is_a_write_error() {
    let model = old_model();
    let bytes = model.to_bytes().unwrap_or_else(|e| panic!("{e}"));
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()) as usize;
    for left in [
        0,
        1,
        8,
        header_end - 1,
        header_end,
        header_end + 5,
        bytes.len() - 1,
    ] {
        let mut writer = FailAfter {
            left,
            taken: Vec::new(),
        };
        let result = Saver::new().to_writer(&model, &mut writer);
        let Err(err @ Error::Write(_)) = result else {
            panic!("failing after {left} bytes: {result:?}");
        };
        assert_eq!(
            err.to_string(),
            "cannot write safetensors data: device full"
        );
        assert_eq!(writer.taken, bytes[..left]);
    }
    let mut writer = FailAfter {
        left: bytes.len(),
        taken: Vec::new(),
    };
    assert!(Saver::new().to_writer(&model, &mut writer).is_ok());
    assert_eq!(writer.taken, bytes);
}

#[test]
fn a_writer_failing_on_flush_is_a_write_error() {
    struct FailFlush(Vec<u8>);

    impl Write for FailFlush {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("flush refused"))
        }
    }

    let result = Saver::new().to_writer(&old_model(), FailFlush(Vec::new()));
    assert!(
        matches!(&result, Err(Error::Write(e)) if e.to_string() == "flush refused"),
        "{result:?}"
    );
}

#[test]
fn saving_over_a_file_writes_what_to_bytes_gives() {
    let (dir, path, _) = dir_with_old_file();
    let new = vec![
        Array1::from_elem(100, 9.0f32),
        array![8.0f32],
        array![7.0f32, 6.0],
    ];
    new.save(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        read(&path),
        new.to_bytes().unwrap_or_else(|e| panic!("{e}"))
    );
    assert_eq!(entries(dir.path()), ["model.safetensors"]);
    assert_eq!(
        Vec::<Array1<f32>>::load(&path).unwrap_or_else(|e| panic!("{e}")),
        new
    );
    // The tree API saves atomically as well.
    let tree = flax::deserialize(&read(&path)).unwrap_or_else(|e| panic!("{e}"));
    let again = dir.path().join("tree.safetensors");
    std::fs::write(&again, b"old").unwrap_or_else(|e| panic!("{e}"));
    flax::serialize_to_file(&tree, &again, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(&again), read(&path));
    assert_eq!(
        entries(dir.path()),
        ["model.safetensors", "tree.safetensors"]
    );
}

/// Every save that is refused, with the start of its error.
fn refused_saves(path: &Path) -> Vec<(&'static str, safejax::Result<()>, &'static str)> {
    let reserved = BTreeMap::from([("__metadata__".to_owned(), array![1u8])]);
    let dotted = BTreeMap::from([("a.b".to_owned(), array![1u8])]);
    let mut reserved_tree = Tree::new();
    reserved_tree.insert("__metadata__", Tensor::from_array(&array![1u8]));
    vec![
        (
            "two map entries rendering one key",
            colliding_maps().save(path),
            "key `a_b_c` is produced twice",
        ),
        (
            "a map entry named __metadata__",
            reserved.save(path),
            "key `__metadata__` is reserved",
        ),
        (
            "a map key with a separator",
            dotted.save(path),
            "the root has map key `a.b` that contains `.`",
        ),
        (
            "a tree name with `.`",
            flax::serialize_to_file(&tree_with("x.y"), path, None),
            "`Dense_0` has entry `x.y`",
        ),
        (
            "a tree entry named __metadata__",
            haiku::serialize_to_file(&reserved_tree, path, None),
            "key `__metadata__` is reserved",
        ),
    ]
}

#[test]
fn refused_saves_create_no_file() {
    let dir = temp_dir();
    let path = dir.path().join("model.safetensors");
    for (what, result, expected) in refused_saves(&path) {
        let text = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with(expected), "{what}: `{text}`");
        assert_eq!(entries(dir.path()), [""; 0], "{what}");
    }
}

#[test]
fn refused_saves_leave_an_existing_file_untouched() {
    let (dir, path, old_bytes) = dir_with_old_file();
    let old_inode = inode(&path);
    for (what, result, expected) in refused_saves(&path) {
        let text = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with(expected), "{what}: `{text}`");
        assert_eq!(read(&path), old_bytes, "{what}");
        assert_eq!(inode(&path), old_inode, "{what}");
        assert_eq!(entries(dir.path()), ["model.safetensors"], "{what}");
    }
}

#[test]
fn a_save_into_a_missing_directory_names_it() {
    let dir = temp_dir();
    let missing = dir.path().join("missing");
    let err = old_model()
        .save(missing.join("model.safetensors"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with(&format!(
            "cannot create a temporary file in `{}`",
            missing.display()
        )),
        "{err}"
    );
    assert_eq!(entries(dir.path()), [""; 0]);
}

/// Set (to the file to save) in the child process of [`a_new_file_gets_0666_less_the_umask`].
const NEW_FILE_TARGET: &str = "SAFEJAX_TEST_NEW_FILE_TARGET";
/// What that child prints when its save succeeded.
const NEW_FILE_MARKER: &str = "saved a new file";
/// An owner and a group that no account has, for files given away by root.
const STRANGER: (u32, u32) = (4321, 8765);

/// The permission bits of `path` (of a symlink's target).
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .mode()
        & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The owner and group of `path` (of a symlink's target).
fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{e}"));
    (meta.uid(), meta.gid())
}

/// Gives `path` to [`STRANGER`]; false where this process may not (it is not root).
fn give_to_stranger(path: &Path) -> bool {
    std::os::unix::fs::chown(path, Some(STRANGER.0), Some(STRANGER.1)).is_ok()
}

/// This process's umask, as the kernel reports it (reading it with umask(2) would change it).
fn process_umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_else(|e| panic!("{e}"));
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))
        .unwrap_or_else(|| panic!("no umask in /proc/self/status:\n{status}"));
    u32::from_str_radix(line.trim(), 8).unwrap_or_else(|e| panic!("umask `{line}`: {e}"))
}

#[test]
fn a_new_file_gets_0666_less_the_umask() {
    let dir = temp_dir();
    let path = dir.path().join("model.safetensors");
    old_model().save(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode(&path), 0o666 & !process_umask());
    for (umask, expected) in [(0o027, 0o640), (0o000, 0o666), (0o002, 0o664)] {
        let path = dir.path().join(format!("umask_{umask:03o}.safetensors"));
        let setup = format!("umask {umask:03o}");
        run_child(
            child("child_save_a_new_file", &setup, NEW_FILE_TARGET, &path),
            NEW_FILE_MARKER,
        );
        assert_eq!(
            read(&path),
            old_model().to_bytes().unwrap_or_else(|e| panic!("{e}"))
        );
        assert_eq!(mode(&path), expected, "umask {umask:03o}");
    }
}

/// The child half of [`a_new_file_gets_0666_less_the_umask`]; does nothing in a normal run.
#[test]
fn child_save_a_new_file() {
    let Some(target) = std::env::var_os(NEW_FILE_TARGET) else {
        return;
    };
    old_model().save(target).unwrap_or_else(|e| panic!("{e}"));
    println!("{NEW_FILE_MARKER}");
}

#[test]
fn a_replaced_file_keeps_its_mode_owner_and_group() {
    for old_mode in [0o644, 0o640, 0o755, 0o600, 0o604, 0o2770] {
        let (dir, path, _) = dir_with_old_file();
        // In this order: `chown` clears the set-group-ID bit.
        let given = give_to_stranger(&path);
        set_mode(&path, old_mode);
        let old_owner = owner(&path);
        let new = vec![array![5.0f32]];
        new.save(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read(&path),
            new.to_bytes().unwrap_or_else(|e| panic!("{e}"))
        );
        assert_eq!(mode(&path), old_mode, "mode {old_mode:o}");
        assert_eq!(owner(&path), old_owner, "mode {old_mode:o}");
        if given {
            assert_eq!(owner(&path), STRANGER);
        }
        assert_eq!(entries(dir.path()), ["model.safetensors"]);
    }
}

#[test]
fn a_read_only_file_is_refused_unless_asked() {
    for read_only in [0o444, 0o400, 0o555] {
        let (dir, path, old_bytes) = dir_with_old_file();
        set_mode(&path, read_only);
        let old_inode = inode(&path);
        let new = vec![array![5.0f32]];
        let err = new.save(&path).err();
        let Some(Error::ReadOnly {
            path: named,
            mode: reported,
        }) = &err
        else {
            panic!("mode {read_only:o}: {err:?}");
        };
        assert_eq!((named, *reported), (&path, read_only));
        assert_eq!(
            err.map(|e| e.to_string()).unwrap_or_default(),
            format!(
                "`{}` is read-only (mode 0{read_only:o}); make it writable, or save with \
                 `Saver::overwrite_read_only` to replace it",
                path.display()
            )
        );
        assert_eq!(read(&path), old_bytes);
        assert_eq!(inode(&path), old_inode);
        assert_eq!(entries(dir.path()), ["model.safetensors"]);

        Saver::new()
            .overwrite_read_only()
            .save(&new, &path)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read(&path),
            new.to_bytes().unwrap_or_else(|e| panic!("{e}"))
        );
        assert_eq!(mode(&path), read_only, "the replacement is read-only too");
        assert_eq!(entries(dir.path()), ["model.safetensors"]);
    }
}

#[test]
fn a_symlink_is_replaced_and_its_target_kept() {
    let (dir, real, old_bytes) = dir_with_old_file();
    give_to_stranger(&real);
    set_mode(&real, 0o640);
    let real_owner = owner(&real);
    let latest = dir.path().join("latest.safetensors");
    std::os::unix::fs::symlink("model.safetensors", &latest).unwrap_or_else(|e| panic!("{e}"));
    let new = vec![array![5.0f32]];
    new.save(&latest).unwrap_or_else(|e| panic!("{e}"));

    let link_meta = std::fs::symlink_metadata(&latest).unwrap_or_else(|e| panic!("{e}"));
    assert!(link_meta.file_type().is_file(), "{link_meta:?}");
    assert_eq!(
        read(&latest),
        new.to_bytes().unwrap_or_else(|e| panic!("{e}"))
    );
    assert_eq!(read(&real), old_bytes, "the link's target changed");
    assert_eq!((mode(&real), owner(&real)), (0o640, real_owner));
    assert_eq!((mode(&latest), owner(&latest)), (0o640, real_owner));
    assert_eq!(
        entries(dir.path()),
        ["latest.safetensors", "model.safetensors"]
    );

    // A link to a read-only file is refused, and stays a link.
    let frozen = dir.path().join("frozen.safetensors");
    std::os::unix::fs::symlink("model.safetensors", &frozen).unwrap_or_else(|e| panic!("{e}"));
    set_mode(&real, 0o444);
    let err = new.save(&frozen).err();
    assert!(
        matches!(&err, Some(Error::ReadOnly { path, mode: 0o444 }) if path == &frozen),
        "{err:?}"
    );
    let link_meta = std::fs::symlink_metadata(&frozen).unwrap_or_else(|e| panic!("{e}"));
    assert!(link_meta.file_type().is_symlink(), "{link_meta:?}");
    assert_eq!(read(&real), old_bytes);
}

#[test]
fn a_hard_linked_file_is_detached() {
    let (dir, path, old_bytes) = dir_with_old_file();
    set_mode(&path, 0o640);
    let other = dir.path().join("other.safetensors");
    std::fs::hard_link(&path, &other).unwrap_or_else(|e| panic!("{e}"));
    let new = vec![array![5.0f32]];
    new.save(&path).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        read(&path),
        new.to_bytes().unwrap_or_else(|e| panic!("{e}"))
    );
    assert_eq!(read(&other), old_bytes, "the other link changed");
    assert_ne!(inode(&path), inode(&other));
    for name in [&path, &other] {
        let meta = std::fs::metadata(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((meta.nlink(), meta.mode() & 0o7777), (1, 0o640));
    }
    assert_eq!(
        entries(dir.path()),
        ["model.safetensors", "other.safetensors"]
    );
}

#[test]
fn a_255_byte_name_can_be_saved() {
    let dir = temp_dir();
    for name in [
        format!("{}.safetensors", "a".repeat(243)),
        format!("{}x.safetensors", "é".repeat(121)),
        format!("{}abc.safetensors", "🦀".repeat(60)),
    ] {
        assert_eq!(name.len(), 255);
        let path = dir.path().join(&name);
        for model in [old_model(), vec![array![5.0f32]]] {
            model.save(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                read(&path),
                model.to_bytes().unwrap_or_else(|e| panic!("{e}"))
            );
        }
        assert_eq!(entries(dir.path()), [name.as_str()]);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Set (to the file to save) in the child process of the tests of concurrent and killed saves.
const STALL_TARGET: &str = "SAFEJAX_TEST_STALLED_SAVE_TARGET";
/// Set (to a file that does not exist yet) in that child: its save stalls until the file exists.
const STALL_RELEASE: &str = "SAFEJAX_TEST_STALLED_SAVE_RELEASE";
/// What that child prints when its save succeeded.
const STALL_MARKER: &str = "stalled save finished";
/// How long a stalled save or a test waits for the other side before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

/// A leaf whose data is not ready until the file `release` exists, so that a save of it stays
/// midway, its temporary file open, for as long as a test needs.
struct Stall {
    release: PathBuf,
}

impl Stall {
    const BYTES: [u8; 4] = [1, 2, 3, 4];
}

impl Leaf for Stall {
    fn dtype(&self) -> Dtype {
        Dtype::U8
    }

    fn shape(&self) -> Cow<'_, [usize]> {
        Cow::Owned(vec![Self::BYTES.len()])
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let start = Instant::now();
        while !self.release.exists() && start.elapsed() < PATIENCE {
            std::thread::sleep(Duration::from_millis(10));
        }
        Cow::Borrowed(&Self::BYTES)
    }

    fn data_len(&self) -> usize {
        Self::BYTES.len()
    }
}

impl SafeParams for Stall {
    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        visitor.leaf(path, self);
    }

    fn visit_mut(&mut self, _path: &mut KeyPath, _visitor: &mut dyn VisitorMut) {}

    fn read(_path: &mut KeyPath, _reader: &mut Reader<'_>) -> Option<Self> {
        None
    }
}

/// What the stalled child writes.
fn stalled_bytes() -> Vec<u8> {
    vec![array![1u8, 2, 3, 4]]
        .to_bytes()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The child of the tests of concurrent and killed saves; does nothing in a normal run.
#[test]
fn child_save_that_stalls() {
    let (Some(target), Some(release)) = (
        std::env::var_os(STALL_TARGET),
        std::env::var_os(STALL_RELEASE),
    ) else {
        return;
    };
    let value = vec![Stall {
        release: release.into(),
    }];
    value.save(target).unwrap_or_else(|e| panic!("{e}"));
    println!("{STALL_MARKER}");
}

/// Starts a child saving into `path` a value that stalls until `release` exists, and waits
/// until its temporary file is in `dir`; returns the child and that file's name.
fn start_stalled_save(dir: &Path, path: &Path, release: &Path) -> (Child, String) {
    let before = entries(dir);
    let mut command = child("child_save_that_stalls", ":", STALL_TARGET, path);
    let mut child = command
        .env(STALL_RELEASE, release)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the child: {e}"));
    let start = Instant::now();
    let new = loop {
        let new: Vec<String> = entries(dir)
            .into_iter()
            .filter(|name| !before.contains(name))
            .collect();
        if !new.is_empty() || start.elapsed() > PATIENCE {
            break new;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let [temp] = new.as_slice() {
        return (child, temp.clone());
    }
    let _ = child.kill();
    let output = child.wait_with_output();
    panic!("the child made {new:?} instead of one temporary file: {output:?}");
}

#[test]
fn a_killed_save_leaves_nothing_after_the_next_save() {
    let (dir, path, old_bytes) = dir_with_old_file();
    let release = temp_dir();
    let (mut killed, temp) = start_stalled_save(dir.path(), &path, &release.path().join("go"));
    killed.kill().unwrap_or_else(|e| panic!("{e}"));
    let status = killed.wait().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.signal(), Some(9), "{status}");
    assert_eq!(entries(dir.path()), [temp.as_str(), "model.safetensors"]);
    assert_eq!(read(&path), old_bytes);

    // A save of any file of the directory reclaims it.
    let other = dir.path().join("other.safetensors");
    old_model().save(&other).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        entries(dir.path()),
        ["model.safetensors", "other.safetensors"]
    );
    assert_eq!(read(&path), old_bytes);
}

#[test]
fn a_live_save_keeps_its_temporary_file() {
    let (dir, path, _) = dir_with_old_file();
    let release = temp_dir();
    let go = release.path().join("go");
    let (stalled, temp) = start_stalled_save(dir.path(), &path, &go);
    let temp_inode = inode(&dir.path().join(&temp));

    // Saves to the same file and to another while the child's save is midway.
    let new = vec![array![5.0f32]];
    new.save(&path).unwrap_or_else(|e| panic!("{e}"));
    let other = dir.path().join("other.safetensors");
    new.save(&other).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        entries(dir.path()),
        [temp.as_str(), "model.safetensors", "other.safetensors"]
    );
    assert_eq!(inode(&dir.path().join(&temp)), temp_inode);
    assert_eq!(
        read(&path),
        new.to_bytes().unwrap_or_else(|e| panic!("{e}"))
    );

    // The child's save completes, last: its file is the one that stays.
    std::fs::write(&go, b"").unwrap_or_else(|e| panic!("{e}"));
    let output = stalled.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(STALL_MARKER),
        "child failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(read(&path), stalled_bytes());
    assert_eq!(inode(&path), temp_inode);
    assert_eq!(
        entries(dir.path()),
        ["model.safetensors", "other.safetensors"]
    );
}

#[test]
fn a_save_reclaims_only_unlocked_temporary_files() {
    let (dir, path, _) = dir_with_old_file();
    let at = |name: &str| dir.path().join(name);
    let create = |name: &str| std::fs::File::create(at(name)).unwrap_or_else(|e| panic!("{e}"));
    // Another thread's save midway: an opening of its own holds the lock.
    let live = create(".model.safetensors.Live01.safejax-tmp");
    live.lock().unwrap_or_else(|e| panic!("{e}"));
    drop(create(".model.safetensors.Dead01.safejax-tmp"));
    drop(create("..Dead02.safejax-tmp"));
    // Not of this pattern: left alone.
    drop(create(".model.safetensors.abc123.tmp"));
    drop(create("notes.safejax-tmp"));
    std::os::unix::fs::symlink("model.safetensors", at(".link.Dead03.safejax-tmp"))
        .unwrap_or_else(|e| panic!("{e}"));

    old_model().save(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        entries(dir.path()),
        [
            ".link.Dead03.safejax-tmp",
            ".model.safetensors.Live01.safejax-tmp",
            ".model.safetensors.abc123.tmp",
            "model.safetensors",
            "notes.safejax-tmp"
        ]
    );
    // Once its writer is gone, the next save takes it.
    drop(live);
    old_model().save(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!at(".model.safetensors.Live01.safejax-tmp").exists());
}

#[test]
fn the_tree_api_saves_the_same_way() {
    let dir = temp_dir();
    let path = dir.path().join("tree.safetensors");
    let tree = tree_with("kernel");
    flax::serialize_to_file(&tree, &path, None).unwrap_or_else(|e| panic!("{e}"));
    let bytes = flax::serialize(&tree, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(&path), bytes);
    assert_eq!(mode(&path), 0o666 & !process_umask());

    give_to_stranger(&path);
    set_mode(&path, 0o640);
    let old_owner = owner(&path);
    drop(std::fs::File::create(
        dir.path().join(".tree.safetensors.Dead01.safejax-tmp"),
    ));
    flax::serialize_to_file(&tree, &path, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((mode(&path), owner(&path)), (0o640, old_owner));
    assert_eq!(entries(dir.path()), ["tree.safetensors"]);

    set_mode(&path, 0o444);
    let old_inode = inode(&path);
    let err = flax::serialize_to_file(&tree, &path, None).err();
    assert!(
        matches!(&err, Some(Error::ReadOnly { path: named, mode: 0o444 }) if named == &path),
        "{err:?}"
    );
    assert_eq!(inode(&path), old_inode);
    assert_eq!(read(&path), bytes);
}
