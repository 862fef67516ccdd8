//! Joint selection's conditional scores, streamed (docs/ALGORITHM.md §4, Decisions): memory O(B·D + C·B),
//! never a `[B, B]` matrix. `naive.rs` holds the materialised twins these are tested against.
use tch::{Kind, Tensor};

use super::score::{scalars, Scorer};
use crate::error::Result;

/// The state of a joint selection between chunks: the candidates' conditional logits given the
/// examples selected so far.
pub trait ConditionalScores {
    /// `[B]`: for every candidate i, the increase of the sub-batch score from adding i to the
    /// selected set K (gain not applied); −∞ for the selected. With K empty, the unconditional score.
    fn logits(&mut self) -> Result<Tensor>;
    /// Adds `chunk [C]` (int64 indices) to the selected set.
    fn add(&mut self, chunk: &Tensor) -> Result<()>;
}

/// Sigmoid loss: the sub-batch score Σ_{i,j∈K} S[i, j] is a sum over pairs, so adding i raises it by
/// S[i, i] + Σ_{k∈K} (S[k, i] + S[i, k]) exactly. One accumulator per candidate holds the sum; each
/// chosen chunk adds its `[C, B]` row and column blocks.
pub struct SigmoidConditional<'a> {
    scorer: &'a Scorer<'a>,
    diagonal: Tensor,
    accumulated: Tensor,
    selected: Tensor,
}

impl<'a> SigmoidConditional<'a> {
    pub fn new(scorer: &'a Scorer<'a>) -> Self {
        let n = scorer.len();
        let zeros = scorer.zeros(n);
        Self {
            diagonal: scorer.diagonal(),
            selected: zeros.zeros_like().to_kind(Kind::Bool),
            accumulated: zeros,
            scorer,
        }
    }
}

impl ConditionalScores for SigmoidConditional<'_> {
    fn logits(&mut self) -> Result<Tensor> {
        Ok((&self.diagonal + &self.accumulated).masked_fill(&self.selected, f64::NEG_INFINITY))
    }

    fn add(&mut self, chunk: &Tensor) -> Result<()> {
        if !self.scorer.is_constant() {
            self.accumulated += self.scorer.block_sums(chunk);
        }
        let _ = self.selected.index_fill_(0, chunk, 1i64);
        Ok(())
    }
}

/// Softmax loss (paper Alg. 3): a batch's loss is not a sum of pairs, so each chunk recomputes the
/// candidates' conditional scores from the selected set, in `[block, B]` pieces.
///
/// With ℓ_k(K) = ½ (−l_kk + LSE_{j∈K} l_kj) + ½ (−l_kk + LSE_{j∈K} l_jk) and the sub-batch score
/// Σ_{k∈K} ℓ_k(K), adding i raises one model's score by
///
/// ```text
/// ½ (−2 l_ii + logaddexp(l_ii, R_i) + logaddexp(l_ii, C_i))
///   + ½ Σ_{k∈K} (softplus(l_ki − rowLSE_k) + softplus(l_ik − colLSE_k))
/// ```
///
/// with R_i = LSE_{k∈K} l_ik, C_i = LSE_{k∈K} l_ki, rowLSE_k / colLSE_k over K. Each model uses its own
/// parameters (the printed Alg. 3 scores the reference with the learner's; docs/ALGORITHM.md §2).
///
/// **Decision**: with K empty that increase is 0 for every i (a one-example softmax is certain),
/// so the first chunk uses each example's softmax loss within the whole super-batch instead, the
/// same score independent selection uses.
pub struct SoftmaxConditional<'a> {
    scorer: &'a Scorer<'a>,
    block: usize,
    selected: Vec<Tensor>,
    mask: Tensor,
}

impl<'a> SoftmaxConditional<'a> {
    /// `block`: rows per `[block, B]` piece (memory), at least 1.
    pub fn new(scorer: &'a Scorer<'a>, block: usize) -> Self {
        Self {
            mask: scorer.zeros(scorer.len()).to_kind(Kind::Bool),
            scorer,
            block: block.max(1),
            selected: Vec::new(),
        }
    }
}

