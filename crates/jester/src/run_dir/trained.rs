//! Loading a trained model from its run folder, for evaluation, embedding, or as a reference
//! scored online — without the training code.
use std::path::{Path, PathBuf};

use jester_data::tokenizer::TextTokenizer;

use super::checkpoint::{latest_checkpoint, read_state};
use super::dir::RunDir;
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::model::TwoTower;

/// Whether a run that has not finished (no final `model.safetensors`) may be used through its
/// newest checkpoint. Deriving a reference cache from a half-trained model by accident would
/// silently weaken every run that uses it, so callers refuse unless the user asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unfinished {
    #[default]
    Refuse,
    /// Use the newest checkpoint (logged as a warning).
    Allow,
}

/// A trained model, ready to embed or evaluate: its config, tokenizer and weights (the final
/// weights when the run finished, else — when allowed — its newest checkpoint).
pub struct TrainedModel {
    pub config: TrainConfig,
    pub tokenizer: TextTokenizer,
    pub model: TwoTower,
    /// The run folder.
    pub run: PathBuf,
    pub weights: PathBuf,
    /// The checkpoint's step when the weights are not the final ones.
    pub checkpoint_step: Option<usize>,
}

/// Loads the model of the run folder `out`.
pub fn load_trained(
    out: &Path,
    device: tch::Device,
    unfinished: Unfinished,
) -> Result<TrainedModel> {
    let dir = RunDir::new(out);
    let config = dir.config()?;
    let tokenizer = dir.tokenizer()?;
    let weights = out.join("model.safetensors");
    let (weights, checkpoint_step) = if weights.exists() {
        (weights, None)
    } else if let Some(checkpoint) = latest_checkpoint(out)? {
        let step = read_state(&checkpoint)?.step;
        if unfinished == Unfinished::Refuse {
            return Err(Error::Input {
                path: out.to_owned(),
                what: format!(
                    "the run is unfinished: no final model.safetensors, newest checkpoint at step \
                     {step} of {}; finish it (`jester train --resume {}`) or pass \
                     --allow-unfinished to use that checkpoint",
                    config.steps,
                    out.display()
                ),
            });
        }
        tracing::warn!(
            "{} is unfinished: using its checkpoint at step {step} of {} ({})",
            out.display(),
            config.steps,
            checkpoint.display()
        );
        (checkpoint.join("model.safetensors"), Some(step))
    } else {
        return Err(Error::Input {
            path: out.to_owned(),
            what: "the run has no weights yet (no model.safetensors and no checkpoint)".into(),
        });
    };
    let mut model = TwoTower::load(&config.model, &weights, device)?;
    model.set_precision(config.precision);
    Ok(TrainedModel {
        config,
        tokenizer,
        model,
        run: out.to_owned(),
        weights,
        checkpoint_step,
    })
}
