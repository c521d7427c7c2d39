use ndarray::Array2;
use safejax::SafeParams;

/// The file's `w` is 2-D and its `b` 1-D.
#[derive(SafeParams)]
#[safejax(class = "Linear")]
struct Linear {
    w: Array2<f32>,
    b: Array2<f32>,
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
