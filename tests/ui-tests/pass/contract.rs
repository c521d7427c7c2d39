use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

#[derive(SafeParams)]
#[safejax(style = "flax", collection = "params")]
struct Mlp {
    #[safejax(rename = "Dense_0")]
    hidden: Dense,
    #[safejax(rename = "Dense_1")]
    out: Dense,
}

fn main() {
    let dense = |i, o| Dense {
        kernel: Array2::zeros((i, o)),
        bias: Array1::zeros(o),
    };
    let mlp = Mlp {
        hidden: dense(8, 16),
        out: dense(16, 4),
    };
    let keys = mlp.keys().unwrap();
    assert_eq!(
        keys,
        [
            "params.Dense_0.bias",
            "params.Dense_0.kernel",
            "params.Dense_1.bias",
            "params.Dense_1.kernel",
        ]
    );
}
