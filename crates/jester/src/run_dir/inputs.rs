//! `inputs.json`: what a run reads besides its config — the shards, the reference, the held-out
//! set — written by the library when a run starts, so resuming needs only the run folder.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::eval::EvalSpec;

/// Where the reference's embeddings come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ReferenceSource {
    /// No reference (uniform training, or the hard-learner score).
    None,
    /// A cache written by `jester embed`, looked up by sample key (docs/ALGORITHM.md §6).
    Cache(PathBuf),
    /// A trained run folder, scored online at every step (≈ B extra forwards per step).
    Model(PathBuf),
}

/// The file's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInputs {
    pub data: Vec<String>,
    pub reference: Option<PathBuf>,
    pub reference_model: Option<PathBuf>,
    #[serde(default)]
    pub eval: Option<EvalSpec>,
    /// The user allowed an unfinished reference run (its newest checkpoint).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_unfinished_reference: bool,
}

impl RunInputs {
    pub const FILE: &'static str = "inputs.json";

    /// Where the reference's embeddings come from.
    pub fn reference_source(&self) -> ReferenceSource {
        match (&self.reference, &self.reference_model) {
            (Some(path), _) => ReferenceSource::Cache(path.clone()),
            (None, Some(dir)) => ReferenceSource::Model(dir.clone()),
            (None, None) => ReferenceSource::None,
        }
    }

    pub fn of(
        data: &[String],
        reference: &ReferenceSource,
        eval: &Option<EvalSpec>,
        allow_unfinished_reference: bool,
    ) -> Self {
        let (cache, model) = match reference {
            ReferenceSource::None => (None, None),
            ReferenceSource::Cache(p) => (Some(p.clone()), None),
            ReferenceSource::Model(d) => (None, Some(d.clone())),
        };
        Self {
            data: data.to_vec(),
            reference: cache,
            reference_model: model,
            eval: eval.clone(),
            allow_unfinished_reference,
        }
    }
}
