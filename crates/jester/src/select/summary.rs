//! Scores of whole batches, for reports. The score of a batch K is its mean per example within K:
//! Σ_{i,j∈K} S[i, j] / |K| for the sigmoid loss (for learnability: L_learner(K) − L_reference(K) in
//! batch-loss units), and the mean of the S-weighted per-example softmax losses within K. Because a
//! batch's score grows with its size (every extra negative adds a term), a sub-batch is compared
//! with what a *uniform* sub-batch of the same size would score, not with the super-batch itself.
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::conditional::softmax_unconditional;
use super::score::{ScoreKind, Scorer};
use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::loss::LossKind;

/// The score per example of the batch `indices [n]` of the super-batch. Streamed in `[block, n]`
/// pieces; O(n²·D) arithmetic.
pub fn batch_score(
    kind: ScoreKind,
    loss: LossKind,
    learner: &PairEmbeddings,
    reference: Option<&PairEmbeddings>,
    indices: &Tensor,
    block: usize,
) -> Result<f64> {
    let learner = learner.select_rows(indices);
    let reference = reference.map(|r| r.select_rows(indices));
    let scorer = Scorer::new(kind, &learner, reference.as_ref())?;
    let (total, _) = totals(&scorer, loss, block);
    Ok(total / scorer.len() as f64)
}

/// The expected [`batch_score`] of a uniformly drawn batch of `batch` examples of the super-batch:
/// exact for the sigmoid loss (from the matrix's trace and total, E = (tr + (b−1)/(B−1)·(Σ − tr))/B),
/// the mean over 8 seeded uniform draws for the softmax loss.
pub fn uniform_batch_score(
    kind: ScoreKind,
    loss: LossKind,
    learner: &PairEmbeddings,
    reference: Option<&PairEmbeddings>,
    batch: usize,
    block: usize,
) -> Result<f64> {
    let n = learner.len();
    if batch == 0 || batch > n {
        return Err(Error::invalid(
            "uniform_batch_score",
            format!("batch {batch} must be in 1..={n}"),
        ));
    }
    match loss {
        LossKind::Sigmoid => {
            let scorer = Scorer::new(kind, learner, reference)?;
            let (total, trace) = totals(&scorer, loss, block);
            let off = if n > 1 {
                (batch - 1) as f64 / (n - 1) as f64 * (total - trace)
            } else {
                0.0
            };
            Ok((trace + off) / n as f64)
        }
        LossKind::Softmax => {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let draws = 8;
            let mut sum = 0.0;
            for _ in 0..draws {
                let picked: Vec<i64> = sample(&mut rng, n, batch)
                    .into_iter()
                    .map(|i| i as i64)
                    .collect();
                let index = Tensor::from_slice(&picked).to_device(learner.device());
                sum += batch_score(kind, loss, learner, reference, &index, block)?;
            }
            Ok(sum / draws as f64)
        }
    }
}

/// (Σ of the batch's per-example scores, Σ of the diagonal S[i, i]) — the diagonal only for sigmoid.
fn totals(scorer: &Scorer, loss: LossKind, block: usize) -> (f64, f64) {
    let n = scorer.len() as i64;
    let block = block.max(1) as i64;
    let device = scorer.zeros(0).device();
    let sum = |x: Tensor| x.sum(Kind::Double).double_value(&[]);
    match loss {
        LossKind::Sigmoid => {
            let total = (0..n)
                .step_by(block as usize)
                .map(|start| {
                    let rows =
                        Tensor::arange_start(start, (start + block).min(n), (Kind::Int64, device));
                    sum(scorer.rows_block(&rows))
                })
                .sum();
            (total, sum(scorer.diagonal()))
        }
        LossKind::Softmax => (sum(softmax_unconditional(scorer, block as usize)), 0.0),
    }
}
