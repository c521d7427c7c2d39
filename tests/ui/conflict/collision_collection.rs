use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Dense {
    kernel: Array2<f32>,
}

#[derive(SafeParams)]
struct Head {
    dense: Dense,
}

// `dense` is in the collection `params`: `params.dense.kernel`; the field named `params` holds
// a `dense` of its own, outside any collection: `params.dense.kernel` again.
#[derive(SafeParams)]
struct Model {
    #[safejax(collection = "params")]
    dense: Dense,
    params: Head,
}

fn main() {}
