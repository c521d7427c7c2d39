use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Mlp {
    #[safejax(skip, numbering = "haiku")]
    linear: Vec<Array2<f32>>,
}

fn main() {}
