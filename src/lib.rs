//! Neural-network parameters in safetensors, named exactly the way **Flax**, **Haiku** and
//! **Objax** name them.
//!
//! Annotate plain structs of [`ndarray`] arrays with `#[derive(SafeParams)]`, then `save` and
//! `load` them: the files are the ones Python's `safejax` writes for that framework, byte for
//! byte, and Python reads the files Rust writes.
//!
//! Arrays are those of **ndarray 0.17**, re-exported as [`ndarray`]: an `Array` of another
//! ndarray major is another type, which the derive refuses.
//!
//! ```
//! use ndarray::{Array1, Array2};
//! use safejax::{SafeParams, Style};
//!
//! #[derive(SafeParams, Debug, PartialEq)]
//! struct Dense {
//!     kernel: Array2<f32>,
//!     bias: Array1<f32>,
//! }
//!
//! #[derive(SafeParams, Debug, PartialEq)]
//! #[safejax(style = "flax", collection = "params")]
//! struct Mlp {
//!     #[safejax(rename = "Dense_0")]
//!     hidden: Dense,
//!     #[safejax(rename = "Dense_1")]
//!     out: Dense,
//! }
//!
//! let dense = |i, o| Dense { kernel: Array2::zeros((i, o)), bias: Array1::zeros(o) };
//! let mlp = Mlp { hidden: dense(8, 16), out: dense(16, 4) };
//! assert_eq!(
//!     mlp.keys()?,
//!     ["params.Dense_0.bias", "params.Dense_0.kernel", "params.Dense_1.bias", "params.Dense_1.kernel"],
//! );
//! // The same struct, named the Haiku way.
//! assert_eq!(mlp.keys_in(Style::Haiku)?[0], "params.Dense_0.bias");
//!
//! let path = std::env::temp_dir().join("safejax-doc-mlp.safetensors");
//! mlp.save(&path)?;
//! assert_eq!(Mlp::load(&path)?, mlp);
//! # Ok::<(), safejax::Error>(())
//! ```
//!
//! # What is where
//!
//! - [`SafeParams`]: the trait the derive implements. Its provided methods save and load a value
//!   in its default style: [`to_bytes`](SafeParams::to_bytes), [`from_bytes`](SafeParams::from_bytes),
//!   [`save`](SafeParams::save), [`load`](SafeParams::load),
//!   [`save_with_metadata`](SafeParams::save_with_metadata),
//!   [`load_with_metadata`](SafeParams::load_with_metadata),
//!   [`load_into`](SafeParams::load_into), [`keys`](SafeParams::keys).
//! - [`Saver`] and [`Loader`]: another style, some collections only, keys without the collection,
//!   metadata, several files, memory maps, and the explicit leniencies of a load.
//! - [`Style`], [`KeyPath`]: rendering and parsing keys in each convention.
//! - [`flax`], [`haiku`], [`objax`]: the dynamic API of Python safejax, on [`Tree`] and
//!   [`VarCollection`] of [`Tensor`]s of any dtype.
//! - [`hf`]: Hugging Face `transformers`' Flax checkpoints (`save_pretrained(...,
//!   safe_serialization=True)`), typed ([`hf::load`], [`hf::save`]) and as trees.
//! - [`shard`]: sharded checkpoints, several safetensors files and a Hugging Face index
//!   (`model.safetensors.index.json`); every file load and save takes the index's path, and
//!   [`Saver::max_shard_size`] sets the shards' size.
//! - `store` (feature `object-store`): loading and saving through object storage (`s3://`,
//!   `gs://`, `az://`, `https://`), fetching only the header and the tensors a load reads,
//!   streamed into their arrays; sharded saves with the index last; the tree API.
//! - [`Error`] and [`LoadReport`]: every problem of a load in one value.
//! - [`schema`]: each type's key layout, known at compile time ([`SafeParams::KIND`]), listed by
//!   [`SafeParams::schema`]; [`Loader::check`] holds a file's header to it without loading, and
//!   `#[safejax(expect = "...")]` does so when the crate compiles.
//!
//! Field types: ndarray owned arrays (`Array0`..`Array6`, `ArrayD`) and plain scalars of `f32`,
//! `f64`, [`half::f16`], [`half::bf16`], `i8`, `i16`, `i32`, `i64`, `u8`, `u16`, `u32`, `u64`,
//! `bool`; [`Tensor`]; types deriving `SafeParams`; and `Vec`, `[T; N]`, `Option`, `Box`, `Arc`,
//! `BTreeMap<String, _>`, `HashMap<String, _>`, `()`, `PhantomData` of those.
//!
//! How a list, a map or a tuple struct is named:
//!
//! | declaration | Flax / Haiku | Objax |
//! |---|---|---|
//! | `blocks: Vec<Block>` or `[Block; N]` | `blocks_0`, `blocks_1` | `.blocks(ModuleList)[0](Block)` |
//! | `heads: BTreeMap<String, Head>` | `heads_<key>` | `.heads(ModuleDict)[<key>](Head)` |
//! | `struct Layers(A, B);` (unrenamed fields) | `layers_0`, `layers_1` | `[0](A)`, `[1](B)` |
//!
//! A list loads as many elements as the file has consecutive indices from 0, so an element
//! holding no tensors is refused on save when a later one holds some, and trailing ones are not
//! stored. A map loads the entries the file has. Map keys must be non-empty and free of `.`, `/`,
//! `::`, `(`, `)`, `[` and `]`, checked when saving and loading, as renames are at compile time.
//! Flax and Haiku join an entry to its map with `_`, as Flax names the modules of a dict
//! attribute; for a map inside a map that is ambiguous (`a_b_c` is `a` → `b_c` or `a_b` → `c`),
//! and the shortest outer name that reads wins. Objax's brackets are never ambiguous.
//!
//! # Attributes of `#[derive(SafeParams)]`
//!
#![doc = include_str!("attributes.md")]
#![deny(missing_docs)]

pub use safejax_core::*;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use safejax_derive::SafeParams;

/// Loading and saving through object storage (feature `object-store`).
#[cfg(feature = "object-store")]
pub use safejax_store as store;
