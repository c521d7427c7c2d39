use ndarray::Array1;
use safejax::SafeParams;

struct Handle(u32);

#[derive(SafeParams)]
struct Layer {
    w: Array1<f32>,
    #[safejax(skip)]
    handle: Handle,
}

fn main() {}
