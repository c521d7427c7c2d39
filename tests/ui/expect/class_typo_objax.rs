use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(class = "Linear")]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
struct Relu;

#[derive(SafeParams)]
#[safejax(class = "Sequential")]
struct Layers(Linear, Relu, Linear);

/// The module's class is `OMLP`: every key starts with `(OMLP)`.
#[derive(SafeParams)]
#[safejax(
    style = "objax",
    class = "MLP",
    expect = "fixtures/objax_mlp.safetensors"
)]
struct Omlp {
    layers: Layers,
}

fn main() {}
