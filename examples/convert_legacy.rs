//! Checkpoints that predate safetensors, read without executing anything, loaded into structs
//! and saved as safetensors: a Flax msgpack (`flax.serialization.to_bytes`), a Haiku pickle,
//! and Objax's npz (`objax.io.save_var_collection`). Each converted file is compared with the one
//! Python safejax wrote for the same parameters.
//!
//! `cargo run --example convert_legacy`

use std::error::Error;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use safejax::legacy::{msgpack, npz, pickle};
use safejax::{Loader, SafeParams, VarKind, flax, haiku};

#[derive(SafeParams, Debug)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

/// Flax's `Dense(16) -> relu -> Dense(4)`.
#[derive(SafeParams, Debug)]
#[safejax(style = "flax", collection = "params")]
struct FlaxMlp {
    #[safejax(rename = "Dense")]
    dense: Vec<Dense>,
}

#[derive(SafeParams, Debug)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

/// Objax's `Sequential([Linear(8, 16), relu, Linear(16, 4)])` in a module `OMLP`.
#[derive(SafeParams, Debug)]
#[safejax(style = "objax", class = "OMLP")]
struct Omlp {
    layers: Sequential,
}

#[derive(SafeParams, Debug)]
struct Sequential(Linear, (), Linear);

fn legacy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(name)
}

/// Whether `bytes` are those of the file Python safejax wrote, `expected`; an error if not.
fn same_as_python(bytes: &[u8], expected: &str) -> Result<bool, Box<dyn Error>> {
    if bytes != std::fs::read(legacy(expected))? {
        return Err(format!("the converted file differs from {expected}").into());
    }
    Ok(true)
}

fn main() -> Result<(), Box<dyn Error>> {
    let out = std::env::temp_dir().join("safejax-convert-legacy");
    std::fs::create_dir_all(&out)?;

    // A Flax msgpack: a tree, then a struct.
    let tree = msgpack::from_file(legacy("flax_mlp.msgpack"))?;
    let mlp = Loader::new().from_tree::<FlaxMlp>(&tree)?.value;
    let path = out.join("flax_mlp.safetensors");
    mlp.save(&path)?;
    println!(
        "flax_mlp.msgpack -> {} ({} layers; as Python wrote it: {})",
        path.display(),
        mlp.dense.len(),
        same_as_python(&std::fs::read(&path)?, "flax_mlp.safetensors")?
    );
    println!(
        "  the tree API writes the same: {}",
        same_as_python(&flax::serialize(&tree, None)?, "flax_mlp.safetensors")?
    );

    // A Haiku pickle: only numpy's array reconstruction and a few other globals are allowed,
    // and they are built in Rust, never called. The tree keeps `params` and `state`.
    let tree = pickle::from_file(legacy("haiku_bn_p5.pkl"))?;
    let bytes = haiku::serialize(&tree, None)?;
    println!(
        "haiku_bn_p5.pkl -> {} tensors in params and state (as Python wrote them: {})",
        tree.flatten()?.len(),
        same_as_python(&bytes, "haiku_bn.safetensors")?
    );
    match pickle::from_file(legacy("evil_os_system_p2.pkl")) {
        Ok(_) => return Err("a hostile pickle was read".into()),
        Err(refused) => println!("evil_os_system_p2.pkl refused: {refused}"),
    }

    // Objax's npz records no variable kinds: the struct gives them.
    let vars = npz::objax_from_file(legacy("objax_mlp.npz"), |_| VarKind::TrainVar)?;
    let omlp = Loader::new().from_vars::<Omlp>(&vars)?.value;
    let path = out.join("objax_mlp.safetensors");
    omlp.save(&path)?;
    println!(
        "objax_mlp.npz -> {} (last layer {:?}; as Python wrote it: {})",
        path.display(),
        omlp.layers.2.w.dim(),
        same_as_python(&std::fs::read(&path)?, "objax_mlp.safetensors")?
    );
    Ok(())
}
