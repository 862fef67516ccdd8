//! One training step as a value (docs/ARCHITECTURE.md, "One step"): draw a super-batch → score it
//! with the learner and the reference → select the sub-batch → one AdamW update on it.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use jester_data::tokenizer::TextTokenizer;
use jester_data::{Loader, LoaderCursor, LoaderOptions};

use super::collective::Collective;
use super::optim::{learning_rate, AdamW};
use super::order::training_order;
use super::scoring::{open_reference, reference_embeddings, Reference, StepCosts};
use crate::config::{TrainConfig, TrainMethod};
use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::input::{assemble, model_work, Example};
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
    /// Ground-truth noise kinds among the drawn and the selected examples (benchmarks only).
    pub noise_drawn: BTreeMap<String, u64>,
    pub noise_selected: BTreeMap<String, u64>,
    /// The trained examples' rows in the super-batch, in selection order (all B for uniform).
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

/// The training state a step advances: the learner, its optimizer, the reference, the pool's
/// loader, and the collective that links it to other processes.
pub struct Step {
    config: TrainConfig,
    device: Device,
    model: TwoTower,
    parameters: Vec<(String, Tensor)>,
    optimizer: AdamW,
    reference: Reference,
    loader: Loader<Example>,
    costs: StepCosts,
    /// B and the (rows, patch) parts of the trained batch: fixed by the config.
    super_batch: usize,
    parts: Vec<(usize, usize)>,
    collective: Box<dyn Collective>,
    loss_hook: Option<LossHook>,
    done: usize,
}

impl Step {
    /// A learner initialised from `config.seed` (or restored from `checkpoint`, a checkpoint
    /// folder, after `done` steps with the loader at `cursor`).
    pub fn new(
        config: TrainConfig,
        inputs: StepInputs,
        resume: Option<(&Path, usize, LoaderCursor)>,
        collective: Box<dyn Collective>,
    ) -> Result<Self> {
        config.validate()?;
        let reference = open_reference(
            inputs.reference,
            inputs.unfinished_reference,
            &inputs.shards,
            &config,
            inputs.device,
        )?;
        if config.method.scores()
            && config.score.needs_reference()
            && matches!(reference, Reference::None)
        {
            return Err(Error::invalid(
                "train",
                format!(
                    "method {} with the {} score needs a reference: pass --reference EMBEDDINGS \
                     (from `jester embed`) or --reference-model RUN",
                    config.method.name(),
                    config.score.name()
                ),
            ));
        }
        tch::manual_seed(config.seed as i64);
        let mut model = TwoTower::new(&config.model, inputs.device)?;
        model.set_precision(config.precision);
        let parameters = model.parameters();
        let mut optimizer = AdamW::new(&config.optim, &parameters, config.steps);
        let (done, cursor) = match resume {
            Some((checkpoint, done, cursor)) => {
                let weights = checkpoint.join("model.safetensors");
                model
                    .var_store_mut()
                    .load(&weights)
                    .map_err(|e| Error::Input {
                        path: weights.clone(),
                        what: format!("cannot restore the checkpoint's weights ({e})"),
                    })?;
                optimizer.load(&checkpoint.join("optimizer.safetensors"))?;
                (done, Some(cursor))
            }
            None => {
                let tensors: Vec<Tensor> =
                    parameters.iter().map(|(_, p)| p.shallow_clone()).collect();
                collective.broadcast_parameters(&tensors)?;
                (0, None)
            }
        };
        let loader_options = LoaderOptions {
            seed: config.seed,
            epochs: None,
            ..config.data.loader.clone()
        };
        let work = model_work(&config, inputs.tokenizer);
        let loader = Loader::new(inputs.shards, &loader_options, work, cursor)?;
        let costs = StepCosts::new(&config, &reference);
        let (super_batch, parts) = (config.super_batch(), config.train_parts());
        Ok(Self {
            config,
            device: inputs.device,
            model,
            parameters,
            optimizer,
            reference,
            loader,
            costs,
            super_batch,
            parts,
            collective,
            loss_hook: None,
            done,
        })
    }

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
    /// Steps completed.
    pub fn done(&self) -> usize {
        self.done
    }
    /// The pool loader's position (what a checkpoint saves).
    pub fn cursor(&self) -> &LoaderCursor {
        self.loader.cursor()
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
        let mut seconds = BTreeMap::new();
        let timer = Instant::now();
        let drawn = assemble(self.loader.next_batch(self.super_batch)?, device);
        seconds.insert("load".to_string(), elapsed(timer, device));
        let parts = &self.parts;

        let (batch, selected, score) = if config.method.scores() {
            let timer = Instant::now();
            let learner = self.model.embed(&drawn.tensors, config.score_patch())?;
            let learner = self.collective.gather_scoring(learner)?;
            let reference = reference_embeddings(&self.reference, &drawn, config, device)?
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
            let rows = training_order(&selection.indices, parts.len(), select_config.seed);
            let index = Tensor::from_slice(&rows).to_device(device);
            seconds.insert("select".to_string(), elapsed(timer, device));
            let score = if summarise {
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
            (drawn.tensors.select_rows(&index), selected, score)
        } else {
            let all = (0..drawn.keys.len()).collect();
            (shallow_clone(&drawn.tensors), all, None)
        };

        let timer = Instant::now();
        zero_grads(&self.parameters);
        let (image, text) = self.model.train_embeddings(&batch, parts)?;
        let (image, text) = self.collective.gather_for_loss(image, text)?;
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
        let gradients: Vec<Tensor> = self
            .parameters
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect();
        self.collective.all_reduce_gradients(&gradients)?;
        let norms = self
            .optimizer
            .step(&self.parameters, step)
            .map_err(|e| Error::NonFinite {
                step: step + 1,
                what: e.to_string(),
                checkpoint: None,
            })?;
        seconds.insert("step".to_string(), elapsed(timer, device));
        self.done = step + 1;

        let count = |rows: &mut dyn Iterator<Item = usize>| {
            let mut counts = BTreeMap::new();
            for row in rows {
                if let Some(kind) = &drawn.noise[row] {
                    *counts.entry(kind.clone()).or_default() += 1;
                }
            }
            counts
        };
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
            examples_drawn: drawn.keys.len() as u64,
            flops_train: self.costs.train,
            flops_score: self.costs.score,
            seconds,
            score,
            noise_drawn: count(&mut (0..drawn.noise.len())),
            noise_selected: count(&mut selected.iter().copied()),
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
