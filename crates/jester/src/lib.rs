//! jester: JEST (joint example selection, Evans et al. 2024, arXiv:2406.17711) for image-text
//! contrastive learning, on libtorch. The pipeline, module by module (docs/ARCHITECTURE.md):
//!
//! ```text
//! config     TrainConfig: preset or TOML, `key=value` settings, validated once
//! input      shards → Example (decode, preprocess, tokenise) → BatchTensors on the device
//! model      the two towers (ViT at any patch size, text transformer) and their sigmoid loss
//! select     learnability scores (learner − reference) → joint selection, chunk by chunk
//! train      Step: draw B → score → select b → AdamW update; `train` loops it (Collective: many processes)
//! run_dir    a run's folder: config, inputs, tokenizer, checkpoints, metrics, summary, trained model
//! eval, embed, cache   held-out metrics; a trained model's embeddings, cached as a reference
//! experiment recipe → runs → iterations/FLOPs to target → report
//! ```
//! CUDA is used when libtorch sees a GPU ([`default_device`]), the CPU otherwise, with one build.
pub mod cache;
pub mod collective;
pub mod config;
pub mod embed;
pub mod embeddings;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod flops;
pub mod input;
pub mod io;
pub mod lock;
pub mod loss;
pub mod model;
pub mod provenance;
pub mod run_dir;
pub mod select;
pub mod train;

pub use embeddings::PairEmbeddings;
pub use error::{Error, Result};

/// CUDA if libtorch sees a GPU, else the CPU.
pub fn default_device() -> tch::Device {
    tch::Device::cuda_if_available()
}
