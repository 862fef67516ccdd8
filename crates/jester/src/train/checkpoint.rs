//! Checkpoints that lose nothing (issue: atomic writes, exact resume). A run folder:
//!
//! ```text
//! OUT/config.json                 the resolved TrainConfig
//! OUT/tokenizer.json              the tokenizer the text tower reads
//! OUT/metrics.jsonl               one JSON line per logged step
//! OUT/checkpoints/step-000000500/ model.safetensors, optimizer.safetensors, state.json
//! OUT/checkpoints/latest          the name of the newest complete checkpoint
//! OUT/model.safetensors           the final weights
//! OUT/summary.json                the run's totals
//! ```
//! A checkpoint is written into a temporary folder, synced, and renamed into place; only then is
//! `latest` replaced (temporary file + rename). A run killed at any instant leaves the previous
//! checkpoint intact and `latest` naming a complete one.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use jester_data::tokenizer::TextTokenizer;
use jester_data::LoaderCursor;

use super::config::TrainConfig;
use super::optim::AdamW;
use crate::error::{Error, Result};
use crate::model::TwoTower;

/// Everything besides weights and moments that a resumed run needs to continue exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Steps completed.
    pub step: usize,
    /// The pool loader's position.
    pub cursor: LoaderCursor,
    /// Examples trained on (b per step).
    pub examples_seen: u64,
    /// Examples drawn from the pool (B per step when scoring).
    pub examples_drawn: u64,
    pub flops_train: f64,
    pub flops_score: f64,
    /// Wall time of the steps so far, seconds (load, score, select, step).
    pub seconds: BTreeMap<String, f64>,
    /// Ground-truth noise kinds drawn and trained on so far.
    pub noise_drawn: BTreeMap<String, u64>,
    pub noise_selected: BTreeMap<String, u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { path, source }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, renamed over it, and
/// the folder synced so that the rename itself survives a power cut.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let temp = path.with_file_name(name);
    let mut file = File::create(&temp).map_err(io(&temp))?;
    file.write_all(bytes).map_err(io(&temp))?;
    file.sync_all().map_err(io(&temp))?;
    std::fs::rename(&temp, path).map_err(io(path))?;
    sync_parent(path)
}

/// Saves the model's weights to `path` atomically (as [`write_atomic`]).
pub fn save_model_atomic(model: &TwoTower, path: &Path) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp.safetensors");
    let temp = path.with_file_name(name);
    model.save(&temp)?;
    File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(io(&temp))?;
    std::fs::rename(&temp, path).map_err(io(path))?;
    sync_parent(path)
}

/// Syncs the folder holding `path`, making a rename into it durable.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io(parent))
}

fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// Writes checkpoint `state.step` and points `latest` at it; keeps the newest `keep`.
pub fn save_checkpoint(
    out: &Path,
    model: &TwoTower,
    optimizer: &AdamW,
    state: &RunState,
    keep: usize,
) -> Result<PathBuf> {
    let dir = checkpoints_dir(out);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let name = format!("step-{:09}", state.step);
    let final_dir = dir.join(&name);
    if final_dir.exists() {
        return Ok(final_dir);
    }
    let temp = dir.join(format!(".{name}.tmp"));
    if temp.exists() {
        std::fs::remove_dir_all(&temp).map_err(io(&temp))?;
    }
    std::fs::create_dir_all(&temp).map_err(io(&temp))?;
    model.save(&temp.join("model.safetensors"))?;
    optimizer.save(&temp.join("optimizer.safetensors"))?;
    let state_json = serde_json::to_vec_pretty(state).expect("state serialises");
    std::fs::write(temp.join("state.json"), state_json).map_err(io(&temp))?;
    for file in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        let path = temp.join(file);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(io(&path))?;
    }
    std::fs::rename(&temp, &final_dir).map_err(io(&final_dir))?;
    sync_parent(&final_dir)?;
    write_atomic(&dir.join("latest"), name.as_bytes())?;
    prune(&dir, keep)?;
    Ok(final_dir)
}

/// Removes all but the newest `keep` complete checkpoints, and stale temporary folders.
fn prune(dir: &Path, keep: usize) -> Result<()> {
    let mut complete = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("step-") {
            complete.push(name);
        } else if name.starts_with(".step-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    complete.sort();
    let excess = complete.len().saturating_sub(keep);
    for name in &complete[..excess] {
        let path = dir.join(name);
        std::fs::remove_dir_all(&path).map_err(io(&path))?;
    }
    Ok(())
}

/// The newest complete checkpoint of the run in `out`, if any.
pub fn latest_checkpoint(out: &Path) -> Result<Option<PathBuf>> {
    let latest = checkpoints_dir(out).join("latest");
    match std::fs::read_to_string(&latest) {
        Ok(name) => {
            let dir = checkpoints_dir(out).join(name.trim());
            if !dir.join("state.json").exists() {
                return Err(Error::Input {
                    path: latest,
                    what: format!(
                        "names {}, which is not a complete checkpoint",
                        dir.display()
                    ),
                });
            }
            Ok(Some(dir))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: latest,
            source,
        }),
    }
}

/// Reads a checkpoint's state.
pub fn read_state(checkpoint: &Path) -> Result<RunState> {
    let path = checkpoint.join("state.json");
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Input {
        path,
        what: format!("not a jester run state ({e})"),
    })
}

/// Reads `OUT/config.json`.
pub fn read_config(out: &Path) -> Result<TrainConfig> {
    read_run_json(out, "config.json", "a jester training config")
}

/// Reads and parses the JSON file `name` of the run folder `out`; a missing file means `out` is
/// not a run folder, a bad one is not `what`.
pub(crate) fn read_run_json<T: serde::de::DeserializeOwned>(
    out: &Path,
    name: &str,
    what: &str,
) -> Result<T> {
    let path = out.join(name);
    let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::Input {
            path: path.clone(),
            what: "missing: not a jester run folder (`jester train --out DIR` makes one)".into(),
        },
        _ => Error::Io {
            path: path.clone(),
            source,
        },
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Input {
        path,
        what: format!("not {what} ({e})"),
    })
}

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
    let config = read_config(out)?;
    let tokenizer_path = out.join("tokenizer.json");
    let tokenizer = TextTokenizer::from_file(&tokenizer_path).map_err(|e| Error::Input {
        path: tokenizer_path.clone(),
        what: format!("cannot read the run's tokenizer ({e})"),
    })?;
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
