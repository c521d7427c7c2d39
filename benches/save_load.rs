//! safejax against hand-written glue over the official `safetensors` crate, in the same run:
//! saving a model to bytes, and loading it back into ndarray arrays.
//!
//! The glue is what one writes without safejax: a `View` per array, names typed out by hand,
//! `SafeTensors::deserialize` and a conversion of each tensor's bytes.

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array1, Array2};
use safejax::SafeParams;
use safetensors::{Dtype, SafeTensors, View};

#[derive(SafeParams, Clone)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

#[derive(SafeParams, Clone)]
#[safejax(style = "flax", collection = "params")]
struct Mlp {
    layers: Vec<Dense>,
}

const WIDTH: usize = 512;
const DEPTH: usize = 8;

fn model() -> Mlp {
    let dense = |i: usize| Dense {
        kernel: Array2::from_shape_fn((WIDTH, WIDTH), |(r, c)| {
            ((r * 31 + c * 7 + i) % 97) as f32 / 97.0
        }),
        bias: Array1::from_shape_fn(WIDTH, |c| (c + i) as f32),
    };
    Mlp {
        layers: (0..DEPTH).map(dense).collect(),
    }
}

/// The glue's view of one array: little-endian bytes, copied as most hand-written code does.
struct Glue<'a> {
    shape: Vec<usize>,
    data: &'a [f32],
}

impl View for Glue<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.data.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// The glue's list of named views, names typed out by hand.
fn glue_views(mlp: &Mlp) -> Vec<(String, Glue<'_>)> {
    let mut tensors = Vec::new();
    for (i, layer) in mlp.layers.iter().enumerate() {
        let kernel = layer.kernel.as_slice().unwrap_or_default();
        let bias = layer.bias.as_slice().unwrap_or_default();
        let kernel = Glue {
            shape: vec![WIDTH, WIDTH],
            data: kernel,
        };
        tensors.push((format!("params.layers_{i}.kernel"), kernel));
        tensors.push((
            format!("params.layers_{i}.bias"),
            Glue {
                shape: vec![WIDTH],
                data: bias,
            },
        ));
    }
    tensors
}

fn glue_save(mlp: &Mlp) -> Vec<u8> {
    safetensors::serialize(glue_views(mlp), None).unwrap_or_default()
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn glue_load(bytes: &[u8]) -> Option<Mlp> {
    let file = SafeTensors::deserialize(bytes).ok()?;
    let mut layers = Vec::new();
    for i in 0.. {
        let Ok(kernel) = file.tensor(&format!("params.layers_{i}.kernel")) else {
            break;
        };
        let bias = file.tensor(&format!("params.layers_{i}.bias")).ok()?;
        layers.push(Dense {
            kernel: Array2::from_shape_vec(
                (kernel.shape()[0], kernel.shape()[1]),
                floats(kernel.data()),
            )
            .ok()?,
            bias: Array1::from_vec(floats(bias.data())),
        });
    }
    Some(Mlp { layers })
}

fn bench(c: &mut Criterion) {
    let mlp = model();
    let bytes = mlp.to_bytes().unwrap_or_default();
    assert_eq!(bytes, glue_save(&mlp), "both write the same file");
    let loaded = glue_load(&bytes).map(|m| m.layers.len());
    assert_eq!(loaded, Some(DEPTH), "the glue reads the whole model");

    let mut save = c.benchmark_group("save_to_bytes");
    save.throughput(Throughput::Bytes(bytes.len() as u64));
    save.bench_function("glue", |b| b.iter(|| glue_save(black_box(&mlp))));
    save.bench_function("safejax", |b| b.iter(|| black_box(&mlp).to_bytes()));
    save.finish();

    let mut load = c.benchmark_group("load_from_bytes");
    load.throughput(Throughput::Bytes(bytes.len() as u64));
    load.bench_function("glue", |b| b.iter(|| glue_load(black_box(&bytes))));
    load.bench_function("safejax", |b| b.iter(|| Mlp::from_bytes(black_box(&bytes))));
    load.finish();

    let dir = std::env::temp_dir().join("safejax-bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("mlp.safetensors");
    let mut file = c.benchmark_group("file");
    file.throughput(Throughput::Bytes(bytes.len() as u64));
    file.sample_size(20);
    file.bench_function("glue_serialize_to_file", |b| {
        b.iter(|| safetensors::serialize_to_file(glue_views(&mlp), None, &path))
    });
    file.bench_function("safejax_save_atomic_fsync", |b| b.iter(|| mlp.save(&path)));
    file.bench_function("safejax_load", |b| b.iter(|| Mlp::load(&path)));
    file.bench_function("safejax_load_mmap", |b| {
        b.iter(|| safejax::Loader::new().memory_map().load::<Mlp>(&path))
    });
    file.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
