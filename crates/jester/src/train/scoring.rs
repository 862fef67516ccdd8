//! Where the reference's embeddings come from at each step, and what a step costs in FLOPs as
//! executed (docs/ALGORITHM.md §6).
use std::path::PathBuf;

use tch::Device;

use crate::cache::EmbeddingCache;
use crate::config::TrainConfig;
use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::flops;
use crate::model::BatchTensors;
use crate::model::TwoTower;
use crate::run_dir::{load_trained, ReferenceSource, Unfinished};

pub(super) enum Reference {
    None,
    Cache(EmbeddingCache),
    Model(Box<TwoTower>),
}

pub(super) fn open_reference(
    source: &ReferenceSource,
    unfinished: Unfinished,
    shards: &[PathBuf],
    config: &TrainConfig,
    device: Device,
) -> Result<Reference> {
    Ok(match source {
        ReferenceSource::None => Reference::None,
        ReferenceSource::Cache(path) => {
            let cache = EmbeddingCache::read(path)?;
            cache.check_shards(shards)?;
            Reference::Cache(cache)
        }
        ReferenceSource::Model(dir) => {
            let trained = load_trained(dir, device, unfinished)?;
            let theirs = &trained.config.model;
            if theirs.image.image_size != config.model.image.image_size
                || theirs.text.context_length != config.model.text.context_length
            {
                return Err(Error::Input {
                    path: dir.clone(),
                    what: format!(
                        "the reference reads {}-px images and {} tokens, the learner {}-px and {}; \
                         to score online both must read the same inputs (or cache its embeddings \
                         with `jester embed`)",
                        theirs.image.image_size,
                        theirs.text.context_length,
                        config.model.image.image_size,
                        config.model.text.context_length
                    ),
                });
            }
            Reference::Model(Box::new(trained.model))
        }
    })
}

/// The reference's embeddings of this rank's `keys` (with their `tensors`), in `groups` parts:
/// looked up in the cache, or the online model's forward (`None` without a reference).
pub(super) fn reference_embeddings(
    reference: &Reference,
    keys: &[String],
    tensors: &BatchTensors,
    config: &TrainConfig,
    device: Device,
    groups: usize,
) -> Result<Option<PairEmbeddings>> {
    Ok(match reference {
        Reference::None => None,
        Reference::Cache(cache) => Some(cache.lookup(keys, device)?),
        Reference::Model(model) => {
            let patch = model.config().image.patch_size;
            Some(super::grouped::embed_grouped(
                model,
                tensors,
                patch,
                groups,
                config.scoring_precision(device),
            )?)
        }
    })
}

/// FLOPs of one step's parts (docs/ALGORITHM.md §6), from [`flops::per_iteration`]: training 3×
/// the forward of the trained batch (each part at its patch size); scoring the learner's forward
/// over B at the scoring patch (when the score reads the learner), an online reference's forward,
/// and the selection's block products. A step adds the scoring terms of the forwards it ran.
pub(super) struct StepCosts {
    pub train: f64,
    /// The learner's scoring forward over B.
    learner: f64,
    /// An online reference's forward over B (0 with a cache).
    reference: f64,
    selection: f64,
    /// A uniform step of the same model and b.
    pub uniform: f64,
}

impl StepCosts {
    pub fn new(config: &TrainConfig, reference: &Reference) -> Self {
        let online = match reference {
            Reference::Model(r) => Some(r.config()),
            _ => None,
        };
        let parts = flops::per_iteration(config, online);
        let score = |tower: &str| -> f64 {
            parts
                .iter()
                .filter(|p| p.phase == "score")
                .filter(|p| match tower {
                    "learner" => p.tower == "image" || p.tower == "text",
                    other => p.tower == other,
                })
                .map(|p| p.flops)
                .sum()
        };
        // A uniform step of the same model and b: the same terms, with nothing scored or
        // distilled.
        let uniform = TrainConfig {
            method: crate::config::TrainMethod::Uniform,
            distill: 0.0,
            ..config.clone()
        };
        let uniform = flops::phase_total(&flops::per_iteration(&uniform, None), "train");
        Self {
            train: flops::phase_total(&parts, "train"),
            learner: score("learner"),
            reference: score("reference"),
            selection: score("selection"),
            uniform,
        }
    }

    /// The scoring FLOPs of a step whose learner forward ran or not, and whose reference came
    /// from an online forward or not (a cache costs nothing), selection included.
    pub fn scoring(&self, learner: bool, online_reference: bool) -> f64 {
        let ran = |yes: bool, flops: f64| if yes { flops } else { 0.0 };
        ran(learner, self.learner) + ran(online_reference, self.reference) + self.selection
    }

    /// A scored step's FLOPs as [`flops::per_iteration`] predicts them (what [`Self::scoring`]
    /// adds up for the forwards the score needs).
    pub fn score(&self) -> f64 {
        self.learner + self.reference + self.selection
    }
}
