use ndarray::ArrayView1;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(borrow)]
struct Model<'a> {
    weights: ArrayView1<'a, f32>,
    vocab: &'a str,
}

fn main() {}
