use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Net(Array2<f32>, #[safejax(flatten)] Array2<f32>);

fn main() {}
