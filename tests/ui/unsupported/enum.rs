use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
enum Activation {
    Relu,
    Prelu { alpha: Array1<f32> },
}

// No further error here: the enum still gets a (stub) impl.
#[derive(SafeParams)]
struct Layer {
    w: Array1<f32>,
    act: Activation,
}

fn main() {}