impl ConditionalScores for SoftmaxConditional<'_> {
    fn logits(&mut self) -> Result<Tensor> {
        let scores = if self.selected.is_empty() {
            softmax_unconditional(self.scorer, self.block)
        } else {
            let selected = Tensor::cat(&self.selected, 0);
            let mut out = self.scorer.zeros(self.scorer.len());
            for &(w, m) in self.scorer.terms() {
                out += softmax_increase(m, &selected, &self.mask, self.block) * w;
            }
            out
        };
        Ok(scores.masked_fill(&self.mask, f64::NEG_INFINITY))
    }

    fn add(&mut self, chunk: &Tensor) -> Result<()> {
        self.selected.push(chunk.shallow_clone());
        let _ = self.mask.index_fill_(0, chunk, 1i64);
        Ok(())
    }
}

/// Σ_models w · ℓ_i(super-batch) `[B]`: each example's softmax loss within the whole super-batch.
pub(crate) fn softmax_unconditional(scorer: &Scorer, block: usize) -> Tensor {
    let mut out = scorer.zeros(scorer.len());
    for &(w, m) in scorer.terms() {
        let (t, _) = scalars(m);
        let diag =
            (m.image() * m.text()).sum_dim_intlist([1i64].as_slice(), false, None::<Kind>) * &t;
        let n = m.len() as i64;
        let (mut row_lse, mut col_lse) = (Vec::new(), Vec::new());
        for start in (0..n).step_by(block) {
            let len = (n - start).min(block as i64);
            let logits = m.image().narrow(0, start, len).matmul(&m.text().tr()) * &t;
            row_lse.push(logits.logsumexp([1i64].as_slice(), false));
            let logits = m.text().narrow(0, start, len).matmul(&m.image().tr()) * &t;
            col_lse.push(logits.logsumexp([1i64].as_slice(), false));
        }
        let per_example = (Tensor::cat(&row_lse, 0) + Tensor::cat(&col_lse, 0)) * 0.5 - diag;
        out += per_example * w;
    }
    out
}

/// One model's increase of the sub-batch softmax score from adding each candidate `[B]`.
fn softmax_increase(
    m: &crate::embeddings::PairEmbeddings,
    selected: &Tensor,
    mask: &Tensor,
    block: usize,
) -> Tensor {
    let (t, _) = scalars(m);
    let n = m.len();
    let outside = mask.logical_not().unsqueeze(0);
    let sum0 = [0i64];
    let lse1 = [1i64];
    let diag = (m.image() * m.text()).sum_dim_intlist(lse1.as_slice(), false, None::<Kind>) * &t;
    let minus_inf = || Tensor::full([n as i64], f64::NEG_INFINITY, (m.kind(), m.device()));
    let (mut into_row, mut into_col) = (minus_inf(), minus_inf());
    let mut others = Tensor::zeros([n as i64], (m.kind(), m.device()));
    let k = selected.size()[0];
    for start in (0..k).step_by(block) {
        let rows = selected.narrow(0, start, (k - start).min(block as i64));
        for (left, right, lse_of_candidate) in [
            // a[c, i] = l_{k_c, i}: image k_c against text i.
            (m.image(), m.text(), &mut into_col),
            // a[c, i] = l_{i, k_c}: image i against text k_c.
            (m.text(), m.image(), &mut into_row),
        ] {
            let a = left.index_select(0, &rows).matmul(&right.tr()) * &t;
            let lse_within = a
                .masked_fill(&outside, f64::NEG_INFINITY)
                .logsumexp(lse1.as_slice(), true);
            others +=
                (&a - lse_within)
                    .softplus()
                    .sum_dim_intlist(sum0.as_slice(), false, None::<Kind>);
            *lse_of_candidate = lse_of_candidate.logaddexp(&a.logsumexp(sum0.as_slice(), false));
        }
    }
    (diag.logaddexp(&into_row) + diag.logaddexp(&into_col) - &diag * 2.0 + others) * 0.5
}
