use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Linear {
    #[safejax(trainable)]
    w: Array1<f32>,
}

fn main() {}
