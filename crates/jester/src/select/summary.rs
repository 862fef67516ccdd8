//! Scores of a whole (sub-)batch, for reports: the mean per example of a score over the batch
//! itself, e.g. mean learnability = (L_learner(K) − L_reference(K)) in batch-loss units.
use tch::{Kind, Tensor};

use super::conditional::softmax_unconditional;
use super::score::{ScoreKind, Scorer};
use crate::embeddings::PairEmbeddings;
use crate::error::Result;
use crate::loss::LossKind;

/// The batch's score per example: Σ_{i,j∈K} S[i, j] / |K| (sigmoid) or Σ_{k∈K} S-weighted ℓ_k(K)
/// / |K| (softmax), for K = `indices` (`None`: the whole super-batch). Streamed in `[block, |K|]`
/// pieces; O(|K|²·D) arithmetic.
pub fn mean_score(
    kind: ScoreKind,
    loss: LossKind,
    learner: &PairEmbeddings,
    reference: Option<&PairEmbeddings>,
    indices: Option<&Tensor>,
    block: usize,
) -> Result<f64> {
    let subset = |m: &PairEmbeddings| match indices {
        Some(i) => m.select_rows(i),
        None => m.select_rows(&Tensor::arange(m.len() as i64, (Kind::Int64, m.device()))),
    };
    let learner = subset(learner);
    let reference = reference.map(subset);
    let scorer = Scorer::new(kind, &learner, reference.as_ref())?;
    let n = scorer.len() as i64;
    let block = block.max(1) as i64;
    let total = match loss {
        LossKind::Sigmoid => (0..n)
            .step_by(block as usize)
            .map(|start| {
                let rows = Tensor::arange_start(
                    start,
                    (start + block).min(n),
                    (Kind::Int64, learner.device()),
                );
                scorer.rows_block(&rows).sum(Kind::Double).double_value(&[])
            })
            .sum::<f64>(),
        LossKind::Softmax => softmax_unconditional(&scorer, block as usize)
            .sum(Kind::Double)
            .double_value(&[]),
    };
    Ok(total / n as f64)
}
