//! safejax: placeholder until the facade docs land.
pub use safejax_core::*;
