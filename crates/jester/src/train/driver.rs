//! The thin loop around the [`Step`] (docs/ARCHITECTURE.md): claim the run folder, set up or
//! resume, then step, with metrics, evaluations, checkpoints and the NaN guard at their cadences.
use std::collections::BTreeMap;
use std::path::Path;

use jester_data::expand_shards;
use jester_data::tokenizer::TextTokenizer;

pub use super::options::{Start, TrainOptions};
use super::ranks::{open_run, sync, Opened};
use super::step::{LossHook, Resume, Step, StepInputs, StepMetrics};
use crate::collective::{all_ok, from_lead, Collective, SingleProcess};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::eval::Evaluator;
use crate::run_dir::{
    save_checkpoint, EvalLine, EvalSpec, RunDir, RunState, StepLine, TrainSummary,
};

/// Opens the evaluator of a run's held-out set once its config and tokenizer are known
/// ([`crate::eval::open`] is the standard one).
pub type OpenEvaluator =
    dyn FnOnce(&EvalSpec, &TrainConfig, &TextTokenizer) -> Result<Box<dyn Evaluator>>;

/// What the loop plugs in from outside the training code: the link to other processes, the
/// evaluation, and a fault-injection hook for tests.
pub struct Seams {
    pub collective: Box<dyn Collective>,
    pub open_evaluator: Box<OpenEvaluator>,
    pub loss_hook: Option<LossHook>,
}

impl Seams {
    /// One process, evaluating with `open_evaluator`.
    pub fn single_process(open_evaluator: Box<OpenEvaluator>) -> Self {
        Self {
            collective: Box::new(SingleProcess),
            open_evaluator,
            loss_hook: None,
        }
    }
}

