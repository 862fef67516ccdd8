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

use super::grouped::{embed_grouped, train_grouped};
use super::optim::{learning_rate, AdamW};
use super::order::training_order;
use super::pool::{local_rows, Pool};
use super::scoring::{open_reference, reference_embeddings, Reference, StepCosts};
use crate::collective::{Collective, SingleProcess};
use crate::config::{TrainConfig, TrainMethod};
use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::input::{assemble, model_preprocess, model_work};
use crate::loss::LossKind;
use crate::model::{BatchTensors, TwoTower};
use crate::run_dir::{ReferenceSource, ScoreSummary, Unfinished, Update};
use crate::select::{
    batch_score, select_grouped, uniform_batch_score, Method, ScoreKind, SelectConfig,
};

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
        (self.costs.train, self.costs.score, self.costs.uniform)
    }

    /// One step: draw B → score → select b → update. `summarise` also computes the selection's
    /// [`ScoreSummary`]. A non-finite loss or update is an error ([`Error::NonFinite`], with no
    /// checkpoint named: the caller knows its last one) and leaves the weights as they were.
    pub fn run(&mut self, summarise: bool) -> Result<StepMetrics> {
        let step = self.done;
        let config = &self.config;
        let device = self.device;
        let world = self.collective.world_size();
        let groups = self.pool.groups();
        let per_group = self.pool.per_group();
        let mut seconds = BTreeMap::new();
        // Time in collectives (a data-parallel run only), kept out of score and step.
        let mut communication = 0.0;
        let timer = Instant::now();
        let drawn = assemble(self.pool.draw()?, &self.preprocess, device);
        seconds.insert("load".to_string(), elapsed(timer, device));
        let parts = &self.parts;

        let (rows, selected, score) = if config.method.scores() {
            let timer = Instant::now();
            let patch = config.score_patch();
            let precision = config.scoring_precision(device);
            let learner =
                embed_grouped(&self.model, &drawn.tensors, patch, groups.len(), precision)?;
            let learner = self.collective.gather_scoring(learner)?;
            let reference =
                reference_embeddings(&self.reference, &drawn, config, device, groups.len())?
                    .map(|r| self.collective.gather_scoring(r))
                    .transpose()?;
            seconds.insert("score".to_string(), elapsed(timer, device));
            let timer = Instant::now();
            let select_config = SelectConfig {
                method: match config.method {
                    TrainMethod::Independent => Method::Independent,
                    _ => Method::Joint,
                },
                score: config.score,
                loss: LossKind::Sigmoid,
                chunks: config.chunks,
                gain: config.gain,
                seed: step_seed(config.seed, step),
            };
            let selection = select_grouped(
                &learner,
                reference.as_ref(),
                config.batch,
                &select_config,
                config.selection_groups,
            )?;
            let order = training_order(
                &selection.indices,
                config.train_parts().len(),
                select_config.seed,
            );
            let rows = local_rows(&order, per_group, groups.clone());
            seconds.insert("select".to_string(), elapsed(timer, device));
            let score = if summarise {
                let index = Tensor::from_slice(&order).to_device(device);
                Some(score_summary(
                    &learner,
                    reference.as_ref(),
                    &index,
                    config.batch,
                )?)
            } else {
                None
            };
            let selected: Vec<usize> = selection.indices.iter().map(|&i| i as usize).collect();
            (Some(rows), selected, score)
        } else {
            let offset = groups.start * per_group;
            (None, (offset..offset + drawn.keys.len()).collect(), None)
        };
        let batch = match &rows {
            Some(rows) => drawn
                .tensors
                .select_rows(&Tensor::from_slice(rows).to_device(device)),
            None => shallow_clone(&drawn.tensors),
        };

        let timer = Instant::now();
        zero_grads(&self.parameters);
        let (image, text) = train_grouped(&self.model, &batch, parts, groups.len())?;
        let gathering = Instant::now();
        let (image, text) = self.collective.gather_for_loss(image, text)?;
        let mut step_communication = elapsed(gathering, device);
        let mut loss = self.model.pair_loss(&image, &text);
        if let Some(hook) = &mut self.loss_hook {
            loss = hook(step + 1, loss);
        }
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            return Err(Error::NonFinite {
                step: step + 1,
                what: format!("the training loss is {value}"),
                checkpoint: None,
            });
        }
        loss.backward();
        let mut gradients = Vec::new();
        for ((_, p), &whole) in self.parameters.iter().zip(&self.whole_loss) {
            let g = p.grad();
            if g.defined() {
                if whole && world > 1 {
                    // Every rank computed t's and b's gradient from the whole global loss: the
                    // sum over ranks below becomes their mean.
                    let _ = g.detach().g_div_scalar_(world as f64);
                }
                gradients.push(g);
            }
        }
        let reducing = Instant::now();
        self.collective.all_reduce_gradients(&gradients)?;
        step_communication += elapsed(reducing, device);
        let norms = self
            .optimizer
            .step(&self.parameters, step)
            .map_err(|e| Error::NonFinite {
                step: step + 1,
                what: e.to_string(),
                checkpoint: None,
            })?;
        seconds.insert(
            "step".to_string(),
            elapsed(timer, device) - step_communication,
        );
        communication += step_communication;
        if world > 1 {
            seconds.insert("communicate".to_string(), communication);
        }
        self.done = step + 1;

        let count = |rows: &mut dyn Iterator<Item = usize>| {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for row in rows {
                if let Some(kind) = &drawn.noise[row] {
                    *counts.entry(kind.clone()).or_default() += 1;
                }
            }
            counts
        };
        let local_selected = match &rows {
            Some(rows) => count(&mut rows.iter().map(|&r| r as usize)),
            None => count(&mut (0..drawn.noise.len())),
        };
        let noise_drawn = count(&mut (0..drawn.noise.len()));
        Ok(StepMetrics {
            step: step + 1,
            update: Update {
                loss: value,
                lr: learning_rate(&config.optim, step, config.steps),
                t: self.model.temperature().double_value(&[]),
                b: self.model.bias().double_value(&[]),
                grad_norm: norms.grad_norm,
                param_norm: norms.param_norm,
            },
            examples_trained: config.batch as u64,
            examples_drawn: (drawn.keys.len() * world) as u64,
            flops_train: self.costs.train,
            flops_score: self.costs.score,
            seconds,
            score,
            noise_drawn,
            noise_selected: local_selected,
            selected,
        })
    }
}

