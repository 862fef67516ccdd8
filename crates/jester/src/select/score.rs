//! Pair scores S[i, j] from the learner's and the reference's pairwise losses (docs/ALGORITHM.md §3):
//! S = w_L · nll_L + w_R · nll_R, with (w_L, w_R) = (1, −1) for learnability, (1, 0) for the hard
//! learner, (0, −1) for the easy reference and (0, 0) for uniform. Everything here is a view of the
//! one pairwise formula in `crate::loss`, computed in blocks.
use tch::{Kind, Tensor};

use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::loss;

/// Which score a selection maximises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreKind {
    /// learner loss − reference loss (the paper's default).
    #[default]
    Learnability,
    /// learner loss alone.
    HardLearner,
    /// − reference loss.
    EasyReference,
    /// no score: every candidate weighs the same.
    Uniform,
}

impl ScoreKind {
    /// (w_L, w_R): S = w_L · nll_L + w_R · nll_R.
    pub fn weights(self) -> (f64, f64) {
        match self {
            Self::Learnability => (1.0, -1.0),
            Self::HardLearner => (1.0, 0.0),
            Self::EasyReference => (0.0, -1.0),
            Self::Uniform => (0.0, 0.0),
        }
    }
    pub fn needs_reference(self) -> bool {
        self.weights().1 != 0.0
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Learnability => "learnability",
            Self::HardLearner => "hard-learner",
            Self::EasyReference => "easy-reference",
            Self::Uniform => "uniform",
        }
    }
}

impl std::str::FromStr for ScoreKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Learnability,
            Self::HardLearner,
            Self::EasyReference,
            Self::Uniform,
        ]
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| {
            format!(
                "unknown score {s:?}; expected learnability, hard-learner, easy-reference or uniform"
            )
        })
    }
}

/// The models a score reads, each with its weight; models of weight 0 are never evaluated.
pub struct Scorer<'a> {
    terms: Vec<(f64, &'a PairEmbeddings)>,
    len: usize,
    like: &'a PairEmbeddings,
}

impl<'a> Scorer<'a> {
    /// Checks that the models agree on B (and on device and dtype) and that the score has what it
    /// needs.
    pub fn new(
        kind: ScoreKind,
        learner: &'a PairEmbeddings,
        reference: Option<&'a PairEmbeddings>,
    ) -> Result<Self> {
        const OP: &str = "Scorer";
        let (w_learner, w_reference) = kind.weights();
        let mut terms = Vec::new();
        if w_learner != 0.0 {
            terms.push((w_learner, learner));
        }
        if w_reference != 0.0 {
            let reference = reference.ok_or_else(|| {
                Error::invalid(
                    OP,
                    format!("the {} score needs reference embeddings", kind.name()),
                )
            })?;
            terms.push((w_reference, reference));
        }
        if let Some(reference) = reference {
            if reference.len() != learner.len() {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "learner has B = {} examples but reference has {}; both must embed the same super-batch",
                        learner.len(),
                        reference.len()
                    ),
                ));
            }
            if reference.device() != learner.device() || reference.kind() != learner.kind() {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "learner is {:?}/{:?} but reference is {:?}/{:?}",
                        learner.device(),
                        learner.kind(),
                        reference.device(),
                        reference.kind()
                    ),
                ));
            }
        }
        Ok(Self {
            terms,
            len: learner.len(),
            like: learner,
        })
    }

    /// B.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// True when every score is zero (uniform): nothing needs computing.
    pub fn is_constant(&self) -> bool {
        self.terms.is_empty()
    }
    pub(crate) fn terms(&self) -> &[(f64, &'a PairEmbeddings)] {
        &self.terms
    }
    /// A zero vector `[n]` on the embeddings' device and dtype.
    pub(crate) fn zeros(&self, n: usize) -> Tensor {
        Tensor::zeros([n as i64], (self.like.kind(), self.like.device()))
    }

    /// The diagonal S[i, i] `[B]`: each example scored alone. O(B·D).
    pub fn diagonal(&self) -> Tensor {
        let mut out = self.zeros(self.len);
        for &(w, m) in &self.terms {
            let dots =
                (m.image() * m.text()).sum_dim_intlist([1i64].as_slice(), false, None::<Kind>);
            let logits = dots * m.temperature() + m.bias();
            out += logits.neg().softplus() * w;
        }
        out
    }

    /// Rows of S: `[C, B]` with entry (c, j) = S[rows[c], j].
    pub fn rows_block(&self, rows: &Tensor) -> Tensor {
        self.block(rows, loss::sigmoid_nll_rows)
    }

    /// Columns of S, transposed: `[C, B]` with entry (c, i) = S[i, cols[c]].
    pub fn cols_block(&self, cols: &Tensor) -> Tensor {
        self.block(cols, loss::sigmoid_nll_cols)
    }

    fn block(
        &self,
        index: &Tensor,
        nll: fn(&Tensor, &Tensor, &Tensor, &Tensor, &Tensor) -> Tensor,
    ) -> Tensor {
        let c = index.size()[0];
        let mut out = Tensor::zeros([c, self.len as i64], (self.like.kind(), self.like.device()));
        for &(w, m) in &self.terms {
            let (t, b) = scalars(m);
            out += nll(m.image(), m.text(), &t, &b, index) * w;
        }
        out
    }

    /// Σ_c (S[index[c], i] + S[i, index[c]]) for every i, `[B]`: what adding the examples
    /// `index [C]` to a selected set adds to each candidate's conditional score. Streamed: one
    /// `[C, B]` block at a time per model and direction, summed at once, never combined.
    pub fn block_sums(&self, index: &Tensor) -> Tensor {
        let mut out = self.zeros(self.len);
        let dim0 = [0i64];
        for &(w, m) in &self.terms {
            let (t, b) = scalars(m);
            for nll in [loss::sigmoid_nll_rows, loss::sigmoid_nll_cols] {
                let block = nll(m.image(), m.text(), &t, &b, index);
                out += block.sum_dim_intlist(dim0.as_slice(), false, None::<Kind>) * w;
            }
        }
        out
    }

    /// The whole `[B, B]` matrix S. For the naive twin and tests only: 4·B² bytes.
    pub fn matrix(&self) -> Tensor {
        let n = self.len as i64;
        let mut out = Tensor::zeros([n, n], (self.like.kind(), self.like.device()));
        for &(w, m) in &self.terms {
            let (t, b) = scalars(m);
            out += loss::sigmoid_nll_matrix(m.image(), m.text(), &t, &b) * w;
        }
        out
    }
}

/// A model's t and b as 0-dim tensors of its dtype and device.
pub(crate) fn scalars(m: &PairEmbeddings) -> (Tensor, Tensor) {
    let options = (m.kind(), m.device());
    (
        Tensor::scalar_tensor(m.temperature(), options),
        Tensor::scalar_tensor(m.bias(), options),
    )
}
