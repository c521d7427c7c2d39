//! The common case without async: one call that starts a runtime, loads or saves, and returns.
//!
//! ```
//! use ndarray::{Array1, array};
//! use safejax_store::blocking;
//!
//! let dir = tempfile::tempdir().map_err(safejax_core::Error::Write)?;
//! let url = format!("file://{}/model.safetensors", dir.path().display());
//! let weights = vec![array![1.0f32, 2.0]];
//! blocking::save(&url, &weights)?;
//! let fetched = blocking::load::<Vec<Array1<f32>>>(&url)?;
//! assert_eq!(fetched.loaded.value, weights);
//! println!("fetched {} bytes in {} requests", fetched.stats.bytes, fetched.stats.requests);
//! # Ok::<(), safejax_store::Error>(())
//! ```

use safejax_core::{Loader, SafeParams, Saver};

use crate::{Error, Fetch, Remote, Result, Stats};

/// Loads a value from a URL ([`Remote::parse`]) with a strict [`Loader`].
pub fn load<T: SafeParams>(url: &str) -> Result<Fetch<T>> {
    let remote = Remote::parse(url)?;
    block_on(remote.load(&Loader::new()))?
}

/// Saves a value to a URL ([`Remote::parse`]) with a default [`Saver`].
pub fn save<T: SafeParams + Sync>(url: &str, value: &T) -> Result<Stats> {
    let remote = Remote::parse(url)?;
    block_on(remote.save(&Saver::new(), value))?
}

/// Runs `future` to its end on a multi-threaded runtime of its own; an error if none can be
/// started.
///
/// ```
/// let size = safejax_store::blocking::block_on(async { 1 + 1 })?;
/// assert_eq!(size, 2);
/// # Ok::<(), safejax_store::Error>(())
/// ```
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start an async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}
