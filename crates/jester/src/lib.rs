//! jester: JEST (joint example selection, Evans et al. 2024, arXiv:2406.17711) for image-text
//! contrastive learning, on libtorch.
//!
//! ```text
//! embeddings of a super-batch (learner, frozen reference)
//!   → loss: pairwise sigmoid NLL blocks            (loss)
//!   → scores: learnability = nll_learner − nll_ref  (select::Scorer)
//!   → joint selection, chunk by chunk               (select::select)
//!   → the sub-batch the learner trains on
//! ```
//! CUDA is used when libtorch sees a GPU ([`default_device`]), the CPU otherwise, with one build.
pub mod embed;
pub mod embeddings;
pub mod error;
pub mod eval;
pub mod flops;
pub mod io;
pub mod lock;
pub mod loss;
pub mod model;
pub mod provenance;
pub mod select;
pub mod train;

pub use embeddings::PairEmbeddings;
pub use error::{Error, Result};

/// CUDA if libtorch sees a GPU, else the CPU.
pub fn default_device() -> tch::Device {
    tch::Device::cuda_if_available()
}
