//! The benchmark folder (layout in `benchmark/mod.rs`): every split, the zero-shot classes, the
//! resolved config and a summary of what was written.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::{BenchmarkConfig, Split};
use super::noise::CurationLevel;
use super::split::{write_eval_split, write_noisy_split, SplitSummary};
use super::world::World;
use crate::error::{Error, Result};

/// `eval/classes.json`: zero-shot class names (a sample's `class` indexes them) and the prompt
/// templates, each with one `{}` for the name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassesFile {
    pub classes: Vec<String>,
    pub templates: Vec<String>,
}

/// `summary.json`: what each split holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub splits: BTreeMap<Split, SplitSummary>,
    /// The number of zero-shot classes in `eval/classes.json`.
    pub classes: usize,
}

/// Writes the whole benchmark into `out_dir`, which must be new or empty (stale shards from an
/// earlier run would otherwise mix in). `train` draws the pool and curated sets, `eval` the
/// evaluation set (Fashion-MNIST: train and test items); `config` is saved as `config.json`.
///
/// Everything is written into a hidden staging folder beside `out_dir` and renamed into place at
/// the end, so a failed or interrupted generation leaves no half-made benchmark behind and the
/// same command can simply be run again.
pub(crate) fn write_benchmark<W: World, C: Serialize>(
    out_dir: &Path,
    common: &BenchmarkConfig,
    config: &C,
    train: &W,
    eval: &W,
    classes: &ClassesFile,
) -> Result<Summary> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let existed = match std::fs::read_dir(out_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Config {
                    what: "benchmark output",
                    why: format!("{} is not empty; give a new folder", out_dir.display()),
                });
            }
            true
        }
        Err(_) => false,
    };
    let name = out_dir
        .file_name()
        .map_or_else(|| "benchmark".into(), |n| n.to_string_lossy().into_owned());
    let staging = out_dir.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let written = write_splits(&staging, common, config, train, eval, classes);
    let summary = match written {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if existed {
        std::fs::remove_dir(out_dir).map_err(io(out_dir))?;
    }
    std::fs::rename(&staging, out_dir).map_err(io(out_dir))?;
    crate::atomic::sync_parent(out_dir)?;
    Ok(summary)
}

fn write_splits<W: World, C: Serialize>(
    out_dir: &Path,
    common: &BenchmarkConfig,
    config: &C,
    train: &W,
    eval: &W,
    classes: &ClassesFile,
) -> Result<Summary> {
    write_json(&out_dir.join("config.json"), config)?;

    let mut splits = BTreeMap::new();
    let pool = write_noisy_split(
        train,
        Split::Pool,
        common.pool,
        &common.pool_noise,
        common,
        &out_dir.join(Split::Pool.name()),
    )?;
    splits.insert(Split::Pool, pool);
    for level in CurationLevel::ALL {
        let split = Split::curated(level);
        let summary = write_noisy_split(
            train,
            split,
            common.curated,
            &common.curated_noise.rates(level),
            common,
            &out_dir.join(split.name()),
        )?;
        splits.insert(split, summary);
    }
    let eval_dir = out_dir.join(Split::Eval.name());
    let summary = write_eval_split(eval, classes.classes.len(), common, &eval_dir)?;
    splits.insert(Split::Eval, summary);
    write_json(&eval_dir.join("classes.json"), classes)?;

    let summary = Summary {
        splits,
        classes: classes.classes.len(),
    };
    write_json(&out_dir.join("summary.json"), &summary)?;
    Ok(summary)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    crate::atomic::write_json_atomic(path, value)
}
