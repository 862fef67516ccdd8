//! The thin loop around the step (docs/ARCHITECTURE.md): set-up or resume, then per step draw → score →
//! select → train, with metrics, checkpoints and the NaN guard at their cadences.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use tch::{Device, Tensor};

use jester_data::tokenizer::TextTokenizer;
use jester_data::{expand_shards, Loader, LoaderOptions, SkipCounts};

use super::batch::{assemble, model_work, Example};
use super::checkpoint::{
    latest_checkpoint, read_config, read_state, save_checkpoint, save_model_atomic, write_atomic,
    RunState, Unfinished,
};
use super::config::{TrainConfig, TrainMethod};
use super::folder::RunFolder;
use super::inputs::RunInputs;
use super::optim::{learning_rate, AdamW};
use super::order::training_order;
use super::scoring::{open_reference, reference_embeddings, Reference, ReferenceSource, StepCosts};
use super::setup::set_up;
use super::window::{count_noise, fractions, Window};
use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::eval::EvalSet;
use crate::loss::LossKind;
use crate::model::{BatchTensors, TwoTower};
use crate::select::{batch_score, select, uniform_batch_score, Method, ScoreKind, SelectConfig};

/// How a run starts.
pub enum Start {
    /// A new run with this config in an empty (or new) folder.
    Fresh(Box<TrainConfig>),
    /// Continue the run in the folder from its newest checkpoint, with its saved config.
    Resume,
}

/// What a run needs besides its config.
pub struct TrainOptions {
    pub out: PathBuf,
    /// Shard specs: files, folders, globs, brace ranges.
    pub data: Vec<String>,
    pub reference: ReferenceSource,
    /// Whether a reference run without final weights may be used (its newest checkpoint).
    pub unfinished_reference: Unfinished,
    pub device: Device,
    /// A held-out set evaluated before the first step, every `eval_every` steps and at the end.
    pub eval: Option<EvalSpec>,
}

/// Where a run's held-out set is.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct EvalSpec {
    pub data: Vec<String>,
    /// A `classes.json` for zero-shot classification.
    pub classes: Option<PathBuf>,
}

/// Hooks for progress display; every method has a do-nothing default.
pub trait Observer {
    fn started(&mut self, _config: &TrainConfig, _from_step: usize) {}
    fn stepped(&mut self, _step: usize, _loss: f64) {}
    fn logged(&mut self, _line: &serde_json::Value) {}
    fn checkpointed(&mut self, _step: usize, _dir: &Path) {}
    fn evaluated(&mut self, _line: &serde_json::Value) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

/// The totals of a finished run (`summary.json`).
#[derive(Clone, Debug, Serialize)]
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
    pub noise_drawn: BTreeMap<String, u64>,
    pub noise_selected: BTreeMap<String, u64>,
}

