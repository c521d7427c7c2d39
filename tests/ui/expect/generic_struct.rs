use ndarray::{Array1, Array2};
use safejax::{Element, SafeParams};

#[derive(SafeParams)]
#[safejax(
    style = "flax",
    collection = "params",
    expect = "fixtures/flax_mlp.safetensors"
)]
struct Dense<T: Element> {
    kernel: Array2<T>,
    bias: Array1<T>,
}

fn main() {}
