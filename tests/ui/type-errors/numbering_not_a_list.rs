use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
}

#[derive(SafeParams)]
struct Mlp {
    #[safejax(numbering = "haiku")]
    linear: Linear,
    #[safejax(numbering = "nested")]
    norm: Option<Linear>,
}

fn main() {}
