//! Runs a Haiku model with BatchNorm trained in JAX, from params and state saved together
//! (`{"params": params, "state": state}`), in inference mode from the EMA statistics.
//!
//! Python: `hk.Linear(16)` -> relu -> `hk.BatchNorm(True, True, 0.9)` -> `hk.Linear(4)` inside
//! one `hk.transform_with_state`; default module names `linear`, `batch_norm`, `linear_1`.

mod common;

use std::process::ExitCode;

use ndarray::{Array1, Array2};
use safejax::SafeParams;

/// `hk.Linear`: parameters `w` and `b`.
#[derive(SafeParams)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

impl Linear {
    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        x.dot(&self.w) + &self.b
    }
}

/// `hk.ExponentialMovingAverage`: a state module; `counter` is a 0-d int32.
#[derive(SafeParams)]
struct Ema {
    average: Array2<f32>,
    hidden: Array2<f32>,
    counter: i32,
}

/// `hk.BatchNorm`: `scale` and `offset` are params; its moving averages are submodules made in
/// its constructor (so joined with `/~/`) whose variables live in the `state` collection.
#[derive(SafeParams)]
struct BatchNorm {
    scale: Array2<f32>,
    offset: Array2<f32>,
    #[safejax(collection = "state")]
    mean_ema: Ema,
    #[safejax(collection = "state")]
    var_ema: Ema,
}

impl BatchNorm {
    const EPS: f32 = 1e-5;

    /// Inference mode: normalize with the moving averages.
    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        let std = self.var_ema.average.mapv(|v| (v + Self::EPS).sqrt());
        (x - &self.mean_ema.average) / std * &self.scale + &self.offset
    }
}

#[derive(SafeParams)]
#[safejax(style = "haiku", collection = "params")]
// Checked against the file at compile time: a field that does not match it fails the build.
#[safejax(expect = "tests/fixtures/haiku_bn.safetensors")]
struct Net {
    linear: Linear,
    batch_norm: BatchNorm,
    linear_1: Linear,
}

impl Net {
    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        let h = common::relu(self.linear.forward(x));
        self.linear_1.forward(&self.batch_norm.forward(&h))
    }
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let net = Net::load(common::fixture("haiku_bn"))?;
    for key in net.keys()? {
        println!("{key}");
    }
    println!(
        "ema counters: {} {}",
        net.batch_norm.mean_ema.counter, net.batch_norm.var_ema.counter
    );
    let (x, y) = common::recorded_io("haiku_bn")?;
    Ok(common::report(&net.forward(&x), &y))
}
