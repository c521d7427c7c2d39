//! The main job in a few lines: a model defined with `#[derive(SafeParams)]`, filled
//! deterministically, saved, loaded back and checked; then its keys in each framework's style.
//!
//! `cargo run --example quickstart`

use std::error::Error;

use ndarray::{Array, Array1, Array2, Dimension, ShapeBuilder};
use safejax::{SafeParams, Saver, Style};

#[derive(SafeParams, Debug, PartialEq)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

/// A layer norm: `scale` and `bias`.
#[derive(SafeParams, Debug, PartialEq)]
struct Norm {
    scale: Array1<f32>,
    bias: Array1<f32>,
}

#[derive(SafeParams, Debug, PartialEq)]
struct Block {
    dense: Dense,
    norm: Norm,
}

#[derive(SafeParams, Debug, PartialEq)]
#[safejax(style = "flax")]
struct Model {
    embed: Dense,
    blocks: Vec<Block>,
    head: Dense,
}

/// Deterministic values: a small counter-based pattern, different for every tensor.
fn fill<D: Dimension>(shape: impl ShapeBuilder<Dim = D>, seed: &mut u32) -> Array<f32, D> {
    Array::from_shape_simple_fn(shape, || {
        *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (*seed >> 8) as f32 / (1 << 24) as f32 - 0.5
    })
}

fn dense(inputs: usize, outputs: usize, seed: &mut u32) -> Dense {
    Dense {
        kernel: fill((inputs, outputs), seed),
        bias: fill(outputs, seed),
    }
}

fn block(width: usize, seed: &mut u32) -> Block {
    Block {
        dense: dense(width, width, seed),
        norm: Norm {
            scale: fill(width, seed),
            bias: fill(width, seed),
        },
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let seed = &mut 42;
    let model = Model {
        embed: dense(8, 16, seed),
        blocks: vec![block(16, seed), block(16, seed)],
        head: dense(16, 4, seed),
    };

    let path = std::env::temp_dir().join("safejax-quickstart.safetensors");
    model.save(&path)?;
    let loaded = Model::load(&path)?;
    assert_eq!(loaded, model, "the loaded model equals the saved one");
    println!(
        "saved and loaded {} ({} bytes)",
        path.display(),
        std::fs::metadata(&path)?.len()
    );

    for style in Style::ALL {
        println!("\n{style} keys:");
        for key in Saver::new().style(style).keys(&model)? {
            println!("  {key}");
        }
    }
    std::fs::remove_file(&path)?;
    Ok(())
}
