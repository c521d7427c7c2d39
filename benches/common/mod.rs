//! What `throughput` and `peak_rss` share: the model, the hand-written code over the
//! `safetensors` crate that loads and saves it without safejax, and the floors (one `read` of the
//! file, one pass of `write_all`).
#![allow(dead_code, reason = "each bench uses a different part of this module")]

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ndarray::Array1;
use safejax::{SafeParams, Tensor, Tree};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

#[derive(SafeParams, Debug, PartialEq)]
pub struct Small {
    pub w: Array1<f32>,
}

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(style = "flax", collection = "params")]
pub struct Model {
    pub layers: Vec<Small>,
}

/// [`Small`], borrowing its tensor from the file's bytes.
#[derive(SafeParams, Debug)]
#[safejax(borrow)]
pub struct SmallView<'a> {
    pub w: ndarray::ArrayView1<'a, f32>,
}

/// [`Model`], borrowing its tensors from the file's bytes.
#[derive(SafeParams, Debug)]
#[safejax(borrow, style = "flax", collection = "params")]
pub struct ModelView<'a> {
    pub layers: Vec<SmallView<'a>>,
}

impl ModelView<'_> {
    /// Whether every view equals the model's tensor.
    pub fn matches(&self, model: &Model) -> bool {
        self.layers.len() == model.layers.len()
            && self
                .layers
                .iter()
                .zip(&model.layers)
                .all(|(v, m)| v.w == m.w)
    }
}

/// A model of `tensors` tensors of `len` `f32` each.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The name in benchmark ids, e.g. `256MiB`.
    pub name: &'static str,
    pub tensors: usize,
    pub len: usize,
}

/// 256 MiB in 200 tensors (less 56 bytes, for an equal split).
pub const BIG: Case = Case {
    name: "256MiB",
    tensors: 200,
    len: (256 << 20) / 4 / 200,
};
/// 20,000 tensors of 64 `f32`.
pub const MANY_20K: Case = Case {
    name: "20k-tensors",
    tensors: 20_000,
    len: 64,
};
/// 40,000 tensors of 64 `f32`.
pub const MANY_40K: Case = Case {
    name: "40k-tensors",
    tensors: 40_000,
    len: 64,
};
/// 1 GiB in 64 tensors of 16 MiB.
pub const HUGE: Case = Case {
    name: "1GiB",
    tensors: 64,
    len: (16 << 20) / 4,
};

impl Case {
    /// The bytes of tensor data.
    pub fn data_bytes(&self) -> usize {
        self.tensors * self.len * 4
    }

    pub fn model(&self) -> Model {
        let layer = |i: usize| Small {
            w: Array1::from_shape_fn(self.len, |j| ((i * 7919 + j) % 1009) as f32 / 1009.0),
        };
        Model {
            layers: (0..self.tensors).map(layer).collect(),
        }
    }

    /// The file the loads read, in `dir`.
    pub fn file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.safetensors", self.name))
    }

    /// The file the saves replace, in `dir`.
    pub fn save_target(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}-saved.safetensors", self.name))
    }
}

pub fn key(i: usize) -> String {
    format!("params.layers_{i}.w")
}

/// The model as a Flax tree of tensors, as the tree API holds it.
pub fn tree_of(model: &Model) -> Tree {
    let flat = model
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| (key(i), Tensor::from_array(&layer.w)));
    Tree::unflatten(flat).expect("keys of a Flax model")
}

/// Whether `tree` holds exactly the tensors of `model`.
pub fn tree_matches(tree: &Tree, model: &Model) -> bool {
    let flat = tree.flatten().expect("a loaded tree flattens");
    flat.len() == model.layers.len()
        && model.layers.iter().enumerate().all(|(i, layer)| {
            tree.tensor(&key(i)).is_some_and(|t| {
                t.dtype() == Dtype::F32
                    && t.shape() == layer.w.shape()
                    && t.to_array::<f32, ndarray::Ix1>().ok().as_ref() == Some(&layer.w)
            })
        })
}

/// The hand-written copy of a tensor's bytes: `chunks_exact(4).map(f32::from_le_bytes)`, which
/// the compiler turns into a vectorised copy; measured a little faster than [`floats_bytemuck`]
/// (`copy/256MiB` in `throughput`), and correct on any host.
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The other usual hand-written copy, kept to compare with [`floats`]: a `memcpy` through
/// `bytemuck::cast_slice_mut` into a zeroed allocation (large ones come from `calloc`,
/// untouched), valid on little-endian hosts.
pub fn floats_bytemuck(bytes: &[u8]) -> Vec<f32> {
    let len = bytes.len() / 4;
    let mut out = vec![0.0f32; len];
    bytemuck::cast_slice_mut(&mut out).copy_from_slice(&bytes[..len * 4]);
    out
}

