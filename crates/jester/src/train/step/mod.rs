//! One training step as a value (docs/ARCHITECTURE.md, "One step"): draw a super-batch → score it
//! with the learner and the reference → select the sub-batch → one AdamW update on it.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use jester_data::tokenizer::TextTokenizer;
use jester_data::{LoaderCursor, LoaderOptions};

mod new;
mod phases;

use super::optim::AdamW;
use super::pool::Pool;
use super::scoring::{open_reference, Reference, StepCosts};
use crate::collective::{all_ok, Collective, SingleProcess};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::input::{assemble, model_preprocess, model_work};
use crate::model::TwoTower;
use crate::run_dir::{ReferenceSource, ScoreSummary, Unfinished, Update};

/// What one step did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Steps completed, this one included.
    pub step: usize,
    #[serde(flatten)]
    pub update: Update,
    /// Examples trained on (b) and drawn (B).
    pub examples_trained: u64,
    pub examples_drawn: u64,
    /// FLOPs as executed (docs/ALGORITHM.md §6): the update, and scoring plus selection.
    pub flops_train: f64,
    pub flops_score: f64,
    /// Wall seconds by phase: load, score, select, step.
    pub seconds: BTreeMap<String, f64>,
    /// Mean learnability (or learner loss) of the selected batch vs a uniform one from the same
    /// super-batch; computed when asked for (it costs a pass over the scores).
    pub score: Option<ScoreSummary>,
    /// Ground-truth noise kinds among this rank's drawn and trained examples (benchmarks only;
    /// the run's totals over ranks are summed at metrics lines and checkpoints).
    pub noise_drawn: BTreeMap<String, u64>,
    pub noise_selected: BTreeMap<String, u64>,
    /// The trained examples' rows in the (global) super-batch, in selection order (uniform: this
    /// rank's rows, all B in one process).
    #[serde(skip)]
    pub selected: Vec<usize>,
}

/// Sees (and may replace) each step's loss before the NaN guard: a seam for fault injection in
/// tests. Gets the 1-based step.
pub type LossHook = Box<dyn FnMut(usize, Tensor) -> Tensor>;

/// Where a step's inputs come from.
pub struct StepInputs<'a> {
    pub shards: Vec<PathBuf>,
    pub tokenizer: &'a TextTokenizer,
    pub reference: &'a ReferenceSource,
    pub unfinished_reference: Unfinished,
    pub device: Device,
}

/// Where a resumed step starts: after `done` steps, with this rank's groups' loaders at `cursors`;
/// weights and moments from `checkpoint` (a checkpoint folder) — rank 0 reads it, and in a
/// data-parallel run the other ranks (which pass `None`) receive them from rank 0.
pub struct Resume<'a> {
    pub checkpoint: Option<&'a Path>,
    pub done: usize,
    pub cursors: Vec<LoaderCursor>,
}

/// The training state a step advances: the learner, its optimizer, the reference, this rank's
/// part of the pool, and the collective that links it to other processes.
pub struct Step {
    config: TrainConfig,
    device: Device,
    model: TwoTower,
    parameters: Vec<(String, Tensor)>,
    /// Parameters every rank's loss reaches whole (t and b): their gradients are averaged, not
    /// summed, over ranks.
    whole_loss: Vec<bool>,
    optimizer: AdamW,
    reference: Reference,
    pool: Pool,
    costs: StepCosts,
    /// The (rows, patch) parts of this rank's share of the trained batch.
    parts: Vec<(usize, usize)>,
    collective: Box<dyn Collective>,
    /// How drawn images are normalised (on the device).
    preprocess: jester_data::transform::Preprocess,
    loss_hook: Option<LossHook>,
    done: usize,
}

