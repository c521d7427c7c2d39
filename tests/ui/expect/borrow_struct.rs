use ndarray::{ArrayView1, ArrayView2};
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(borrow, style = "flax", expect = "fixtures/flax_mlp.safetensors")]
struct DenseView<'a> {
    kernel: ArrayView2<'a, f32>,
    bias: ArrayView1<'a, f32>,
}

fn main() {}
