//! An Objax struct pinned to the file it loads: `(OMLP).layers(Sequential)[0](Linear).w::TrainVar`,
//! the relu at position 1 holding nothing.
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

#[derive(SafeParams)]
#[safejax(
    style = "objax",
    class = "OMLP",
    expect = "fixtures/objax_mlp.safetensors"
)]
struct Omlp {
    layers: Layers,
}

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/objax_mlp.safetensors"
    );
    let omlp = Omlp::load(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(omlp.layers.2.w.dim(), (16, 4));
}
