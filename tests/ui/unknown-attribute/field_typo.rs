use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Dense {
    #[safejax(renam = "w")]
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

// The mistake above is reported once: `Dense` still implements `SafeParams`, so neither this
// struct nor the call in `main` adds errors.
#[derive(SafeParams)]
struct Mlp {
    hidden: Dense,
}

fn main() {
    let _ = Mlp::load("mlp.safetensors");
}
