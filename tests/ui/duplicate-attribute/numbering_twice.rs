use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Mlp {
    #[safejax(numbering = "haiku")]
    #[safejax(numbering = "nested")]
    linear: Vec<Array2<f32>>,
}

fn main() {}
