//! Loads and saves of a list of vectors, the value most store tests move, failing the test on
//! an unexpected outcome.

#![allow(dead_code)] // each test file uses part of it

use ndarray::Array1;
use safejax_core::{Loader, Saver};
use safejax_store::{Error, Fetch, Remote};

/// Loads a list of vectors strictly.
pub async fn load_weights(remote: &Remote) -> Fetch<Vec<Array1<f32>>> {
    let fetched = remote.load::<Vec<Array1<f32>>>(&Loader::new()).await;
    fetched.unwrap_or_else(|e| panic!("{e}"))
}

/// The error of a strict load of a list of vectors, which must fail.
pub async fn load_error(remote: &Remote) -> Error {
    let fetched = remote.load::<Vec<Array1<f32>>>(&Loader::new()).await;
    match fetched {
        Ok(_) => panic!("`{}` loaded", remote.url()),
        Err(error) => error,
    }
}

/// Saves a list of vectors.
pub async fn save_weights(remote: &Remote, saver: &Saver, value: &Vec<Array1<f32>>) {
    let saved = remote.save(saver, value).await;
    saved.unwrap_or_else(|e| panic!("{e}"));
}
