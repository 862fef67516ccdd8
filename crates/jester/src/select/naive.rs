//! The naive twins of the streamed samplers: the paper's way, with materialised matrices. They exist
//! to be tested against (and timed beside); never use them on a real super-batch (4·B² bytes).
use tch::{Kind, Tensor};

use super::conditional::{softmax_unconditional, ConditionalScores};
use super::score::{scalars, Scorer};
use crate::error::Result;
use crate::loss::softmax_per_example;

/// Paper Alg. 1 literally, on the `[B, B]` score matrix S: logits = diag(S) + S·m + Sᵀ·m with m the
/// 0/1 indicator of the selected set; selected entries −∞ (the paper subtracts 1e8).
pub struct NaiveSigmoid {
    matrix: Tensor,
    selected: Tensor,
}

impl NaiveSigmoid {
    pub fn new(scorer: &Scorer) -> Self {
        let matrix = scorer.matrix();
        Self {
            selected: matrix.zeros_like().select(0, 0),
            matrix,
        }
    }
}

impl ConditionalScores for NaiveSigmoid {
    fn logits(&mut self) -> Result<Tensor> {
        let logits = self.matrix.diagonal(0, 0, 1)
            + self.matrix.mv(&self.selected)
            + self.matrix.tr().mv(&self.selected);
        Ok(logits.masked_fill(&self.selected.to_kind(Kind::Bool), f64::NEG_INFINITY))
    }

    fn add(&mut self, chunk: &Tensor) -> Result<()> {
        let _ = self.selected.index_fill_(0, chunk, 1.0);
        Ok(())
    }
}

/// Softmax twin by brute force: for each candidate i, the score of K ∪ {i} minus the score of K,
/// each computed with [`softmax_per_example`] on the sub-batch itself. O(B · |K|² · D) per chunk.
pub struct NaiveSoftmax<'a> {
    scorer: &'a Scorer<'a>,
    selected: Vec<i64>,
}

impl<'a> NaiveSoftmax<'a> {
    pub fn new(scorer: &'a Scorer<'a>) -> Self {
        Self {
            scorer,
            selected: Vec::new(),
        }
    }

    /// Σ_models w · Σ_{k∈set} ℓ_k(set).
    fn score(&self, set: &[i64]) -> f64 {
        let index = Tensor::from_slice(set);
        self.scorer
            .terms()
            .iter()
            .map(|&(w, m)| {
                let sub = m.select_rows(&index);
                let (t, _) = scalars(m);
                w * softmax_per_example(sub.image(), sub.text(), &t)
                    .sum(Kind::Double)
                    .double_value(&[])
            })
            .sum()
    }
}

impl ConditionalScores for NaiveSoftmax<'_> {
    fn logits(&mut self) -> Result<Tensor> {
        let n = self.scorer.len();
        if self.selected.is_empty() {
            return Ok(softmax_unconditional(self.scorer, n));
        }
        let base = self.score(&self.selected);
        let logits: Vec<f64> = (0..n as i64)
            .map(|i| {
                if self.selected.contains(&i) {
                    return f64::NEG_INFINITY;
                }
                let mut with_i = self.selected.clone();
                with_i.push(i);
                self.score(&with_i) - base
            })
            .collect();
        let like = self.scorer.zeros(0);
        Ok(Tensor::from_slice(&logits)
            .to_kind(like.kind())
            .to_device(like.device()))
    }

    fn add(&mut self, chunk: &Tensor) -> Result<()> {
        self.selected
            .extend(Vec::<i64>::try_from(&chunk.to_device(tch::Device::Cpu))?);
        Ok(())
    }
}
