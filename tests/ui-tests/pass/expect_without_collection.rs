//! `expect(path = ..., collections = [...], without_collection)`: Haiku params saved alone, so
//! the file's keys (`mlp/~/linear_0.w`) lack the `params.` the struct's collection would add.
use ndarray::{Array1, Array2};
use safejax::{Loader, Part, SafeParams};

#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
struct HkMlp {
    #[safejax(rename = "linear")]
    layers: Vec<Linear>,
}

#[derive(SafeParams)]
#[safejax(
    style = "haiku",
    collection = "params",
    expect(path = "fixtures/haiku_mlp.safetensors", collections = ["params"], without_collection)
)]
struct Mlp {
    mlp: HkMlp,
}

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/haiku_mlp.safetensors"
    );
    let part = Part::file(path)
        .collections(["params"])
        .without_collection();
    let mlp: Mlp = Loader::new()
        .read(&[part])
        .unwrap_or_else(|e| panic!("{e}"))
        .value;
    assert_eq!(mlp.mlp.layers.len(), 2);
}
