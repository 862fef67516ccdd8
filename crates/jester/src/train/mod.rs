//! Training (docs/ALGORITHM.md §§4–7): one loop for every method.
//!
//! ```text
//! Loader (shards → Example) ─► super-batch of B ─► learner embeddings (no grad, scoring patch)
//!   + reference embeddings (cache by key, or online) ─► select b ─► AdamW step on the b
//! ```
pub mod batch;
pub mod checkpoint;
pub mod config;
mod folder;
pub mod inputs;
pub mod optim;
mod order;
pub mod reference;
pub mod run;
mod scoring;
mod setup;
mod window;

pub use checkpoint::{load_trained, TrainedModel, Unfinished};
pub use config::{DataConfig, FlexiConfig, OptimConfig, TrainConfig, TrainMethod};
pub use inputs::RunInputs;
pub use reference::{EmbeddingCache, EmbeddingWriter};
pub use run::{train, EvalSpec, Observer, Silent, Start, TrainOptions, TrainSummary};
pub use scoring::ReferenceSource;
