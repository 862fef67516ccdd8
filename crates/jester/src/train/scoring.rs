//! Where the reference's embeddings come from at each step, and what a step costs in FLOPs as
//! executed (docs/ALGORITHM.md §6).
use std::path::PathBuf;

use tch::Device;

use crate::cache::EmbeddingCache;
use crate::config::TrainConfig;
use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::flops;
use crate::input::Drawn;
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

pub(super) fn reference_embeddings(
    reference: &Reference,
    drawn: &Drawn,
    config: &TrainConfig,
    device: Device,
    groups: usize,
) -> Result<Option<PairEmbeddings>> {
    if !config.score.needs_reference() {
        return Ok(None);
    }
    Ok(match reference {
        Reference::None => None,
        Reference::Cache(cache) => Some(cache.lookup(&drawn.keys, device)?),
        Reference::Model(model) => {
            let patch = model.config().image.patch_size;
            Some(super::grouped::embed_grouped(
                model,
                &drawn.tensors,
                patch,
                groups,
                config.scoring_precision(device),
            )?)
        }
    })
}

/// FLOPs of one step as executed (docs/ALGORITHM.md §6): training 3× the forward of the trained batch
/// (each part at its patch size); scoring the learner's forward over B at the scoring patch, the
/// reference's when scored online, and the selection's block products.
pub(super) struct StepCosts {
    pub train: f64,
    pub score: f64,
    pub uniform: f64,
}

impl StepCosts {
    pub fn new(config: &TrainConfig, reference: &Reference) -> Self {
        let online = match reference {
            Reference::Model(r) => Some(r.config()),
            _ => None,
        };
        let parts = flops::per_iteration(config, online);
        // A uniform step of the same model and b: the same terms, with nothing scored.
        let uniform = TrainConfig {
            method: crate::config::TrainMethod::Uniform,
            ..config.clone()
        };
        let uniform = flops::phase_total(&flops::per_iteration(&uniform, None), "train");
        Self {
            train: flops::phase_total(&parts, "train"),
            score: flops::phase_total(&parts, "score"),
            uniform,
        }
    }
}
