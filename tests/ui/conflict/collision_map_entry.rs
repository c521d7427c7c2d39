use std::collections::BTreeMap;

use ndarray::Array1;
use safejax::SafeParams;

// An entry `gate` of `experts` writes `experts_gate`, and so does the field beside it.
#[derive(SafeParams)]
#[safejax(collection = "params")]
struct Model {
    experts: BTreeMap<String, Array1<f32>>,
    experts_gate: Array1<f32>,
}

fn main() {}
