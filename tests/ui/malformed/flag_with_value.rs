use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Layer {
    w: Array1<f32>,
    #[safejax(skip = true)]
    cache: Vec<f32>,
}

fn main() {}
