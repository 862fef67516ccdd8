//! A recipe (what to compare) and the metric runs are compared on.
use std::path::Path;

use serde::{Deserialize, Serialize};

use jester_data::benchmark::CurationLevel;

use crate::config::TrainMethod;
use crate::error::{Error, Result};
use crate::eval::EvalMetrics;
use crate::select::ScoreKind;

/// The number runs are compared on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Zero-shot classification top-1 (benchmarks with classes).
    #[default]
    ZeroShotTop1,
    /// Image-text retrieval recall@1, the mean of both directions.
    RetrievalR1,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Self::ZeroShotTop1 => "zero_shot_top1",
            Self::RetrievalR1 => "retrieval_r1",
        }
    }

    /// The metric's value in an evaluation (NaN when the evaluation has no zero-shot classes).
    pub fn of(self, eval: &EvalMetrics) -> f64 {
        match self {
            Self::RetrievalR1 => 0.5 * (eval.image_to_text.r1 + eval.text_to_image.r1),
            Self::ZeroShotTop1 => eval.zero_shot_top1.unwrap_or(f64::NAN),
        }
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [Self::ZeroShotTop1, Self::RetrievalR1]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown metric {s:?}; expected zero_shot_top1 or retrieval_r1"))
    }
}

/// What every run of a recipe gets the same of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// The same iterations (`steps`) for every run.
    #[default]
    Iterations,
    /// The same total FLOPs (training and scoring, as executed): the costliest run per iteration
    /// trains `steps` iterations, every other run as many as the same FLOPs buy (uniform the
    /// most), each within one step of the common budget.
    Compute,
}

impl Budget {
    pub fn is_iterations(&self) -> bool {
        *self == Self::Iterations
    }
}

/// A recipe: a benchmark, the references, and the runs to compare (all on one seed and budget).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `synthetic`, `fashion-mnist`, or a path to a benchmark folder written by `jester data`.
    pub benchmark: String,
    /// Generator settings (`--set` syntax of `jester data`), e.g. `benchmark.pool=20000`.
    #[serde(default)]
    pub benchmark_set: Vec<String>,
    /// The learners' preset or TOML file.
    #[serde(default = "tiny")]
    pub config: String,
    /// Settings for every run, references included (`--set` syntax of `jester train`).
    #[serde(default)]
    pub set: Vec<String>,
    /// Added to `set` by `--quick` (the demo's budget).
    #[serde(default)]
    pub quick_set: Vec<String>,
    /// The main metric.
    #[serde(default)]
    pub metric: Metric,
    /// Equal iterations (the default) or equal compute for every run. Written only when not the
    /// default, so the recorded recipe of an earlier experiment reads as before.
    #[serde(default, skip_serializing_if = "Budget::is_iterations")]
    pub budget: Budget,
    /// Evaluations per run, spread evenly (besides the one before the first step). The
    /// *-to-target ratios interpolate between them: too few make those ratios coarse.
    #[serde(default = "default_evals")]
    pub evals: usize,
    /// Train every run once per seed (default: the config's seed alone); the report gives each
    /// number's mean and range over seeds, each seed measured against its own uniform run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    pub reference: ReferenceRecipe,
    pub runs: Vec<RunRecipe>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceRecipe {
    /// The curated set references train on by default.
    #[serde(default = "strong")]
    pub curated: CurationLevel,
    /// Settings for reference training only (after the recipe's `set`).
    #[serde(default)]
    pub set: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecipe {
    pub name: String,
    pub method: TrainMethod,
    #[serde(default)]
    pub score: Option<ScoreKind>,
    /// This run's reference curation level (default: the recipe's).
    #[serde(default)]
    pub curated: Option<CurationLevel>,
    #[serde(default)]
    pub set: Vec<String>,
}

fn tiny() -> String {
    "tiny".into()
}
fn strong() -> CurationLevel {
    CurationLevel::Strong
}
fn default_evals() -> usize {
    20
}

impl Recipe {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| Error::Input {
            path: path.to_owned(),
            what: e.to_string(),
        })
    }

    pub fn parse(text: &str) -> Result<Self> {
        let recipe: Recipe =
            toml::from_str(text).map_err(|e| Error::invalid("recipe", e.to_string()))?;
        recipe.validate()?;
        Ok(recipe)
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::invalid("recipe", what));
        if self.runs.is_empty() {
            return bad("the recipe has no [[runs]]".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for run in &self.runs {
            if !names.insert(&run.name) {
                return bad(format!("two runs are named {:?}", run.name));
            }
        }
        let mut seeds = self.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        if seeds.len() != self.seeds.len() {
            return bad(format!("seeds {:?} repeat a seed", self.seeds));
        }
        if self.evals == 0 {
            return bad("evals must be ≥ 1: runs are compared on their evaluations".into());
        }
        if !self.runs.iter().any(|r| r.method == TrainMethod::Uniform) {
            return bad("the recipe needs a uniform run: targets are uniform's final score".into());
        }
        Ok(())
    }
}
