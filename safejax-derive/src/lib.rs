//! `#[derive(SafeParams)]` for safejax. Use it through the `safejax` crate.
