use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Layers(
    Array1<f32>,
    Array1<f32>,
    #[safejax(rename = "layers_1")] Array1<f32>,
);

fn main() {}
