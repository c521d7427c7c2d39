use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Blocks {
    #[safejax(flatten)]
    blocks: Vec<Array2<f32>>,
}

fn main() {}
