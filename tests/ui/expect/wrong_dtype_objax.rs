use ndarray::{Array1, Array2};
use safejax::SafeParams;
use safejax::half::bf16;

/// The file's tensors are f32.
#[derive(SafeParams)]
#[safejax(class = "Linear")]
struct Linear {
    w: Array2<bf16>,
    b: Array1<bf16>,
}

#[derive(SafeParams)]
struct Relu;

#[derive(SafeParams)]
#[safejax(class = "Sequential")]
struct Layers(Linear, Relu, Linear);

#[derive(SafeParams)]
#[safejax(
    style = "objax",
    class = "OMLP",
    expect = "fixtures/objax_mlp.safetensors"
)]
struct Omlp {
    layers: Layers,
}

fn main() {}
