//! Runs Haiku's example transformer language model trained in JAX: loads its 38 tensors from
//! the file Python safejax wrote, runs the forward pass with ndarray on two token sequences (one
//! padded) and compares the logits with JAX's.
//!
//! Python: dm-haiku `examples/transformer`'s `LanguageModel` (`hk.Embed(50, 32)`, learned
//! positional embeddings, 2 layers of `hk.MultiHeadAttention` with 4 heads of size 8 and a
//! 4x-wide gelu MLP, pre-norm, a final `hk.LayerNorm`, `hk.Linear(50)`), saved with
//! `safejax.haiku.serialize(params)`.

#[path = "common/transformer.rs"]
mod transformer;

use std::process::ExitCode;

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let params = transformer::load_params(transformer::fixture())?;
    let (tokens, want) = transformer::recorded_io()?;
    let logits = params.forward(&tokens);
    println!("tokens {:?} -> logits {:?}", tokens.shape(), logits.shape());
    let err = transformer::max_abs_err(&logits, &want);
    println!("max_abs_err={err:e}");
    Ok(if err <= transformer::TOLERANCE {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
