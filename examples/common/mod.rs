//! What the forward-pass examples share: the fixture files, the recorded input and output of the
//! original JAX model, and the comparison.

use std::path::PathBuf;
use std::process::ExitCode;

use ndarray::Array2;

/// The largest error accepted against the output recorded in JAX.
pub const TOLERANCE: f32 = 1e-5;

/// The path of a fixture made by Python safejax.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.safetensors"))
}

/// The input `x` and output `y` that the manifest records for a fixture's model.
pub fn recorded_io(name: &str) -> Result<(Array2<f32>, Array2<f32>), Box<dyn std::error::Error>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let entry = &manifest["fixtures"][name];
    Ok((matrix(&entry["input"])?, matrix(&entry["output"])?))
}

fn matrix(rows: &serde_json::Value) -> Result<Array2<f32>, Box<dyn std::error::Error>> {
    let rows = rows.as_array().ok_or("expected a list of rows")?;
    let width = rows.first().and_then(|r| r.as_array()).map_or(0, Vec::len);
    let mut values = Vec::with_capacity(rows.len() * width);
    for row in rows {
        for x in row.as_array().ok_or("expected a row")? {
            values.push(x.as_f64().ok_or("expected a number")? as f32);
        }
    }
    Ok(Array2::from_shape_vec((rows.len(), width), values)?)
}

/// Prints `max_abs_err=<value>` as the last line, and fails if it exceeds [`TOLERANCE`].
pub fn report(got: &Array2<f32>, want: &Array2<f32>) -> ExitCode {
    let err = if got.shape() == want.shape() {
        (got - want).iter().fold(0.0f32, |m, x| m.max(x.abs()))
    } else {
        eprintln!(
            "output shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        );
        f32::INFINITY
    };
    println!("max_abs_err={err:e}");
    if err <= TOLERANCE {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `max(x, 0)`, elementwise.
pub fn relu(x: Array2<f32>) -> Array2<f32> {
    x.mapv_into(|v| v.max(0.0))
}
