use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Net(#[safejax(skip, flatten)] Vec<Array2<f32>>, #[safejax(flatten, rename = "blocks")] Vec<Array2<f32>>);

fn main() {}
