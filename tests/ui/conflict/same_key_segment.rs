use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Block {
    norm: Array1<f32>,
    #[safejax(rename = "norm")]
    norm_2: Array1<f32>,
    // Another collection: `batch_stats.norm`, no clash.
    #[safejax(rename = "norm", collection = "batch_stats")]
    stats: Array1<f32>,
}

fn main() {}
