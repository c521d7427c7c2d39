use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(style = "flax", expect = "fixtures/notes.txt")]
struct Model {
    kernel: Array2<f32>,
}

fn main() {}
