//! Checkpoints that lose nothing: `checkpoints/step-NNNNNNNNN/` holds the weights, the optimizer's
//! moments and the [`RunState`]; `checkpoints/latest` names the newest complete one.
//!
//! A checkpoint is written into a temporary folder, synced, and renamed into place; only then is
//! `latest` replaced (atomically). A run killed at any instant leaves the previous checkpoint intact
//! and `latest` naming a complete one.
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use jester_data::atomic::{sync_parent, write_atomic};
use jester_data::LoaderCursor;

use crate::error::{Error, Result};

/// Everything besides weights and moments that a resumed run needs to continue exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Steps completed.
    pub step: usize,
    /// The pool loader's position (with selection groups, group 0's).
    pub cursor: LoaderCursor,
    /// With selection groups (a data-parallel run), groups 1..G's loader positions; written only
    /// when there are some, so single-loader checkpoints read as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_cursors: Vec<LoaderCursor>,
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

impl RunState {
    /// Every group's loader position, group 0 first.
    pub fn cursors(&self) -> Vec<LoaderCursor> {
        std::iter::once(self.cursor.clone())
            .chain(self.other_cursors.iter().cloned())
            .collect()
    }
    /// Sets every group's loader position, group 0 first.
    pub fn set_cursors(&mut self, mut cursors: Vec<LoaderCursor>) {
        if !cursors.is_empty() {
            self.cursor = cursors.remove(0);
        }
        self.other_cursors = cursors;
    }
    /// Samples skipped so far over all groups.
    pub fn skipped(&self) -> jester_data::SkipCounts {
        let mut total = jester_data::SkipCounts::default();
        for c in std::iter::once(&self.cursor).chain(&self.other_cursors) {
            total.merge(&c.skipped);
        }
        total
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { path, source }
}

fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// Writes checkpoint `state.step` and points `latest` at it; keeps the newest `keep`. `write`
/// puts the weights and the optimizer's moments (`model.safetensors`, `optimizer.safetensors`)
/// into the folder it is given.
pub fn save_checkpoint(
    out: &Path,
    state: &RunState,
    keep: usize,
    write: impl FnOnce(&Path) -> Result<()>,
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
    write(&temp)?;
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
