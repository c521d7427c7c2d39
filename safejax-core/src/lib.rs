//! The runtime of [safejax](https://docs.rs/safejax): neural-network parameters in safetensors,
//! named the way Flax, Haiku and Objax name them.
//!
//! Most users depend on the `safejax` crate, which re-exports everything here together with
//! `#[derive(SafeParams)]`. This crate holds:
//!
//! - [`Element`] and the tensor leaves: ndarray owned arrays of every dimensionality, plain
//!   scalars, and the dtype-erased [`Tensor`];
//! - [`KeyPath`] and [`Style`]: keys as structured paths, rendered and parsed in each framework's
//!   convention;
//! - [`SafeParams`], the trait the derive implements, with impls for containers;
//! - [`Saver`] and [`Loader`]: bytes, files (atomic saves that keep the replaced file's mode),
//!   memory maps, metadata, collections split over files, one-copy loads, and strict loads that
//!   report every problem at once ([`LoadReport`]);
//! - [`shard`]: sharded checkpoints, several files and a Hugging Face index
//!   (`model.safetensors.index.json`), which every file load and save accepts in place of a file;
//! - [`SafeView`]: values that borrow their tensors (`ndarray::ArrayView`) from bytes or a
//!   [`MappedFile`], loaded at the cost of the header;
//! - the dynamic tree API mirroring Python safejax: [`flax`], [`haiku`], [`objax`];
//! - [`fetched`]: a file read in pieces (its header, then the byte ranges a load reads), the
//!   hook through which object storage loads;
//! - [`hf`]: Hugging Face `transformers`' Flax checkpoints, typed and as trees.
//!
//! ```
//! use ndarray::array;
//! use safejax_core::{Loader, Saver, Style, Tree, Tensor, flax};
//!
//! let mut dense = Tree::new();
//! dense.insert("kernel", Tensor::from_array(&array![[0.5f32, -1.0]]));
//! let mut params = Tree::new();
//! params.insert("Dense_0", dense);
//! let bytes = flax::serialize(&params, None)?;
//! assert_eq!(flax::deserialize(&bytes)?, params);
//! # Ok::<(), safejax_core::Error>(())
//! ```
#![deny(missing_docs)]

mod atomic;
pub mod check;
pub mod dtype;
pub mod error;
pub mod fetched;
pub mod format;
pub mod hf;
pub mod io;
pub mod key;
#[cfg(any(feature = "msgpack", feature = "pickle", feature = "npz"))]
pub mod legacy;
pub mod params;
pub mod reader;
pub mod schema;
pub mod shard;
mod source;
pub mod style;
pub mod tensor;
pub mod tree;
pub mod view;

#[doc(hidden)]
pub mod __private;

pub use dtype::{DtypePolicy, Element};
pub use error::{
    DtypeMismatch, Error, ExpectedShape, KeyError, KeyProblem, LeafProblem, LoadReport, Result,
    ShapeMismatch, ShardProblem,
};
pub use format::Metadata;
pub use io::{Input, Loaded, Loader, Part, Saver};
pub use key::{FieldInfo, HaikuSep, KeyPath, NodeInfo, Numbering, Segment, SegmentName};
pub use params::{SafeParams, Visitor, VisitorMut};
pub use reader::{PartSpec, Presence, Reader};
pub use safetensors::Dtype;
pub use safetensors::tensor::TensorView;
pub use shard::Sharded;
pub use style::{ParsedKey, ParsedSegment, Style};
pub use tensor::{Leaf, LeafMut, Tensor};
pub use tree::{Node, Tree, Var, VarCollection, VarKind, flax, haiku, objax};
pub use view::{MappedFile, SafeView};

pub use half;
pub use ndarray;
