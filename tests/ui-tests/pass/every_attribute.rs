//! Every attribute at once, on named, tuple, unit and generic structs.
#![deny(warnings)]

use ndarray::{Array0, Array1, Array2};
use safejax::{SafeParams, Style};

#[derive(SafeParams)]
#[safejax(class = "Linear")]
struct Linear<T: safejax::Element> {
    w: Array2<T>,
    b: Array1<T>,
}

#[derive(SafeParams)]
struct Relu;

#[derive(SafeParams)]
#[safejax(class = "Sequential")]
struct Layers(Linear<f32>, Relu, #[safejax(rename = "head")] Linear<f32>);

#[derive(SafeParams)]
#[safejax(collection = "state")]
struct Ema {
    average: Array1<f32>,
    counter: Array0<i32>,
}

#[derive(SafeParams)]
#[safejax(
    style = "haiku",
    collection = "params",
    class = "Net",
    crate = "safejax"
)]
#[safejax(bound = "T: safejax::Element + Default")]
struct Net<T> {
    #[safejax(rename = "mlp", class = "MLP", sep = "/")]
    layers: Layers,
    #[safejax(collection = "batch_stats")]
    ema: Ema,
    #[safejax(default)]
    extra: Option<Array1<T>>,
    #[safejax(skip)]
    scratch: Vec<T>,
}

fn main() {
    let linear = |i, o| Linear::<f32> {
        w: Array2::zeros((i, o)),
        b: Array1::zeros(o),
    };
    let net = Net::<f64> {
        layers: Layers(linear(2, 3), Relu, linear(3, 1)),
        ema: Ema {
            average: Array1::zeros(3),
            counter: Array0::zeros(()),
        },
        extra: None,
        scratch: Vec::new(),
    };
    assert_eq!(net.keys().unwrap()[0], "batch_stats.ema.average");
    assert_eq!(
        net.keys_in(Style::Objax).unwrap()[0],
        "(Net).ema(Ema).average::batch_stats"
    );
    let back = Net::<f64>::from_bytes(&net.to_bytes().unwrap()).unwrap();
    assert!(back.scratch.is_empty());
}
