//! How a run starts and what it needs besides its config: shared by the loop (driver.rs) and
//! rank 0's opening of the run folder (ranks.rs), which depend on these, not on each other.
use std::path::PathBuf;

use crate::config::TrainConfig;
use crate::run_dir::{EvalSpec, ReferenceSource, Unfinished};

/// How a run starts.
pub enum Start {
    /// A new run with this config in an empty (or new) folder.
    Fresh(Box<TrainConfig>),
    /// Continue the run in the folder from its newest checkpoint, with its saved config.
    Resume,
}

/// What a run needs besides its config (saved in the folder's `inputs.json`).
pub struct TrainOptions {
    pub out: PathBuf,
    /// Shard specs: files, folders, globs, brace ranges.
    pub data: Vec<String>,
    pub reference: ReferenceSource,
    /// Whether a reference run without final weights may be used (its newest checkpoint).
    pub unfinished_reference: Unfinished,
    pub device: tch::Device,
    /// A held-out set evaluated before the first step, every `eval_every` steps and at the end.
    pub eval: Option<EvalSpec>,
}
