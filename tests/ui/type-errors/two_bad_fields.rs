use ndarray::Array1;
use safejax::SafeParams;

struct Tokenizer;

#[derive(SafeParams)]
struct Model {
    weights: Array1<f32>,
    vocab: Vec<String>,
    tokenizer: Option<Tokenizer>,
}

fn main() {}
