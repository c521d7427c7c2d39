//! Runs an Objax MLP trained in JAX: `self.layers = objax.nn.Sequential([Linear(8, 16),
//! objax.functional.relu, Linear(16, 4)])`, saved with `safejax.objax.serialize(model.vars())`.
//! The relu holds no variables but still takes index 1, so the file has `[0]` and `[2]`.

mod common;

use std::process::ExitCode;

use ndarray::{Array1, Array2};
use safejax::SafeParams;

/// `objax.nn.Linear`: `w` and `b`, both `TrainVar`s.
#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

impl Linear {
    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        x.dot(&self.w) + &self.b
    }
}

/// `objax.functional.relu`: no variables.
#[derive(SafeParams)]
struct Relu;

/// The `Sequential`: entries are indexed by position, `[0]`, `[1]`, `[2]`.
#[derive(SafeParams)]
#[safejax(class = "Sequential")]
struct Layers(Linear, Relu, Linear);

#[derive(SafeParams)]
#[safejax(style = "objax", class = "OMLP")]
// Checked against the file at compile time: a field that does not match it fails the build.
#[safejax(expect = "tests/fixtures/objax_mlp.safetensors")]
struct Mlp {
    layers: Layers,
}

impl Mlp {
    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        let Layers(first, Relu, last) = &self.layers;
        last.forward(&common::relu(first.forward(x)))
    }
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mlp = Mlp::load(common::fixture("objax_mlp"))?;
    for key in mlp.keys()? {
        println!("{key}");
    }
    let (x, y) = common::recorded_io("objax_mlp")?;
    Ok(common::report(&mlp.forward(&x), &y))
}
