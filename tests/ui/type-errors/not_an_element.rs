use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Chars {
    letters: Array1<char>,
}

fn main() {}
