//! Data for jester, with no tensor backend.
//!
//! For now: the clustered synthetic embeddings that `jester select` and the selection benchmark run
//! on ([`synthetic_embeddings`]), with the safetensors layout `jester select` reads.
pub mod error;
pub mod synthetic_embeddings;

pub use error::{Error, Result};
