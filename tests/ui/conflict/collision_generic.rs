use ndarray::Array1;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Leaf {
    w: Array1<f32>,
}

// Checked where it is used: with `T = Vec<Leaf>`, `items` writes `items_0.w` as `items_0` does.
#[derive(SafeParams)]
struct Pair<T> {
    items: T,
    #[safejax(rename = "items_0")]
    first: Leaf,
}

fn main() {
    let pair = Pair {
        items: vec![Leaf { w: Array1::zeros(1) }],
        first: Leaf { w: Array1::zeros(1) },
    };
    let _ = pair.to_bytes();
}
