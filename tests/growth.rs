//! The cost of every reader grows about linearly with the file, measured by counting, not
//! timing: this binary's allocator counts, per thread, the live bytes (and their peak), the
//! bytes ever requested (a measure of the work done on strings) and the number of requests.
//! Each family of adversarial files is read at growing sizes, and the growth of a count when the
//! size doubles is asserted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

use ndarray::{Array1, ArrayD};
use safejax::{LoadReport, Loader, SafeParams};

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static REQUESTED: Cell<usize> = const { Cell::new(0) };
    static REQUESTS: Cell<usize> = const { Cell::new(0) };
}

fn grow(size: usize) {
    // `try_with`: the thread may be tearing its locals down.
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(size);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
    let _ = REQUESTED.try_with(|n| n.set(n.get().saturating_add(size)));
    let _ = REQUESTS.try_with(|n| n.set(n.get() + 1));
}

fn shrink(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches only const-initialized thread locals, which do not
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        shrink(layout.size());
        grow(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: as in `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What `f` cost on this thread: the peak of live bytes above those live before, the bytes
/// requested and the number of requests. The value `f` returns is dropped after the count, so
/// a returned value counts in the peak.
#[derive(Debug, Clone, Copy)]
struct Cost {
    peak: usize,
    requested: usize,
    requests: usize,
}

fn cost<T>(f: impl FnOnce() -> T) -> Cost {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let requested = REQUESTED.with(Cell::get);
    let requests = REQUESTS.with(Cell::get);
    let value = f();
    let cost = Cost {
        peak: PEAK.with(Cell::get) - base,
        requested: REQUESTED.with(Cell::get) - requested,
        requests: REQUESTS.with(Cell::get) - requests,
    };
    drop(value);
    cost
}

/// Asserts that `measure` grows at most `bound` times when the size doubles, at each step.
fn assert_linear(what: &str, sizes: &[usize], bound: f64, measure: impl Fn(usize) -> usize) {
    let counts: Vec<usize> = sizes.iter().map(|&size| measure(size)).collect();
    for (pair, size) in counts.windows(2).zip(sizes) {
        let ratio = pair[1] as f64 / pair[0].max(1) as f64;
        assert!(
            ratio <= bound,
            "{what}: {} at size {size}, {} at twice that: {ratio:.2}x (counts {counts:?})",
            pair[0],
            pair[1]
        );
    }
}

/// A file whose one key is `a_a_a_…_a`, `len` bytes long.
fn underscored_key(len: usize) -> (String, Vec<u8>) {
    let key: String = "a_".repeat(len / 2) + "a";
    let map = BTreeMap::from([(key.clone(), ArrayD::<f32>::zeros(vec![1]))]);
    let bytes = map.to_bytes().unwrap_or_else(|e| panic!("{e}"));
    (key, bytes)
}

#[test]
fn a_map_of_tensors_reads_a_long_underscored_key_in_linear_memory() {
    assert_linear(
        "peak bytes of a map load",
        &[20_000, 40_000, 80_000],
        2.3,
        |len| {
            let (key, bytes) = underscored_key(len);
            let cost = cost(|| {
                let map = BTreeMap::<String, ArrayD<f32>>::from_bytes(&bytes)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(map.keys().collect::<Vec<_>>(), [&key]);
                map
            });
            assert!(
                cost.peak < 16 * bytes.len(),
                "{} bytes peak for a {}-byte file",
                cost.peak,
                bytes.len()
            );
            cost.peak
        },
    );
}

#[test]
fn a_map_of_maps_reads_a_long_underscored_key_in_linear_work() {
    type Nested = BTreeMap<String, BTreeMap<String, ArrayD<f32>>>;
    assert_linear(
        "bytes requested by a map-of-maps load",
        &[2_000, 4_000, 8_000, 16_000],
        2.3,
        |len| {
            let (key, bytes) = underscored_key(len);
            let cost = cost(|| {
                let map = Nested::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
                // The shortest outer name that reads wins.
                let inner = &map["a"];
                assert_eq!(inner.keys().collect::<Vec<_>>(), [&key[2..]]);
                map
            });
            cost.requested
        },
    );
}

#[test]
fn a_key_no_entry_name_fits_costs_linear_work() {
    // Every outer name is tried, and no inner list can hold the rest: the key stays unread.
    type Nested = BTreeMap<String, BTreeMap<String, Vec<ArrayD<f32>>>>;
    assert_linear(
        "bytes requested by a refused map-of-maps load",
        &[2_000, 4_000, 8_000, 16_000],
        2.3,
        |len| {
            let (key, bytes) = underscored_key(len);
            let cost = cost(|| {
                let loaded = Loader::new()
                    .allow_unexpected()
                    .from_bytes::<Nested>(&bytes)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(loaded.value.is_empty());
                assert_eq!(loaded.ignored, std::slice::from_ref(&key));
            });
            cost.requested
        },
    );
}

#[test]
fn a_report_formats_in_about_the_work_it_took_to_build() {
    let report = |unexpected: usize| {
        let mut report = LoadReport {
            missing: (0..128)
                .map(|i| format!("params.block_{i}.dense.kernel"))
                .collect(),
            unexpected: (0..unexpected)
                .map(|i| format!("params.other_{i}.dense.kernel"))
                .collect(),
            ..LoadReport::default()
        };
        // One near miss among them.
        report.unexpected.push("params.block_7.dense.kernal".into());
        report
    };
    let text = report(1_000).to_string();
    assert!(
        text.contains("params.block_7.dense.kernel (did you mean `params.block_7.dense.kernal`?)"),
        "{}",
        &text[..2_000.min(text.len())]
    );
    assert_linear(
        "allocations formatting a report",
        &[25_000, 50_000, 100_000],
        2.3,
        |unexpected| {
            let report = report(unexpected);
            cost(|| report.to_string()).requests
        },
    );
}

/// One tiny tensor, as a model of many small layers has them.
#[derive(SafeParams, Debug, PartialEq)]
#[safejax(collection = "params")]
struct Small {
    w: Array1<f32>,
}

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(collection = "params")]
struct Layers {
    layers: Vec<Small>,
}

fn layers(n: usize) -> Layers {
    Layers {
        layers: (0..n)
            .map(|i| Small {
                w: Array1::from_elem(2, i as f32),
            })
            .collect(),
    }
}

#[test]
fn header_heavy_loads_peak_below_four_times_the_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    assert_linear(
        "peak bytes of a load of many tiny tensors",
        &[1 << 13, 1 << 14, 1 << 15],
        2.2,
        |n| {
            let model = layers(n);
            let path = dir.path().join(format!("{n}.safetensors"));
            model.save(&path).unwrap_or_else(|e| panic!("{e}"));
            let file_len = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{e}"))
                .len() as usize;
            let from_file = cost(|| {
                let back = Layers::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(back.layers.len(), n);
                back
            });
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
            let from_bytes = cost(|| Layers::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}")));
            for (how, cost) in [("a file", from_file), ("bytes", from_bytes)] {
                eprintln!(
                    "{n} tensors from {how}: peak {:.2}x the file",
                    cost.peak as f64 / file_len as f64
                );
                assert!(
                    cost.peak <= 4 * file_len,
                    "loading {n} tensors from {how}: {} bytes peak, {:.2}x the {file_len}-byte file",
                    cost.peak,
                    cost.peak as f64 / file_len as f64
                );
            }
            from_file.peak
        },
    );
}

/// A few large tensors, as most of a real model's bytes are.
#[derive(SafeParams, Debug, PartialEq)]
struct Wide {
    blocks: Vec<Array1<f32>>,
}

/// A load from a path reads each large tensor straight into its array: no buffer of the file,
/// so the peak is the value itself plus the header and what small tensors are read ahead.
#[test]
fn large_tensors_load_from_a_path_in_one_copy() {
    const BLOCK: usize = 2 << 20;
    let wide = Wide {
        blocks: (0..8).map(|i| Array1::from_elem(BLOCK, i as f32)).collect(),
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("wide.safetensors");
    wide.save(&path).unwrap_or_else(|e| panic!("{e}"));
    let model_bytes = 8 * BLOCK * 4;
    for loader in [Loader::new(), Loader::new().memory_map()] {
        let cost = cost(|| {
            let back = loader.load::<Wide>(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back.value, wide);
            back
        });
        assert!(
            cost.peak <= model_bytes + (64 << 10),
            "{} bytes peak for a model of {model_bytes} bytes",
            cost.peak
        );
    }
    // The tree API reads each tensor into its own buffer too.
    let cost = cost(|| safejax::flax::deserialize_file(&path).unwrap_or_else(|e| panic!("{e}")));
    assert!(
        cost.peak <= model_bytes + (64 << 10),
        "tree: {} bytes peak for a model of {model_bytes} bytes",
        cost.peak
    );
}

#[derive(SafeParams)]
#[safejax(borrow)]
struct WideView<'a> {
    blocks: Vec<ndarray::ArrayView1<'a, f32>>,
}

/// A view load costs the header: what it allocates does not grow with the data.
#[test]
fn view_loads_cost_the_header_not_the_data() {
    assert_linear(
        "bytes a view load allocates, the data growing",
        &[1 << 18, 1 << 20, 1 << 22],
        1.05,
        |block| {
            let wide = Wide {
                blocks: (0..8).map(|i| Array1::from_elem(block, i as f32)).collect(),
            };
            let bytes = wide.to_bytes().unwrap_or_else(|e| panic!("{e}"));
            let cost = cost(|| {
                let view = safejax::SafeView::view(&bytes).unwrap_or_else(|e| panic!("{e}"));
                let view: WideView<'_> = view;
                assert_eq!(view.blocks[7], wide.blocks[7]);
                view
            });
            assert!(
                cost.requested < 64 << 10,
                "{} bytes allocated",
                cost.requested
            );
            cost.requested
        },
    );
}
