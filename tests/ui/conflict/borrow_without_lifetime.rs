use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(borrow)]
struct Model {
    weights: Array1<f32>,
}

fn main() {}
