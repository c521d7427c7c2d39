use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Layer {
    w: Array1<f32>,
    #[safejax(skip, rename = "scratch", collection = "cache")]
    cache: Vec<f32>,
}

fn main() {}
