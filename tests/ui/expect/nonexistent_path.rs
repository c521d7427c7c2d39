use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(style = "flax", expect = "fixtures/no_such_file.safetensors")]
struct Model {
    kernel: Array2<f32>,
}

fn main() {}