/// Mean score per example (learnability when a reference is there, else the learner's loss) of
/// the selected batch and of a uniform batch of the same size from the same super-batch.
fn score_summary(
    learner: &PairEmbeddings,
    reference: Option<&PairEmbeddings>,
    index: &Tensor,
    batch: usize,
) -> Result<ScoreSummary> {
    let kind = if reference.is_some() {
        ScoreKind::Learnability
    } else {
        ScoreKind::HardLearner
    };
    let block = 1024;
    let selected = batch_score(kind, LossKind::Sigmoid, learner, reference, index, block)?;
    let uniform = uniform_batch_score(kind, LossKind::Sigmoid, learner, reference, batch, block)?;
    Ok(ScoreSummary {
        kind: kind.name().to_string(),
        selected,
        uniform,
    })
}

fn zero_grads(parameters: &[(String, Tensor)]) {
    for (_, p) in parameters {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.detach_().zero_();
        }
    }
}

/// A per-step selection seed: the same run gives the same selections, resumed or not.
fn step_seed(seed: u64, step: usize) -> u64 {
    seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Seconds since `since`, after the device's queued work is done.
fn elapsed(since: Instant, device: Device) -> f64 {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
    since.elapsed().as_secs_f64()
}

fn shallow_clone(batch: &BatchTensors) -> BatchTensors {
    BatchTensors {
        images: batch.images.shallow_clone(),
        ids: batch.ids.shallow_clone(),
        last: batch.last.shallow_clone(),
    }
}
