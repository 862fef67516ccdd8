//! Training (docs/ALGORITHM.md §§4–7, docs/ARCHITECTURE.md): one [`Step`] for every method, and
//! the [`train`] loop around it.
//!
//! ```text
//! Loader (shards → Example) ─► super-batch of B ─► learner embeddings (no grad, scoring patch)
//!   + reference embeddings (cache by key, or online) ─► select b ─► AdamW step on the b
//! ```
mod driver;
mod fused;
mod grouped;
pub mod optim;
mod options;
mod order;
mod pool;
mod ranks;
mod scoring;
mod setup;
mod step;

pub use crate::collective::{Collective, SingleProcess};
pub use driver::{train, Observer, OpenEvaluator, Seams, Silent, Start, TrainOptions};
pub use step::{LossHook, Resume, Step, StepInputs, StepMetrics};
