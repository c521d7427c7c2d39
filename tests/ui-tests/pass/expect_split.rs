//! A checkpoint split over two files, one `expect(...)` each: Haiku params and state saved
//! apart (`linear.w` in one, `batch_norm/~/mean_ema.counter` in the other).
use ndarray::{Array1, Array2};
use safejax::{Loader, Part, SafeParams};

#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
struct Ema {
    average: Array2<f32>,
    hidden: Array2<f32>,
    counter: i32,
}

#[derive(SafeParams)]
struct BatchNorm {
    offset: Array2<f32>,
    scale: Array2<f32>,
    #[safejax(collection = "state")]
    mean_ema: Ema,
    #[safejax(collection = "state")]
    var_ema: Ema,
}

#[derive(SafeParams)]
#[safejax(style = "haiku", collection = "params")]
#[safejax(expect(
    path = "fixtures/haiku_bn_params.safetensors",
    collections = ["params"],
    without_collection
))]
#[safejax(expect(
    path = "fixtures/haiku_bn_state.safetensors",
    collections = ["state"],
    without_collection
))]
struct Bn {
    linear: Linear,
    batch_norm: BatchNorm,
    linear_1: Linear,
}

fn main() {
    let fixture = |name: &str| format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let (params, state) = (
        fixture("haiku_bn_params.safetensors"),
        fixture("haiku_bn_state.safetensors"),
    );
    let parts = [
        Part::file(&params)
            .collections(["params"])
            .without_collection(),
        Part::file(&state)
            .collections(["state"])
            .without_collection(),
    ];
    let bn: Bn = Loader::new()
        .read(&parts)
        .unwrap_or_else(|e| panic!("{e}"))
        .value;
    assert_eq!(bn.batch_norm.var_ema.counter, 1);
    assert_eq!(bn.linear_1.w.dim(), (16, 4));
}
