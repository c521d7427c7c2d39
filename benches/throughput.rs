//! Loads and saves of files, in one run: safejax (typed, memory-mapped, tree API) against
//! hand-written code over the `safetensors` crate and against the floors of the hardware (one
//! `read` of the file into fresh memory, and into memory already touched, which leaves out the
//! page faults; one pass of `write_all`, with and without the syncs of a durable save).
//!
//! Cases: 256 MiB in 200 `f32` tensors, and 20,000 and 40,000 tensors of 64 `f32`, each a
//! Flax-named `Model { layers: Vec<Small> }` with `Small { w: Array1<f32> }`. Every file is
//! written once before it is measured, so loads read from the page cache. Before measuring, every
//! contender's result is checked against the model, so none of them measures a no-op.
//!
//! `cargo bench --bench throughput -- --warm-up-time 1 --measurement-time 3`

mod common;

use std::hint::black_box;
use std::path::Path;

use common::{BIG, Case, MANY_20K, MANY_40K, Model, ModelView};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use safejax::{Loader, MappedFile, SafeParams, SafeView, flax};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for case in [BIG, MANY_20K, MANY_40K] {
        bench_case(c, dir.path(), case);
    }
    bench_views(c, dir.path());
}

/// A view load of 200 tensors of 16 MiB in all, then 256 MiB: the same header, so the same time.
fn bench_views(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("view/200-tensors");
    group.sample_size(10);
    for (name, len) in [("16MiB", (16 << 20) / 4 / 200), ("256MiB", BIG.len)] {
        let case = Case { name, len, ..BIG };
        let model = case.model();
        let path = dir.join(format!("view-{name}.safetensors"));
        model.save(&path).expect("save the model");
        // SAFETY: nothing writes the file while it is mapped.
        let file = unsafe { MappedFile::open(&path) }.expect("map the file");
        let view = ModelView::view(file.bytes()).expect("view the model");
        assert!(view.matches(&model));
        drop(view);
        group.bench_function(name, |b| {
            b.iter(|| ModelView::view(black_box(file.bytes())).map(|v| v.layers.len()))
        });
    }
    group.finish();
}

fn bench_case(c: &mut Criterion, dir: &Path, case: Case) {
    let model = case.model();
    let path = case.file(dir);
    model.save(&path).expect("save the model");
    let bytes = std::fs::read(&path).expect("read the file");
    let tree = common::tree_of(&model);
    let target = case.save_target(dir);
    check_contenders(&case, &model, &path, &bytes, &tree, &target);

    let layers = case.tensors;
    let mut load = c.benchmark_group(format!("load/{}", case.name));
    configure(&mut load, bytes.len());
    load.bench_function("safejax", |b| b.iter(|| Model::load(black_box(&path))));
    load.bench_function("safejax-mmap", |b| {
        b.iter(|| Loader::new().memory_map().load::<Model>(black_box(&path)))
    });
    load.bench_function("tree", |b| {
        b.iter(|| flax::deserialize_file(black_box(&path)))
    });
    load.bench_function("hand", |b| {
        b.iter(|| common::hand_load(black_box(&path), layers))
    });
    load.bench_function("safejax-view", |b| {
        b.iter(|| {
            // SAFETY: nothing writes the file while it is mapped.
            let file = unsafe { MappedFile::open(black_box(&path)) }.expect("map the file");
            let view = ModelView::view(file.bytes()).expect("view the model");
            view.layers.len()
        })
    });
    load.bench_function("hand-mmap", |b| {
        b.iter(|| common::hand_load_mmap(black_box(&path), layers))
    });
    load.bench_function("floor-read", |b| {
        b.iter(|| common::floor_read(black_box(&path)))
    });
    if case.tensors > BIG.tensors {
        load.bench_function("floor-json", |b| {
            b.iter(|| common::floor_json(black_box(&bytes)))
        });
        load.bench_function("floor-arrays", |b| {
            b.iter(|| common::floor_arrays(black_box(&bytes), layers))
        });
    }
    let mut buffer = Vec::new();
    assert!(common::floor_read_into(&path, &mut buffer) == bytes);
    load.bench_function("floor-read-warm", |b| {
        b.iter(|| common::floor_read_into(black_box(&path), &mut buffer).len())
    });
    load.finish();

    let mut save = c.benchmark_group(format!("save/{}", case.name));
    configure(&mut save, bytes.len());
    save.bench_function("safejax", |b| b.iter(|| black_box(&model).save(&target)));
    save.bench_function("tree", |b| {
        b.iter(|| flax::serialize_to_file(black_box(&tree), &target, None))
    });
    save.bench_function("hand", |b| {
        b.iter(|| common::hand_save(black_box(&model), &target))
    });
    save.bench_function("floor-write", |b| {
        b.iter(|| common::floor_write(black_box(&bytes), &target))
    });
    save.bench_function("floor-write-durable", |b| {
        b.iter(|| common::floor_write_durable(black_box(&bytes), &target))
    });
    save.finish();

    if case.name == BIG.name {
        bench_copies(c, &model, &bytes);
    }
}

