//! `inputs.json`: what a run reads besides its config — the shards, the reference, the held-out
//! set — written by the library when a run starts, so resuming needs only the run folder.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::checkpoint::{read_run_json, write_atomic};
use super::run::EvalSpec;
use super::scoring::ReferenceSource;
use crate::error::Result;

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

    /// Reads `OUT/inputs.json`.
    pub fn read(out: &Path) -> Result<Self> {
        read_run_json(out, Self::FILE, "a jester run's inputs")
    }

    pub(super) fn write(&self, out: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("inputs serialise");
        write_atomic(&out.join(Self::FILE), &bytes)
    }

    /// Where the reference's embeddings come from.
    pub fn reference_source(&self) -> ReferenceSource {
        match (&self.reference, &self.reference_model) {
            (Some(path), _) => ReferenceSource::Cache(path.clone()),
            (None, Some(dir)) => ReferenceSource::Model(dir.clone()),
            (None, None) => ReferenceSource::None,
        }
    }

    pub(super) fn of(
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
