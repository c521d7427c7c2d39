//! Compile-fail tests of `#[derive(SafeParams)]` live in `tests/`.
