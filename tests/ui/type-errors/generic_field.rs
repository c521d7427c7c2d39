use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Dense<T> {
    bias: Array1<T>,
}

fn main() {
    let dense = Dense {
        bias: Array1::from(vec!['a']),
    };
    let _ = dense.keys();
}