/// Runs (or resumes) a training run to its last step.
pub fn train(
    start: Start,
    options: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<TrainSummary> {
    let out = &options.out;
    let mut folder = match start {
        Start::Fresh(_) => RunFolder::fresh(out)?,
        Start::Resume => RunFolder::existing(out)?,
    };
    let shards = expand_shards(&options.data)?;
    let (config, tokenizer) = match start {
        Start::Fresh(config) => {
            RunInputs::of(
                &options.data,
                &options.reference,
                &options.eval,
                options.unfinished_reference == Unfinished::Allow,
            )
            .write(out)?;
            set_up(*config, out, &shards, &options.reference)?
        }
        Start::Resume => {
            let config = read_config(out)?;
            let path = out.join("tokenizer.json");
            (config, TextTokenizer::from_file(&path)?)
        }
    };
    config.validate()?;
    let reference = open_reference(
        &options.reference,
        options.unfinished_reference,
        &shards,
        &config,
        options.device,
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
    let mut model = TwoTower::new(&config.model, options.device)?;
    model.set_precision(config.precision);
    let parameters = model.parameters();
    let mut optimizer = AdamW::new(&config.optim, &parameters, config.steps);
    let mut state = RunState::default();
    let mut last_checkpoint = None;
    if let Some(checkpoint) = latest_checkpoint(out)? {
        let weights = checkpoint.join("model.safetensors");
        model
            .var_store_mut()
            .load(&weights)
            .map_err(|e| Error::Input {
                path: weights.clone(),
                what: format!("cannot restore the checkpoint's weights ({e})"),
            })?;
        optimizer.load(&checkpoint.join("optimizer.safetensors"))?;
        state = read_state(&checkpoint)?;
        last_checkpoint = Some(checkpoint);
    }
    let metrics_path = out.join("metrics.jsonl");
    truncate_metrics(&metrics_path, state.step)?;
    let eval_path = out.join("eval.jsonl");
    // The evaluation after step S is written before checkpoint S, so it is kept on resuming from
    // S; a run resumed with no checkpoint evaluates its initialisation again, so none is kept.
    if state.step == 0 {
        write_atomic(&eval_path, b"")?;
    } else {
        truncate_metrics(&eval_path, state.step)?;
    }
    let eval_set = match &options.eval {
        Some(spec) => Some(EvalSet::load(
            &spec.data,
            spec.classes.as_deref(),
            &config,
            &tokenizer,
        )?),
        None => None,
    };
    let evaluate =
        |model: &TwoTower, state: &RunState, observer: &mut dyn Observer| -> Result<()> {
            let Some(set) = &eval_set else { return Ok(()) };
            let metrics = set.evaluate(model)?;
            let line = json!({
                "step": state.step,
                "examples_seen": state.examples_seen,
                "flops_train": state.flops_train,
                "flops_score": state.flops_score,
                "flops_total": state.flops_train + state.flops_score,
                "wall_seconds": state.seconds.values().sum::<f64>(),
                "eval": metrics,
            });
            append_line(&eval_path, &line)?;
            observer.evaluated(&line);
            Ok(())
        };
    if state.step == 0 {
        evaluate(&model, &state, observer)?;
    }
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|source| Error::Io {
            path: metrics_path.clone(),
            source,
        })?;

    let loader_options = LoaderOptions {
        seed: config.seed,
        epochs: None,
        ..config.data.loader.clone()
    };
    let work = model_work(&config, &tokenizer);
    let mut loader: Loader<Example> =
        Loader::new(shards, &loader_options, work, Some(state.cursor.clone()))?;

    let costs = StepCosts::new(&config, &reference);
    let fault_step = fault_injection();
    let super_batch = config.super_batch();
    let parts = config.train_parts();
    let mut window = Window::default();
    let mut final_loss = f64::NAN;
    folder.started();
    observer.started(&config, state.step);
    for step in state.step..config.steps {
        let timer = Instant::now();
        let drawn = assemble(loader.next_batch(super_batch)?, options.device);
        let load = seconds(timer, options.device);
        let log_now = step == 0 || (step + 1) % config.log_every == 0 || step + 1 == config.steps;

        let (batch, selected, scores) = if config.method.scores() {
            let timer = Instant::now();
            let learner = model.embed(&drawn.tensors, config.score_patch())?;
            let reference = reference_embeddings(&reference, &drawn, &config, options.device)?;
            window.add("score", seconds(timer, options.device));
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
            let selection = select(&learner, reference.as_ref(), config.batch, &select_config)?;
            let rows = training_order(&selection.indices, parts.len(), select_config.seed);
            let index = Tensor::from_slice(&rows).to_device(options.device);
            window.add("select", seconds(timer, options.device));
            let scores = if log_now {
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
            (drawn.tensors.select_rows(&index), selected, scores)
        } else {
            let all = (0..drawn.keys.len()).collect();
            (drawn.tensors.shallow_clone(), all, None)
        };

        let timer = Instant::now();
        let (loss, norms) = {
            zero_grads(&parameters);
            let mut loss = model.loss(&batch, &parts)?;
            if fault_step == Some(step + 1) {
                loss *= f64::NAN;
            }
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(Error::NonFinite {
                    step: step + 1,
                    what: format!("the training loss is {value}"),
                    checkpoint: last_checkpoint,
                });
            }
            loss.backward();
            let norms = optimizer
                .step(&parameters, step)
                .map_err(|e| Error::NonFinite {
                    step: step + 1,
                    what: e.to_string(),
                    checkpoint: last_checkpoint.clone(),
                })?;
            (value, norms)
        };
        window.add("step", seconds(timer, options.device));
        window.add("load", load);
        window.steps += 1;
        final_loss = loss;

        state.step = step + 1;
        state.cursor = loader.cursor().clone();
        state.examples_seen += config.batch as u64;
        state.examples_drawn += drawn.keys.len() as u64;
        state.flops_train += costs.train;
        state.flops_score += costs.score;
        for (name, value) in &window.pending_seconds {
            *state.seconds.entry(name.clone()).or_default() += value;
        }
        window.pending_seconds.clear();
        count_noise(
            &drawn.noise,
            0..drawn.noise.len(),
            &mut window.noise_drawn,
            &mut state.noise_drawn,
        );
        count_noise(
            &drawn.noise,
            selected.iter().copied(),
            &mut window.noise_selected,
            &mut state.noise_selected,
        );
        observer.stepped(state.step, loss);

        if log_now {
            let line = json!({
                "step": state.step,
                "loss": loss,
                "lr": learning_rate(&config.optim, step, config.steps),
                "t": model.temperature().double_value(&[]),
                "b": model.bias().double_value(&[]),
                "grad_norm": norms.grad_norm,
                "param_norm": norms.param_norm,
                "examples_seen": state.examples_seen,
                "examples_drawn": state.examples_drawn,
                "flops_train": state.flops_train,
                "flops_score": state.flops_score,
                "flops_total": state.flops_train + state.flops_score,
                "seconds_per_step": window.mean_seconds(),
                "wall_seconds": state.seconds.values().sum::<f64>(),
                "score": scores,
                "noise_superbatch": fractions(&window.noise_drawn),
                "noise_selected": fractions(&window.noise_selected),
                "skipped": loader.cursor().skipped.total(),
            });
            writeln!(metrics, "{line}")
                .and_then(|_| metrics.flush())
                .map_err(|source| Error::Io {
                    path: metrics_path.clone(),
                    source,
                })?;
            observer.logged(&line);
            window = Window::default();
        }
        let eval_now = config.eval_every > 0 && state.step % config.eval_every == 0;
        if eval_now || state.step == config.steps {
            evaluate(&model, &state, observer)?;
        }
        let cadence = config.checkpoint_every > 0 && state.step % config.checkpoint_every == 0;
        if cadence || state.step == config.steps {
            let dir = save_checkpoint(out, &model, &optimizer, &state, config.keep_checkpoints)?;
            observer.checkpointed(state.step, &dir);
            last_checkpoint = Some(dir);
        }
    }
    save_model_atomic(&model, &out.join("model.safetensors"))?;
    let wall: f64 = state.seconds.values().sum();
    let summary = TrainSummary {
        method: config.method,
        steps: config.steps,
        batch: config.batch,
        super_batch,
        parameters: model.parameter_count(),
        examples_seen: state.examples_seen,
        examples_drawn: state.examples_drawn,
        flops_train: state.flops_train,
        flops_score: state.flops_score,
        cost_vs_uniform: (costs.train + costs.score) / costs.uniform,
        final_loss,
        seconds: state.seconds.clone(),
        steps_per_second: state.step as f64 / wall.max(1e-9),
        skipped: loader.cursor().skipped.clone(),
        noise_drawn: state.noise_drawn.clone(),
        noise_selected: state.noise_selected.clone(),
    };
    write_atomic(
        &out.join("summary.json"),
        &serde_json::to_vec_pretty(&summary).expect("summary serialises"),
    )?;
    Ok(summary)
}

/// Mean score per example (learnability when a reference is there, else the learner's loss) of
/// the selected batch and of a uniform batch of the same size from the same super-batch.
fn score_summary(
    learner: &PairEmbeddings,
    reference: Option<&PairEmbeddings>,
    index: &tch::Tensor,
    batch: usize,
) -> Result<serde_json::Value> {
    let kind = if reference.is_some() {
        ScoreKind::Learnability
    } else {
        ScoreKind::HardLearner
    };
    let block = 1024;
    let selected = batch_score(kind, LossKind::Sigmoid, learner, reference, index, block)?;
    let uniform = uniform_batch_score(kind, LossKind::Sigmoid, learner, reference, batch, block)?;
    Ok(json!({"kind": kind.name(), "selected": selected, "uniform": uniform}))
}

fn zero_grads(parameters: &[(String, tch::Tensor)]) {
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

fn seconds(since: Instant, device: Device) -> f64 {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
    since.elapsed().as_secs_f64()
}

/// Keeps only the complete metrics lines of steps ≤ `step` (a resumed run rewrites the rest).
fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut kept = String::new();
    for line in text.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if value["step"].as_u64().is_some_and(|s| s as usize <= step) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    write_atomic(path, kept.as_bytes())
}

/// Test hook: `JESTER_FAULT_NAN_AT_STEP=N` poisons the loss of step N (1-based), so the NaN guard
/// can be tested end to end.
fn fault_injection() -> Option<usize> {
    std::env::var("JESTER_FAULT_NAN_AT_STEP").ok()?.parse().ok()
}

impl BatchTensors {
    fn shallow_clone(&self) -> Self {
        Self {
            images: self.images.shallow_clone(),
            ids: self.ids.shallow_clone(),
            last: self.last.shallow_clone(),
        }
    }
}

/// Appends one JSON line and flushes it.
fn append_line(path: &Path, line: &serde_json::Value) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    writeln!(file, "{line}").map_err(io)
}