impl Step {
    /// Installs a [`LossHook`].
    pub fn set_loss_hook(&mut self, hook: LossHook) {
        self.loss_hook = Some(hook);
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    pub fn model(&self) -> &TwoTower {
        &self.model
    }
    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }
    /// The link to the other processes of a data-parallel run.
    pub fn collective(&self) -> &dyn Collective {
        self.collective.as_ref()
    }
    /// Steps completed.
    pub fn done(&self) -> usize {
        self.done
    }
    /// This rank's loaders' positions, one per group it owns (what a checkpoint saves).
    pub fn cursors(&self) -> Vec<LoaderCursor> {
        self.pool.cursors()
    }
    /// A checksum of the weights: equal on every rank of a healthy data-parallel run.
    pub fn weights_checksum(&self) -> f64 {
        let _guard = tch::no_grad_guard();
        self.parameters
            .iter()
            .map(|(_, p)| {
                let p = p.to_kind(tch::Kind::Double);
                (p.sum(tch::Kind::Double) + p.abs().sum(tch::Kind::Double) * 1e-3).double_value(&[])
            })
            .sum()
    }
    /// FLOPs of one step as executed, and of a uniform step of the same model and b.
    pub fn flops(&self) -> (f64, f64, f64) {
        let score = if self.config.method.scores() {
            self.costs.score()
        } else {
            0.0
        };
        (self.costs.train, score, self.costs.uniform)
    }

    /// One step: draw B → score → select b → update. `summarise` also computes the selection's
    /// [`ScoreSummary`]. A non-finite loss or update is an error ([`Error::NonFinite`], with no
    /// checkpoint named: the caller knows its last one) and leaves the weights as they were.
    pub fn run(&mut self, summarise: bool) -> Result<StepMetrics> {
        let mut clock = PhaseClock::new(self.device, self.collective.world_size() > 1);
        let examples = clock.time("load", |_| Ok(self.pool.draw()))?;
        // A loader that fails on one rank fails every rank now, with its message, rather than
        // leaving the others waiting in the step's first gather.
        let examples = clock.communicate(|| all_ok(self.collective.as_ref(), examples))?;
        let drawn = clock.time("load", |_| {
            Ok(assemble(examples, &self.preprocess, self.device))
        })?;
        let scored = clock.time("score", |clock| self.score(&drawn, clock))?;
        let chosen = clock.time("select", |_| self.select(&drawn, scored.as_ref()))?;
        let summary = match (&scored, summarise) {
            (Some(scored), true) => Some(self.summarise(scored, &chosen)?),
            _ => None,
        };
        let update = clock.time("step", |clock| {
            self.update(&drawn, scored.as_ref(), &chosen, clock)
        })?;
        self.done += 1;
        Ok(self.metrics(drawn, scored.as_ref(), chosen, update, summary, clock))
    }
}

/// Seconds by phase, each measured after the device's queued work is done; time in collectives
/// (a data-parallel run only) is kept apart as "communicate".
struct PhaseClock {
    device: Device,
    /// Whether collectives are timed (a data-parallel run; one process has none).
    distributed: bool,
    seconds: BTreeMap<String, f64>,
}

impl PhaseClock {
    fn new(device: Device, distributed: bool) -> Self {
        Self {
            device,
            distributed,
            seconds: BTreeMap::new(),
        }
    }

    /// Runs `phase`, adding its wall time (less what it spent communicating) under `name`.
    fn time<T>(&mut self, name: &str, phase: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let timer = Instant::now();
        let before = self.communicated();
        let value = phase(self)?;
        let spent = elapsed(timer, self.device) - (self.communicated() - before);
        *self.seconds.entry(name.to_string()).or_default() += spent;
        Ok(value)
    }

    /// Runs a collective, adding its wall time to "communicate".
    fn communicate<T>(&mut self, collective: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.distributed {
            return collective();
        }
        let timer = Instant::now();
        let value = collective()?;
        *self.seconds.entry("communicate".to_string()).or_default() += elapsed(timer, self.device);
        Ok(value)
    }

    fn communicated(&self) -> f64 {
        self.seconds.get("communicate").copied().unwrap_or(0.0)
    }
}

/// A per-step selection seed: the same run gives the same selections, resumed or not.
pub(super) fn step_seed(seed: u64, step: usize) -> u64 {
    seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Seconds since `since`, after the device's queued work is done.
fn elapsed(since: Instant, device: Device) -> f64 {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
    since.elapsed().as_secs_f64()
}
