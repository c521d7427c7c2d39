use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(style = "pytorch")]
struct Linear {
    w: Array1<f32>,
}

fn main() {}
