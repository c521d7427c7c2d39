use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax]
struct Encoder {
    #[safejax = "block"]
    block: Array1<f32>,
}

fn main() {}