/// Hooks for progress display; every method has a do-nothing default.
pub trait Observer {
    fn started(&mut self, _config: &TrainConfig, _from_step: usize) {}
    fn stepped(&mut self, _metrics: &StepMetrics) {}
    fn logged(&mut self, _line: &StepLine) {}
    fn checkpointed(&mut self, _step: usize, _dir: &Path) {}
    fn evaluated(&mut self, _line: &EvalLine) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

/// Runs (or resumes) a training run to its last step.
///
/// In a data-parallel run (`seams.collective` spanning W processes) every rank calls this with the
/// same arguments: rank 0 owns the run folder (claim, config, tokenizer, metrics, evaluations,
/// checkpoints, summary) and sends the others what they need; `selection_groups` is set to W when
/// it is 1; only rank 0 reports to `observer`.
pub fn train(
    start: Start,
    options: &TrainOptions,
    seams: Seams,
    observer: &mut dyn Observer,
) -> Result<TrainSummary> {
    let collective = seams.collective;
    let lead = collective.rank() == 0;
    let shards = expand_shards(&options.data)?;
    let mut claim = None;
    let opened = from_lead(collective.as_ref(), "open the run", || {
        let (c, opened) = open_run(start, options, &shards, collective.world_size())?;
        claim = Some(c);
        Ok(opened)
    })?;
    let Opened {
        config,
        tokenizer,
        mut state,
        checkpoint: mut last_checkpoint,
    } = opened;
    let dir = RunDir::new(&options.out);
    let inputs = StepInputs {
        shards,
        tokenizer: &tokenizer,
        reference: &options.reference,
        unfinished_reference: options.unfinished_reference,
        device: options.device,
    };
    let resume = last_checkpoint.is_some().then(|| {
        let cursors = state.cursors();
        let mine = cursors.len() / collective.world_size();
        let first = collective.rank() * mine;
        Resume {
            checkpoint: last_checkpoint.as_deref().filter(|_| lead),
            done: state.step,
            cursors: cursors[first..first + mine].to_vec(),
        }
    });
    let mut step = Step::new(config.clone(), inputs, resume, collective)?;
    if let Some(hook) = seams.loss_hook {
        step.set_loss_hook(hook);
    }
    // Rank 0's own start-up (the folder's files cut back to the checkpoint, the evaluator, the
    // first evaluation), agreed by every rank before the first step's collectives.
    let mut evaluator: Option<Box<dyn Evaluator>> = None;
    let started = if lead {
        (|| -> Result<()> {
            dir.truncate_lines(RunDir::METRICS, state.step)?;
            // The evaluation after step S is written before checkpoint S, so it is kept on
            // resuming from S; a run resumed with no checkpoint evaluates its initialisation again.
            dir.truncate_lines(RunDir::EVAL, state.step)?;
            if let Some(spec) = &options.eval {
                evaluator = Some((seams.open_evaluator)(spec, &config, &tokenizer)?);
            }
            if state.step == 0 {
                evaluate(&mut evaluator, &dir, &step, &state, observer)?;
            }
            Ok(())
        })()
    } else {
        Ok(())
    };
    all_ok(step.collective(), started)?;

    let mut window = Window::default();
    let mut noise = (BTreeMap::new(), BTreeMap::new());
    let mut final_loss = f64::NAN;
    let mut selections = 0u64;
    if claim.is_some() {
        observer.started(&config, state.step);
    }
    while step.done() < config.steps {
        let index = step.done();
        let log_now =
            index == 0 || (index + 1) % config.log_every == 0 || index + 1 == config.steps;
        // The selection summary is for the metrics line, which only rank 0 writes.
        let metrics = step.run(log_now && lead).map_err(|e| match e {
            Error::NonFinite { step, what, .. } => Error::NonFinite {
                step,
                what,
                checkpoint: last_checkpoint.clone(),
            },
            other => other,
        })?;
        final_loss = metrics.update.loss;
        state.step = metrics.step;
        state.examples_seen += metrics.examples_trained;
        state.examples_drawn += metrics.examples_drawn;
        state.flops_train += metrics.flops_train;
        state.flops_score += metrics.flops_score;
        add_all(&mut state.seconds, &metrics.seconds);
        // This rank's noise counts wait for the next sync, where every rank's are summed.
        add_all(&mut noise.0, &metrics.noise_drawn);
        add_all(&mut noise.1, &metrics.noise_selected);
        window.add(&metrics);
        let eval_now = config.eval_every > 0 && state.step % config.eval_every == 0;
        let cadence = config.checkpoint_every > 0 && state.step % config.checkpoint_every == 0;
        let checkpoint_now = cadence || state.step == config.steps;
        if config.method.scores() {
            // Every rank computes the same global selection: a running hash, compared at syncs.
            selections = selection_hash(selections, &metrics.selected);
        }
        if log_now || checkpoint_now {
            let report = std::mem::take(&mut noise);
            let synced = sync(&step, report, std::mem::take(&mut selections), state.step)?;
            state.set_cursors(synced.cursors);
            add_all(&mut state.noise_drawn, &synced.noise_drawn);
            add_all(&mut state.noise_selected, &synced.noise_selected);
            add_all(&mut window.noise_drawn, &synced.noise_drawn);
            add_all(&mut window.noise_selected, &synced.noise_selected);
        }
        if lead {
            observer.stepped(&metrics);
        }
        let eval_now = eval_now || state.step == config.steps;
        if log_now || eval_now || checkpoint_now {
            // Rank 0's files (metrics line, evaluation, checkpoint), agreed by every rank: a
            // failure there stops every rank now, with its message, not at the next collective's
            // timeout.
            let written = if lead {
                (|| -> Result<()> {
                    if log_now {
                        let line = window.line(&metrics, &state, state.skipped().total());
                        dir.append_line(RunDir::METRICS, &line)?;
                        observer.logged(&line);
                        window = Window::default();
                    }
                    if eval_now {
                        evaluate(&mut evaluator, &dir, &step, &state, observer)?;
                    }
                    if checkpoint_now {
                        let keep = config.keep_checkpoints;
                        let saved = save_checkpoint(dir.path(), &state, keep, |temp| {
                            step.model().save(&temp.join("model.safetensors"))?;
                            step.optimizer().save(&temp.join("optimizer.safetensors"))
                        })?;
                        observer.checkpointed(state.step, &saved);
                        last_checkpoint = Some(saved);
                    }
                    Ok(())
                })()
            } else {
                Ok(())
            };
            all_ok(step.collective(), written)?;
        }
        // A fresh run whose first step completed (its lines written) is a run: from here on a
        // failure leaves the folder to resume. Before, a failure removes what the start wrote.
        if let Some(claim) = &mut claim {
            claim.started();
        }
    }
    let (train_flops, score_flops, uniform_flops) = step.flops();
    let wall: f64 = state.seconds.values().sum();
    let summary = TrainSummary {
        method: config.method,
        steps: config.steps,
        batch: config.batch,
        super_batch: config.super_batch(),
        parameters: step.model().parameter_count(),
        examples_seen: state.examples_seen,
        examples_drawn: state.examples_drawn,
        flops_train: state.flops_train,
        flops_score: state.flops_score,
        cost_vs_uniform: (train_flops + score_flops) / uniform_flops,
        final_loss,
        seconds: state.seconds.clone(),
        steps_per_second: state.step as f64 / wall.max(1e-9),
        skipped: state.skipped(),
        noise_drawn: state.noise_drawn.clone(),
        noise_selected: state.noise_selected.clone(),
    };
    if lead {
        dir.write_model(step.model())?;
        dir.write_summary(&summary)?;
    }
    // No rank reports success before rank 0 has written the run's results.
    step.collective().barrier()?;
    Ok(summary)
}

/// `hash` with one step's selected super-batch rows folded in (FNV-1a over their bytes).
fn selection_hash(hash: u64, selected: &[usize]) -> u64 {
    let start = if hash == 0 {
        0xcbf2_9ce4_8422_2325
    } else {
        hash
    };
    selected
        .iter()
        .flat_map(|&i| (i as u64).to_le_bytes())
        .fold(start, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

fn add_all<V: Copy + std::ops::AddAssign + Default>(
    total: &mut BTreeMap<String, V>,
    part: &BTreeMap<String, V>,
) {
    for (key, &value) in part {
        *total.entry(key.clone()).or_default() += value;
    }
}

/// Appends an evaluation of `step`'s model to `eval.jsonl` (rank 0, when the run has an eval set).
fn evaluate(
    evaluator: &mut Option<Box<dyn Evaluator>>,
    dir: &RunDir,
    step: &Step,
    state: &RunState,
    observer: &mut dyn Observer,
) -> Result<()> {
    let Some(evaluator) = evaluator else {
        return Ok(());
    };
    let line = EvalLine {
        step: state.step,
        examples_seen: state.examples_seen,
        flops_train: state.flops_train,
        flops_score: state.flops_score,
        flops_total: state.flops_train + state.flops_score,
        wall_seconds: state.seconds.values().sum::<f64>(),
        eval: evaluator.evaluate(step.model())?,
    };
    dir.append_line(RunDir::EVAL, &line)?;
    observer.evaluated(&line);
    Ok(())
}

/// The steps since the previous metrics line.
#[derive(Default)]
struct Window {
    steps: usize,
    seconds: BTreeMap<String, f64>,
    /// Every rank's noise counts, added at each sync (a metrics line is always one).
    noise_drawn: BTreeMap<String, u64>,
    noise_selected: BTreeMap<String, u64>,
}

impl Window {
    fn add(&mut self, metrics: &StepMetrics) {
        self.steps += 1;
        add_all(&mut self.seconds, &metrics.seconds);
    }

    /// The metrics line after `last`: its own numbers, the run's totals, this window's means.
    fn line(&self, last: &StepMetrics, state: &RunState, skipped: u64) -> StepLine {
        let n = self.steps.max(1) as f64;
        StepLine {
            step: last.step,
            update: last.update.clone(),
            examples_seen: state.examples_seen,
            examples_drawn: state.examples_drawn,
            flops_train: state.flops_train,
            flops_score: state.flops_score,
            flops_total: state.flops_train + state.flops_score,
            seconds_per_step: self
                .seconds
                .iter()
                .map(|(k, v)| (k.clone(), v / n))
                .collect(),
            wall_seconds: state.seconds.values().sum(),
            score: last.score.clone(),
            noise_superbatch: fractions(&self.noise_drawn),
            noise_selected: fractions(&self.noise_selected),
            skipped,
        }
    }
}

fn fractions(counts: &BTreeMap<String, u64>) -> Option<BTreeMap<String, f64>> {
    let total: u64 = counts.values().sum();
    (total > 0).then(|| {
        counts
            .iter()
            .map(|(k, &v)| (k.clone(), v as f64 / total as f64))
            .collect()
    })
}
