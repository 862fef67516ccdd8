//! Data for jester, with no tensor backend: WebDataset shards (reading, writing, decoding), the
//! built-in benchmarks with known noise, and the clustered synthetic embeddings that
//! `jester select` and the selection benchmark run on.
pub mod atomic;
pub mod benchmark;
mod compression;
pub mod decode;
pub mod error;
pub mod loader;
pub mod sample;
pub mod shard_reader;
pub mod shard_writer;
pub mod shards;
pub mod share;
pub mod skip;
mod svg;
pub mod synthetic_embeddings;
mod text_prefix;
pub mod tokenizer;
pub mod tools;
pub mod transform;

pub use error::{Error, Result};
/// The image crate jester-data decodes with (re-exported so users name the same version).
pub use image;
pub use loader::{Loader, LoaderCursor, LoaderOptions};
pub use sample::RawSample;
pub use shard_writer::ShardWriter;
pub use shards::expand_shards;
pub use share::Share;
pub use skip::{SkipCounts, SkipReason};
