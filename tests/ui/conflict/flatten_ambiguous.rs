use ndarray::Array2;
use safejax::SafeParams;

// Where the first list ends, and whether the last field is absent, only a guess could tell.
#[derive(SafeParams)]
struct Net(
    #[safejax(rename = "layers_0")] Array2<f32>,
    #[safejax(flatten)] Vec<Array2<f32>>,
    #[safejax(flatten)] Vec<Array2<f32>>,
    #[safejax(flatten)] [Array2<f32>; 2],
    #[safejax(default)] Array2<f32>,
);

fn main() {}
