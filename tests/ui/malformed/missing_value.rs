use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Mlp {
    #[safejax(rename)]
    hidden: Array1<f32>,
    #[safejax(collection =)]
    out: Array1<f32>,
    #[safejax(class("Linear"))]
    last: Array1<f32>,
}

fn main() {}
