use ndarray::ArrayView1;
use safejax::SafeParams;

// Without `borrow`, a struct owns its tensors: a view field is refused.
#[derive(SafeParams)]
struct Model<'a> {
    weights: ArrayView1<'a, f32>,
}

fn main() {}
