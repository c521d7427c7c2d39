use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(crate = "safe jax", bound = "T Element")]
struct Dense<T> {
    w: Array1<T>,
}

fn main() {}
