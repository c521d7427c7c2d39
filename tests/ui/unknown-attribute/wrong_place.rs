use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(rename = "linear")]
struct Linear {
    #[safejax(style = "haiku")]
    w: Array1<f32>,
}

fn main() {}
