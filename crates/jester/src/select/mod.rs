//! JEST's selection engine (docs/ALGORITHM.md §§3–4): score a super-batch with the learner and the reference,
//! then keep a sub-batch of b of its B examples, jointly (chunk by chunk, each chunk conditioned on
//! the ones before), independently (all b at once from each example's own score) or uniformly.
//!
//! ```text
//! PairEmbeddings (learner, reference) ─► Scorer (S = w_L·nll_L + w_R·nll_R)
//!   ─► ConditionalScores (streamed: Sigmoid/SoftmaxConditional; twins in `naive`)
//!   ─► draw_chunks (Gumbel-top-k per chunk) ─► Selection
//! ```
//! Everything runs on tch tensors, on the embeddings' device; the Gumbel noise comes from a seeded
//! host stream so a seed gives the same selection everywhere.
mod conditional;
mod gumbel;
pub mod naive;
mod score;
mod sizing;
mod summary;

use std::ops::Range;

use tch::{Device, Kind, Tensor};

pub use conditional::{ConditionalScores, SigmoidConditional, SoftmaxConditional};
pub use score::{ScoreKind, Scorer};
pub use sizing::{batch_from_filter_ratio, super_batch_for, SelectionSize};
pub use summary::{batch_score, uniform_batch_score};

use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::loss::LossKind;
use gumbel::{gumbel_top_k, gumbel_top_k_grouped, GumbelNoise};

/// How the sub-batch is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// N chunks, each drawn from scores conditioned on the chunks before (paper Alg. 1).
    #[default]
    Joint,
    /// All b at once from each example's own score (the paper's ablation; = joint with N = 1).
    Independent,
    /// b of B uniformly at random, no score.
    Uniform,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Self::Joint => "joint",
            Self::Independent => "independent",
            Self::Uniform => "uniform",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Joint, Self::Independent, Self::Uniform]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown method {s:?}; expected joint, independent or uniform"))
    }
}

/// Everything a selection needs besides the embeddings and b.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct SelectConfig {
    pub method: Method,
    pub score: ScoreKind,
    pub loss: LossKind,
    /// N, chunks of joint selection (paper: 16). Ignored by the other methods.
    pub chunks: usize,
    /// Scores are multiplied by the gain before sampling (paper: 100).
    pub gain: f64,
    pub seed: u64,
}

impl Default for SelectConfig {
    fn default() -> Self {
        Self {
            method: Method::Joint,
            score: ScoreKind::Learnability,
            loss: LossKind::Sigmoid,
            chunks: 16,
            gain: 100.0,
            seed: 0,
        }
    }
}

impl SelectConfig {
    /// The chunks actually drawn: N for joint selection, 1 for the others.
    pub fn chunks_drawn(&self) -> usize {
        match self.method {
            Method::Joint => self.chunks,
            Method::Independent | Method::Uniform => 1,
        }
    }
}

/// The selected examples: `indices` into the super-batch in selection order, and the positions in
/// `indices` that each chunk filled.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Selection {
    pub indices: Vec<i64>,
    pub chunks: Vec<Range<usize>>,
}

impl Selection {
    /// The indices as an int64 tensor `[b]` on `device`.
    pub fn index_tensor(&self, device: Device) -> Tensor {
        Tensor::from_slice(&self.indices).to_device(device)
    }
}

/// Selects `batch` of the B examples that `learner` (and `reference`, where the score needs it)
/// embed. Memory O(B·D + C·B) whatever the method.
pub fn select(
    learner: &PairEmbeddings,
    reference: Option<&PairEmbeddings>,
    batch: usize,
    config: &SelectConfig,
) -> Result<Selection> {
    select_grouped(learner, reference, batch, config, 1)
}

/// [`select`] with a quota per group: the super-batch's rows are `groups` equal consecutive groups
/// (the ranks of a data-parallel step, in rank order), and every chunk takes the same number of
/// examples from each group, each group's share drawn from the scores conditioned on everything
/// chosen before in every group. Each group keeps batch / groups examples of its own; one group is
/// exactly [`select`]. B and b must be multiples of `groups`.
pub fn select_grouped(
    learner: &PairEmbeddings,
    reference: Option<&PairEmbeddings>,
    batch: usize,
    config: &SelectConfig,
    groups: usize,
) -> Result<Selection> {
    let (scorer, sizes) = prepare(learner, reference, batch, config, groups)?;
    let block = sizes.iter().copied().max().unwrap_or(1);
    let mut scores: Box<dyn ConditionalScores> = match config.loss {
        LossKind::Sigmoid => Box::new(SigmoidConditional::new(&scorer)),
        LossKind::Softmax => Box::new(SoftmaxConditional::new(&scorer, block)),
    };
    let mut noise = GumbelNoise::new(config.seed);
    let draw = |logits: &Tensor, k: usize| {
        let gumbel = noise.sample(logits.size()[0] as usize, learner.kind(), learner.device());
        if groups == 1 {
            gumbel_top_k(logits, &gumbel, config.gain, k)
        } else {
            gumbel_top_k_grouped(logits, &gumbel, config.gain, k / groups, groups)
        }
    };
    draw_with(scores.as_mut(), &sizes, draw)
}