/// Hand-written load from bytes: parse, look each tensor up by name, copy it into an array.
pub fn hand_from_bytes(bytes: &[u8], layers: usize) -> Model {
    let file = SafeTensors::deserialize(bytes).expect("a safetensors file");
    let layer = |i: usize| {
        let view = file.tensor(&key(i)).expect("the model's tensor");
        assert_eq!(view.dtype(), Dtype::F32);
        let w = Array1::from_shape_vec(view.shape()[0], floats(view.data()));
        Small {
            w: w.expect("a rank-1 tensor"),
        }
    };
    Model {
        layers: (0..layers).map(layer).collect(),
    }
}

/// What every load of a file in memory must do whatever its names, and no more: the header
/// parsed as JSON (into nothing), the only step that reads the names.
pub fn floor_json(bytes: &[u8]) -> usize {
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = &bytes[8..8 + len];
    serde_json::from_slice::<serde::de::IgnoredAny>(header).expect("a JSON header");
    len
}

/// What every load into owned arrays must do whatever its names: one array allocated and filled
/// per tensor, from the data section of a file in memory, in file order, with no lookup.
pub fn floor_arrays(bytes: &[u8], layers: usize) -> Model {
    let header = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let data = &bytes[8 + header..];
    let tensor = data.len() / layers;
    Model {
        layers: data
            .chunks_exact(tensor)
            .map(|chunk| Small {
                w: Array1::from_vec(floats(chunk)),
            })
            .collect(),
    }
}

/// Hand-written load of a file: `std::fs::read`, then [`hand_from_bytes`].
pub fn hand_load(path: &Path, layers: usize) -> Model {
    let bytes = std::fs::read(path).expect("read the file");
    hand_from_bytes(&bytes, layers)
}

/// Hand-written load of a memory-mapped file.
pub fn hand_load_mmap(path: &Path, layers: usize) -> Model {
    let file = File::open(path).expect("open the file");
    // SAFETY: the benchmark's files are written before they are mapped and not modified while
    // the map lives.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("map the file");
    hand_from_bytes(&map, layers)
}

/// Hand-written durable save, as durable as safejax's: borrowed views written by
/// `safetensors::serialize_to_file` to a temporary sibling, `sync_all`, rename over the target,
/// sync the directory.
pub fn hand_save(model: &Model, path: &Path) {
    let views = model.layers.iter().enumerate().map(|(i, layer)| {
        let data = layer.w.as_slice().expect("a standard-layout array");
        let view = TensorView::new(Dtype::F32, vec![data.len()], bytemuck::cast_slice(data));
        (key(i), view.expect("a consistent view"))
    });
    let temp = temp_sibling(path);
    safetensors::serialize_to_file(views, None, &temp).expect("write the file");
    File::open(&temp)
        .and_then(|f| f.sync_all())
        .expect("sync the file");
    std::fs::rename(&temp, path).expect("rename over the target");
    sync_dir(path);
}

/// The read floor: one `read_to_end` into a buffer of the file's size whose pages are not yet
/// touched.
pub fn floor_read(path: &Path) -> Vec<u8> {
    let mut file = File::open(path).expect("open the file");
    let len = file.metadata().expect("the file's size").len();
    let mut buffer = Vec::with_capacity(len as usize);
    file.read_to_end(&mut buffer).expect("read the file");
    buffer
}

/// The read floor without page faults: one `read_to_end` into `buffer`, whose pages an earlier
/// read has touched.
pub fn floor_read_into<'b>(path: &Path, buffer: &'b mut Vec<u8>) -> &'b [u8] {
    buffer.clear();
    let mut file = File::open(path).expect("open the file");
    let len = file.metadata().expect("the file's size").len();
    buffer.reserve(len as usize);
    file.read_to_end(buffer).expect("read the file");
    buffer
}

/// The write floor: the file's bytes in `write_all` calls of 1 MiB, no sync.
pub fn floor_write(bytes: &[u8], path: &Path) {
    let mut file = File::create(path).expect("create the file");
    write_chunks(&mut file, bytes);
}

/// The durable write floor: [`floor_write`] to a temporary sibling, `sync_all`, rename over the
/// target, sync the directory.
pub fn floor_write_durable(bytes: &[u8], path: &Path) {
    let temp = temp_sibling(path);
    let mut file = File::create(&temp).expect("create the file");
    write_chunks(&mut file, bytes);
    file.sync_all().expect("sync the file");
    drop(file);
    std::fs::rename(&temp, path).expect("rename over the target");
    sync_dir(path);
}

fn write_chunks(file: &mut File, bytes: &[u8]) {
    for chunk in bytes.chunks(1 << 20) {
        file.write_all(chunk).expect("write the file");
    }
}

fn temp_sibling(path: &Path) -> PathBuf {
    path.with_extension("tmp")
}

fn sync_dir(path: &Path) {
    let dir = path.parent().expect("a file in a directory");
    File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("sync the directory");
}
