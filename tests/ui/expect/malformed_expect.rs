use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(style = "flax", expect(path = 1, collection = ["params"]))]
struct Model {
    kernel: Array2<f32>,
}

fn main() {}
