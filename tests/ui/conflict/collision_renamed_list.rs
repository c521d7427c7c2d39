use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

// `first` writes `blocks_0.kernel`, and so does element 0 of `blocks`.
#[derive(SafeParams)]
#[safejax(collection = "params")]
struct Model {
    #[safejax(rename = "blocks_0")]
    first: Dense,
    blocks: Vec<Dense>,
}

fn main() {}
