use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(style = "flax")]
#[safejax(collection = "params", style = "haiku")]
struct Linear {
    #[safejax(skip)]
    #[safejax(skip)]
    cache: Vec<f32>,
    w: Array1<f32>,
}

fn main() {}
