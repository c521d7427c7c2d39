use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Linear {
    #[safejax(rename = "w", rename = "kernel")]
    w: Array1<f32>,
}

fn main() {}
