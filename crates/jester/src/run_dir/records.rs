//! The run folder's records, typed: what `metrics.jsonl`, `eval.jsonl` and `summary.json` hold.
//! Each line or file is the serialised struct; readers (the CLI, reports, Python) parse the same
//! struct back.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use jester_data::SkipCounts;

use crate::config::TrainMethod;
use crate::eval::EvalMetrics;

/// One line of `metrics.jsonl`: the step's own numbers, the run's totals after it, and the
/// means over the steps since the previous line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLine {
    /// Steps completed.
    pub step: usize,
    /// The last step's update.
    #[serde(flatten)]
    pub update: Update,
    pub examples_seen: u64,
    pub examples_drawn: u64,
    pub flops_train: f64,
    pub flops_score: f64,
    pub flops_total: f64,
    /// Mean seconds per step since the previous line, by phase: load, score, select, step.
    pub seconds_per_step: BTreeMap<String, f64>,
    /// Seconds of all steps so far.
    pub wall_seconds: f64,
    /// What the selection kept, when the step scored.
    pub score: Option<ScoreSummary>,
    /// Shares of the benchmark's ground-truth noise kinds among the examples drawn and trained on
    /// since the previous line (absent on data without ground truth).
    pub noise_superbatch: Option<BTreeMap<String, f64>>,
    pub noise_selected: Option<BTreeMap<String, f64>>,
    /// Samples the loader skipped so far (bad images, long captions, …).
    pub skipped: u64,
}

/// What one AdamW update did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub loss: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// The sigmoid loss's temperature t and bias b after the step.
    pub t: f64,
    pub b: f64,
    /// The global gradient norm before clipping, and the parameter norm after the update.
    pub grad_norm: f64,
    pub param_norm: f64,
    /// The distillation term before its weight (`loss` includes it weighted); only when
    /// distilling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<f64>,
}

/// Mean score per example of the selected batch and of a uniform batch of the same size from the
/// same super-batch: learnability when a reference is there, else the learner's loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreSummary {
    pub kind: String,
    pub selected: f64,
    pub uniform: f64,
}

/// One line of `eval.jsonl`: a held-out evaluation and what the run had spent when it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalLine {
    pub step: usize,
    pub examples_seen: u64,
    pub flops_train: f64,
    pub flops_score: f64,
    pub flops_total: f64,
    pub wall_seconds: f64,
    pub eval: EvalMetrics,
}

/// The totals of a finished run (`summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub method: TrainMethod,
    pub steps: usize,
    pub batch: usize,
    pub super_batch: usize,
    pub parameters: usize,
    pub examples_seen: u64,
    pub examples_drawn: u64,
    pub flops_train: f64,
    pub flops_score: f64,
    /// Executed FLOPs per step relative to a uniform step of the same model and b.
    pub cost_vs_uniform: f64,
    pub final_loss: f64,
    pub seconds: BTreeMap<String, f64>,
    pub steps_per_second: f64,
    pub skipped: SkipCounts,
    #[serde(default)]
    pub noise_drawn: BTreeMap<String, u64>,
    #[serde(default)]
    pub noise_selected: BTreeMap<String, u64>,
}
