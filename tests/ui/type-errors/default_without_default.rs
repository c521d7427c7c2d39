use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Inner {
    w: Array1<f32>,
}

#[derive(SafeParams)]
struct Outer {
    #[safejax(default)]
    inner: Inner,
}

fn main() {}
