//! Keys that start alike but never meet: no collision.

use ndarray::{Array1, Array2};
use safejax::SafeParams;

#[derive(SafeParams)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

#[derive(SafeParams)]
#[safejax(class = "Linear")]
struct Linear {
    w: Array2<f32>,
}

#[derive(SafeParams)]
#[safejax(collection = "params")]
struct Flax {
    blocks: Vec<Dense>,
    blocks_norm: Dense,
    // A list's elements go on with `_` and a digit.
    blocks_a: Vec<Dense>,
    #[safejax(collection = "batch_stats")]
    blocks_0: Dense,
    b: Array1<f32>,
    bias: Array1<f32>,
}

#[derive(SafeParams)]
#[safejax(style = "haiku", sep = "/")]
struct Haiku {
    #[safejax(numbering = "haiku")]
    linear: Vec<Linear>,
    linear_norm: Linear,
}

// Positions after a flattened list move by its length: they never meet its elements.
#[derive(SafeParams)]
#[safejax(style = "objax", class = "Sequential")]
struct Objax(Option<Linear>, #[safejax(flatten)] Vec<Linear>, Linear);

fn main() {
    let _ = (Flax::schema(), Haiku::schema(), Objax::schema());
}