/// [`select`] done the naive way (materialised `[B, B]` matrices), for tests and benchmarks.
pub fn select_naive(
    learner: &PairEmbeddings,
    reference: Option<&PairEmbeddings>,
    batch: usize,
    config: &SelectConfig,
) -> Result<Selection> {
    let (scorer, sizes) = prepare(learner, reference, batch, config, 1)?;
    let mut scores: Box<dyn ConditionalScores> = match config.loss {
        LossKind::Sigmoid => Box::new(naive::NaiveSigmoid::new(&scorer)),
        LossKind::Softmax => Box::new(naive::NaiveSoftmax::new(&scorer)),
    };
    draw_chunks(
        scores.as_mut(),
        &sizes,
        config.gain,
        config.seed,
        learner.kind(),
        learner.device(),
    )
}

/// The scorer the method uses and the chunk sizes it draws.
fn prepare<'a>(
    learner: &'a PairEmbeddings,
    reference: Option<&'a PairEmbeddings>,
    batch: usize,
    config: &SelectConfig,
    groups: usize,
) -> Result<(Scorer<'a>, Vec<usize>)> {
    if !config.gain.is_finite() || config.gain < 0.0 {
        return Err(Error::invalid(
            "select",
            format!("gain {} must be finite and ≥ 0", config.gain),
        ));
    }
    let score = match config.method {
        Method::Uniform => ScoreKind::Uniform,
        Method::Joint | Method::Independent => config.score,
    };
    let chunks = config.chunks_drawn();
    let big = learner.len();
    if groups == 0 || !big.is_multiple_of(groups) || !batch.is_multiple_of(groups) {
        return Err(Error::invalid(
            "select",
            format!(
                "{groups} groups must divide the super-batch B = {big} and the batch b = {batch}"
            ),
        ));
    }
    // Each group's share is sized as a selection of its own; a chunk takes that from every group.
    let size = SelectionSize::new(big / groups, batch / groups, chunks)?;
    let sizes = size.chunk_sizes().into_iter().map(|k| k * groups).collect();
    Ok((Scorer::new(score, learner, reference)?, sizes))
}

/// Draws the chunks `sizes` one after another by Gumbel-top-k on `gain ×` the conditional logits,
/// feeding each chunk back into `scores`. Shared by the streamed path and the naive twins, so that
/// the same seed gives both the same noise.
pub fn draw_chunks(
    scores: &mut dyn ConditionalScores,
    sizes: &[usize],
    gain: f64,
    seed: u64,
    kind: Kind,
    device: Device,
) -> Result<Selection> {
    let mut noise = GumbelNoise::new(seed);
    draw_with(scores, sizes, |logits, k| {
        let gumbel = noise.sample(logits.size()[0] as usize, kind, device);
        gumbel_top_k(logits, &gumbel, gain, k)
    })
}

/// Draws the chunks `sizes` one after another with `draw` (conditional logits, k → the chunk's
/// indices), feeding each chunk back into `scores`.
fn draw_with(
    scores: &mut dyn ConditionalScores,
    sizes: &[usize],
    mut draw: impl FnMut(&Tensor, usize) -> Tensor,
) -> Result<Selection> {
    let mut indices = Vec::with_capacity(sizes.iter().sum());
    let mut chunks = Vec::with_capacity(sizes.len());
    for (n, &k) in sizes.iter().enumerate() {
        let logits = scores.logits()?;
        let chunk = draw(&logits, k);
        let start = indices.len();
        indices.extend(Vec::<i64>::try_from(&chunk.to_device(Device::Cpu))?);
        chunks.push(start..indices.len());
        if n + 1 < sizes.len() {
            scores.add(&chunk)?;
        }
    }
    Ok(Selection { indices, chunks })
}
