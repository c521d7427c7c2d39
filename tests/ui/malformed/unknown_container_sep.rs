use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(sep = "~")]
struct Attention {
    query: Array2<f32>,
}

fn main() {}
