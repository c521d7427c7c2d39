use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Mlp {
    #[safejax(rename = Dense_0)]
    hidden: Array1<f32>,
    #[safejax(rename = 1)]
    out: Array1<f32>,
}

fn main() {}