/// The two usual hand-written copies of a tensor's bytes into `Vec<f32>`, on every tensor of a
/// file's data: the faster one is the one the `hand` contenders use.
fn bench_copies(c: &mut Criterion, model: &Model, bytes: &[u8]) {
    let tensor_bytes = model.layers[0].w.len() * 4;
    let data = &bytes[bytes.len() - model.layers.len() * tensor_bytes..];
    let copy = |to_floats: fn(&[u8]) -> Vec<f32>| -> Vec<Vec<f32>> {
        data.chunks_exact(tensor_bytes).map(to_floats).collect()
    };
    let first = model.layers[0].w.as_slice();
    assert_eq!(
        copy(common::floats)[0].as_slice(),
        first.expect("standard layout")
    );
    assert_eq!(copy(common::floats)[..], copy(common::floats_bytemuck)[..]);
    let mut group = c.benchmark_group(format!("copy/{}", BIG.name));
    configure(&mut group, data.len());
    group.bench_function("from_le_bytes", |b| b.iter(|| copy(common::floats)));
    group.bench_function("bytemuck", |b| b.iter(|| copy(common::floats_bytemuck)));
    group.finish();
}

fn configure(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    bytes: usize,
) {
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
}

/// Every load returns the model and every save writes the file safejax writes.
fn check_contenders(
    case: &Case,
    model: &Model,
    path: &Path,
    bytes: &[u8],
    tree: &safejax::Tree,
    target: &Path,
) {
    let layers = case.tensors;
    assert!(Model::load(path).expect("safejax loads") == *model);
    let mapped = Loader::new().memory_map().load::<Model>(path);
    assert!(mapped.expect("safejax loads a map").value == *model);
    let loaded_tree = flax::deserialize_file(path).expect("the tree API loads");
    assert!(common::tree_matches(&loaded_tree, model));
    drop(loaded_tree);
    assert!(common::hand_load(path, layers) == *model);
    assert!(common::hand_load_mmap(path, layers) == *model);
    assert!(common::floor_read(path) == bytes);
    if layers > BIG.tensors {
        // The file holds the tensors in the order of their names, not of the layers.
        let total = |m: &Model| m.layers.iter().map(|l| l.w.sum() as f64).sum::<f64>();
        let arrays = common::floor_arrays(bytes, layers);
        assert!(arrays.layers.len() == layers && total(&arrays) == total(model));
        assert!(common::floor_json(bytes) + 8 < bytes.len());
    }

    let saved = |what: &str| {
        let written = std::fs::read(target).expect("read the saved file");
        assert!(written == bytes, "{what} writes the file safejax writes");
        std::fs::remove_file(target).expect("remove the saved file");
    };
    model.save(target).expect("safejax saves");
    saved("safejax");
    flax::serialize_to_file(tree, target, None).expect("the tree API saves");
    saved("the tree API");
    common::hand_save(model, target);
    saved("the hand-written save");
    common::floor_write(bytes, target);
    saved("the write floor");
    common::floor_write_durable(bytes, target);
    saved("the durable write floor");
}

criterion_group!(benches, bench);
criterion_main!(benches);
