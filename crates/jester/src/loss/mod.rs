//! Contrastive losses (docs/ALGORITHM.md §2). The sigmoid pairwise NLL matrix is the single source: batch loss,
//! per-example loss, learnability and JEST's conditional scores are all sums over it, or over its
//! streamed `[C, B]` blocks. The softmax (InfoNCE) loss is the alternative.
mod distill;
mod sigmoid;
mod softmax;

pub use distill::{distill_flops, distill_loss};
pub use sigmoid::{
    sigmoid_batch_loss, sigmoid_logits, sigmoid_nll_block, sigmoid_nll_cols, sigmoid_nll_matrix,
    sigmoid_nll_rows, sigmoid_per_example,
};
pub use softmax::{softmax_batch_loss, softmax_per_example};

/// Which contrastive loss a model is trained and scored with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// SigLIP: independent binary terms per pair; exact pair decomposition (default).
    #[default]
    Sigmoid,
    /// CLIP / InfoNCE: a softmax over each row and column of the batch.
    Softmax,
}

impl std::str::FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sigmoid" => Ok(Self::Sigmoid),
            "softmax" => Ok(Self::Softmax),
            _ => Err(format!("unknown loss {s:?}; expected sigmoid or softmax")),
        }
    }
}
