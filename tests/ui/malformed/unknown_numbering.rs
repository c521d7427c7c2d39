use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Mlp {
    #[safejax(numbering = "flax")]
    linear: Vec<Array2<f32>>,
}

fn main() {}
