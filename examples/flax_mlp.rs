//! Runs a Flax MLP trained in JAX: loads `params.Dense_0.kernel` & co. from the file Python
//! safejax wrote, runs the forward pass with ndarray and compares with JAX's output.
//!
//! Python: `class MLP(nn.Module)` with `@nn.compact`: `Dense(16)` -> relu -> `Dense(4)`, saved
//! with `safejax.flax.serialize(variables)`.

mod common;

use std::process::ExitCode;

use ndarray::{Array1, Array2};
use safejax::SafeParams;

/// `flax.linen.Dense`.
#[derive(SafeParams)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

impl Dense {
    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        x.dot(&self.kernel) + &self.bias
    }
}

/// Inline submodules of `@nn.compact` are named `ClassName_<n>`; the whole variables dict
/// puts them under the `params` collection.
#[derive(SafeParams)]
#[safejax(style = "flax", collection = "params")]
// Checked against the file at compile time: a field that does not match it fails the build.
#[safejax(expect = "tests/fixtures/flax_mlp.safetensors")]
struct Mlp {
    #[safejax(rename = "Dense_0")]
    hidden: Dense,
    #[safejax(rename = "Dense_1")]
    out: Dense,
}

impl Mlp {
    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        self.out.forward(&common::relu(self.hidden.forward(x)))
    }
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mlp = Mlp::load(common::fixture("flax_mlp"))?;
    for key in mlp.keys()? {
        println!("{key}");
    }
    let (x, y) = common::recorded_io("flax_mlp")?;
    Ok(common::report(&mlp.forward(&x), &y))
}
