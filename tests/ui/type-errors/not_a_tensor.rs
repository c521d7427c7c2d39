use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Embed {
    table: Array1<f32>,
    name: String,
}

fn main() {}
