use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Encoder {
    #[safejax(sep = "~")]
    block: Array1<f32>,
}

fn main() {}
