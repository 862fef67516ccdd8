//! The experiment protocol (docs/ARCHITECTURE.md, "Experiments"): a recipe names a benchmark, the
//! references and the runs to compare; [`run_recipe`] trains every part once (references on their
//! curated sets, cached; every run with the same seed and budget, evaluated on the same held-out
//! set, with the same iterations or — `budget = "compute"` — the same total FLOPs), measures
//! iterations and FLOPs to uniform's final score (and, at equal compute, what each run's FLOPs
//! bought), and writes `summary.json` and
//! `report.md`. Every finished part is kept: a rerun skips it and resumes an unfinished one.
//!
//! ```text
//! OUT/recipe.toml                  the recipe as run (with the settings applied)
//! OUT/report.md, summary.json      (the CLI adds curves.png)
//! WORK/data-HASH/                  the benchmark (generated unless the recipe names a folder)
//! WORK/reference-LEVEL-HASH/       a reference run on curated-LEVEL, and its cached pool
//! WORK/reference-LEVEL-HASH-pool.safetensors   embeddings
//! WORK/runs/METHOD-HASH/           each run of the recipe
//! ```
//! WORK is OUT unless a folder shared by several experiments is given: parts are keyed by a hash
//! of everything that determines them (resolved config, data, reference), so recipes that share a
//! run (uniform, or JEST at f = 0.8) train it once.
mod compute;
mod markdown;
mod protocol;
mod recipe;
mod report;
#[cfg(test)]
mod report_tests;

pub use compute::{metric_at, ComputeOutcome};
pub use jester_data::benchmark::CurationLevel;
pub use markdown::{compute_table, markdown, table};
pub use protocol::{
    equal_compute_steps, iteration_flops, run_recipe, ExperimentOptions, RunObserver, DEMO_RECIPE,
};
pub use recipe::{Budget, Metric, Recipe, ReferenceRecipe, RunRecipe};
pub use report::{build, ExperimentSummary, Parts, Point, RunSummary, SeedOutcome};
