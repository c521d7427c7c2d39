use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
#[safejax(class = "Net(v2)")]
struct Net {
    #[safejax(rename = "encoder.layer")]
    encoder: Array1<f32>,
    #[safejax(rename = "mlp/~/linear_0")]
    linear: Array1<f32>,
    #[safejax(collection = "")]
    stats: Array1<f32>,
    #[safejax(collection = "params::extra")]
    extra: Array1<f32>,
    // A lone `~` is Haiku's top-level name: fine.
    #[safejax(rename = "~")]
    top: Array1<f32>,
}

fn main() {}
