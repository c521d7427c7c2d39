//! A file cut while it is loaded: its header read and checked, and its small tensors read ahead,
//! but not yet the large tensors, which are read one at a time. The read that comes back short
//! is an error naming the file, the tensor and the bytes it could not read, never a panic or
//! zeroes; a load in place changes nothing, not even the tensors read before the cut.
//!
//! The cut is made by the value itself, through a handle of its own, when the load visits the
//! tensor it was planned at: between two reads of one load, deterministically.

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use ndarray::Array1;
use safejax::format::{self, SMALL_TENSOR};
use safejax::{Error, KeyPath, Loader, Reader, SafeParams, Visitor, VisitorMut};

/// The lengths of the tensors `0` to `6`, in data order: runs of small ones, read ahead
/// together, between large ones, read one at a time.
const LENS: [usize; 7] = [16, 24, LARGE, 8, 16, LARGE, 32];

/// Twice the size below which a tensor is read ahead, in `f32`s.
const LARGE: usize = 2 * SMALL_TENSOR / 4;

/// A cut planned for the load running on this thread: when it reaches tensor `at`, the file is
/// shortened to `len` bytes.
struct Cut {
    path: PathBuf,
    at: usize,
    len: u64,
}

thread_local! {
    static CUT: RefCell<Option<Cut>> = const { RefCell::new(None) };
}

/// Makes the planned cut if the load has reached tensor `i`.
fn cut_if_at(i: usize) {
    let due = CUT.with_borrow_mut(|cut| cut.take_if(|cut| cut.at == i));
    if let Some(cut) = due {
        OpenOptions::new()
            .write(true)
            .open(&cut.path)
            .and_then(|file| file.set_len(cut.len))
            .unwrap_or_else(|e| panic!("cannot cut {}: {e}", cut.path.display()));
    }
}

/// The tensors `0` to `6`, cutting the file as planned when a load reaches one of them.
#[derive(Debug, Clone, PartialEq)]
struct Cutting(Vec<Array1<f32>>);

impl SafeParams for Cutting {
    fn visit<'a>(&'a self, path: &mut KeyPath, visitor: &mut dyn Visitor<'a>) {
        self.0.visit(path, visitor);
    }

    fn visit_mut(&mut self, path: &mut KeyPath, visitor: &mut dyn VisitorMut) {
        for (i, tensor) in self.0.iter_mut().enumerate() {
            cut_if_at(i);
            path.push_index(i);
            tensor.visit_mut(path, visitor);
            path.pop();
        }
    }

    fn read(path: &mut KeyPath, reader: &mut Reader<'_>) -> Option<Self> {
        let tensors: Vec<Option<Array1<f32>>> = (0..LENS.len())
            .map(|i| {
                cut_if_at(i);
                path.push_index(i);
                let tensor = Array1::read(path, reader);
                path.pop();
                tensor
            })
            .collect();
        tensors.into_iter().collect::<Option<_>>().map(Cutting)
    }
}

/// The tensors saved, each of its own values.
fn saved() -> Cutting {
    let tensor = |(i, &len): (usize, &usize)| {
        Array1::from_iter((0..len).map(|j| (i * 1_000_000 + j) as f32 + 0.5))
    };
    Cutting(LENS.iter().enumerate().map(tensor).collect())
}

/// The value a load in place starts from: the shapes of the saved tensors, all zeroes.
fn zeroes() -> Cutting {
    Cutting(LENS.iter().map(|&len| Array1::zeros(len)).collect())
}

/// The large tensors, read one at a time, with where their bytes are in the file at `path`.
fn large_tensors(path: &Path) -> Vec<(usize, u64, u64)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let parsed = format::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut large = Vec::new();
    for (i, &len) in LENS.iter().enumerate() {
        let (_, tensor) = parsed
            .iter()
            .find(|(name, _)| *name == i.to_string())
            .unwrap_or_else(|| panic!("no tensor `{i}`"));
        assert_eq!(
            tensor.byte_len() >= SMALL_TENSOR,
            len == LARGE,
            "tensor `{i}`"
        );
        let start = tensor.offset();
        if len == LARGE {
            large.push((i, start, start + tensor.byte_len() as u64));
        }
    }
    large
}

/// Cuts the file at each place a large tensor can be cut (at its start, in its middle, before
/// its last byte) while `load` loads it, and checks the error: a load report whose only
/// problems are the large tensors the cut leaves short (the one cut and those after it), each
/// an invalid tensor naming the file and the bytes that could not be read.
fn check_cuts(load: impl Fn(&Path) -> Result<(), Error>) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("cut.safetensors");
    saved().save(&path).unwrap_or_else(|e| panic!("{e}"));
    let large = large_tensors(&path);
    for &(at, start, end) in &large {
        for len in [start, (start + end) / 2, end - 1] {
            saved().save(&path).unwrap_or_else(|e| panic!("{e}"));
            let plan = Cut {
                path: path.clone(),
                at,
                len,
            };
            CUT.set(Some(plan));
            let result = load(&path);
            let planned = CUT.take();
            assert!(planned.is_none(), "the load reached tensor `{at}`");
            let file_len = std::fs::metadata(&path).map(|m| m.len()).ok();
            assert_eq!(file_len, Some(len), "the file was cut");
            let report = match result {
                Err(Error::Load(report)) => *report,
                other => panic!("cut at byte {len}: expected a load report, got {other:?}"),
            };
            let short: Vec<String> = large
                .iter()
                .filter(|&&(_, _, end)| end > len)
                .map(|&(i, start, end)| {
                    format!(
                        "{i}: cannot read `{}`: the file ended while bytes {start}..{end} were \
                         read: it was shortened after its header was checked",
                        path.display()
                    )
                })
                .collect();
            let found: Vec<String> = report
                .invalid
                .iter()
                .map(|p| format!("{}: {}", p.key, p.reason))
                .collect();
            assert_eq!(found, short, "cut at byte {len}");
            assert_eq!(report.len(), short.len(), "cut at byte {len}: {report}");
        }
    }
    // The same file, whole, is read: the loads failed only because of the cut.
    saved().save(&path).unwrap_or_else(|e| panic!("{e}"));
    load(&path).unwrap_or_else(|e| panic!("{e}"));
}

/// A load in place stages every tensor before it assigns any: when the read of a large tensor
/// comes back short, the tensors read before it (small ones read ahead, and a large one read
/// whole) are not assigned, nor those after it.
#[test]
fn load_into_changes_nothing_when_the_file_is_cut_between_reads() {
    check_cuts(|path| {
        let mut target = zeroes();
        let result = Loader::new().load_into(&mut target, path).map(drop);
        let expected = if result.is_ok() { saved() } else { zeroes() };
        assert_eq!(target, expected);
        result
    });
}

/// A fresh load reads each large tensor straight into its array's memory, not zeroed first:
/// a short read there is the same error, and the array, never initialized, is dropped unused.
#[test]
fn load_fails_with_the_tensors_cut_when_the_file_is_cut_between_reads() {
    check_cuts(|path| {
        let loaded = Loader::new().load::<Cutting>(path)?;
        assert_eq!(loaded.value, saved());
        Ok(())
    });
}
