use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Net(#[safejax(flatten, flatten)] Vec<Array2<f32>>);

fn main() {}
