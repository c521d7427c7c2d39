use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(styel = "haiku")]
struct Linear {
    w: Array1<f32>,
}

fn main() {}
