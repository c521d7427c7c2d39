//! Checkpoints in the formats that came before safetensors, read without executing anything:
//! Flax msgpack ([`msgpack`]), Python pickles of parameter dicts ([`pickle`]), and numpy `npz`
//! archives of Haiku and Objax parameters ([`npz`]). Each reader builds a [`Tree`](crate::Tree)
//! or a [`VarCollection`](crate::VarCollection), which the tree API saves as safetensors.

#[cfg(feature = "msgpack")]
pub mod msgpack;
#[cfg(feature = "npz")]
pub mod npz;
#[cfg(feature = "pickle")]
pub mod pickle;
