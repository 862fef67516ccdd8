//! `jester train` and `jester embed`.
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use jester::config::{TrainConfig, TrainMethod};
use jester::eval::EvalSpec;
use jester::run_dir::{load_trained, RunDir, RunInputs, StepLine, TrainSummary, Unfinished};
use jester::train::{train, Observer, Seams, Start, StepMetrics, TrainOptions};

use crate::output::write_json;
use crate::select::parse_device;
use crate::Processes;
use jester::collective::{from_lead, Collective};

#[derive(Args)]
pub struct TrainArgs {
    /// Training shards: folders, files, globs or brace ranges (a `jester data` folder's `pool`).
    #[arg(long, num_args = 1..)]
    data: Vec<String>,
    /// The run folder (config, tokenizer, metrics, checkpoints, weights).
    #[arg(long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// A preset (tiny, small, b16) or a TOML file (optionally naming `preset = "..."` to start from).
    #[arg(long, default_value = "tiny")]
    config: String,
    /// Overrides, e.g. `--set optim.lr=3e-4 --set model.image.depth=4`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    // The flags below are the settings users type daily; every other setting is `--set KEY=VALUE`
    // (e.g. `score=hard-learner`, `filter_ratio=0.9`, `eval_every=100`; see the README).
    #[arg(long)]
    method: Option<TrainMethod>,
    /// N, chunks of joint selection.
    #[arg(long)]
    chunks: Option<usize>,
    /// b, examples trained per step.
    #[arg(long)]
    batch: Option<usize>,
    /// Cached reference embeddings from `jester embed` (looked up by sample key).
    #[arg(long, conflicts_with = "reference_model")]
    reference: Option<PathBuf>,
    /// A trained reference run, scored online at every step instead of from a cache.
    #[arg(long)]
    reference_model: Option<PathBuf>,
    /// Use a --reference-model run that has not finished (its newest checkpoint).
    #[arg(long, requires = "reference_model")]
    allow_unfinished: bool,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// A held-out shard set evaluated during training (zero-shot with --classes, retrieval).
    #[arg(long, num_args = 1..)]
    eval: Vec<String>,
    /// The zero-shot `classes.json` (default: `classes.json` in the --eval folder, if there).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Continue the run in this folder from its newest checkpoint (same config and data).
    #[arg(long, conflicts_with_all = ["out", "config", "set", "method", "steps"])]
    resume: Option<PathBuf>,
    /// If --out already holds a run, continue it (its saved config and inputs) instead of refusing:
    /// the same command line then starts and restarts a run (torchrun --max-restarts).
    #[arg(long, requires = "out")]
    auto_resume: bool,
    /// auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
}

/// `--allow-unfinished` as the library's choice.
pub fn unfinished(allow: bool) -> Unfinished {
    if allow {
        Unfinished::Allow
    } else {
        Unfinished::Refuse
    }
}

/// The device of a process: under torchrun, `auto` is this rank's GPU (LOCAL_RANK) when CUDA is
/// there, else the CPU, and `cuda` is this rank's GPU.
pub fn process_device(name: &str, processes: Option<&Processes>) -> Result<tch::Device> {
    match processes {
        Some(p) if name == "auto" => Ok(if tch::Cuda::is_available() {
            parse_device(&format!("cuda:{}", p.local_rank))?
        } else {
            tch::Device::Cpu
        }),
        Some(p) if name == "cuda" => parse_device(&format!("cuda:{}", p.local_rank)),
        Some(p) if name.starts_with("cuda:") && p.collective.world_size() > 1 => bail!(
            "--device {name}: under torchrun every rank uses its own GPU (cuda:LOCAL_RANK); pass \
             --device auto or cuda, and choose GPUs with CUDA_VISIBLE_DEVICES"
        ),
        _ => parse_device(name),
    }
}

pub fn run(args: TrainArgs, processes: Option<Processes>) -> Result<()> {
    let device = process_device(&args.device, processes.as_ref())?;
    // The run folder is rank 0's: other machines may not see it.
    let single = jester::collective::SingleProcess;
    let collective = processes
        .as_ref()
        .map_or(&single as &dyn Collective, |p| p.collective.as_ref());
    let existing = match (&args.resume, &args.out) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(out)) if args.auto_resume => {
            let out = out.clone();
            from_lead(collective, "look for a run in --out", || {
                Ok(RunDir::new(&out).join(RunDir::CONFIG).exists())
            })?
            .then_some(out)
        }
        _ => None,
    };
    let (start, out, inputs) = if let Some(dir) = existing {
        let mut inputs = from_lead(collective, "read the run's inputs", || {
            RunDir::new(&dir).inputs()
        })?;
        if !args.data.is_empty() {
            inputs.data = args.data.clone();
        }
        (Start::Resume, dir, inputs)
    } else {
        let mut config = TrainConfig::load(&args.config, &args.set)?;
        if let Some(m) = args.method {
            config.method = m;
        }
        if let Some(n) = args.chunks {
            config.chunks = n;
        }
        if let Some(b) = args.batch {
            config.batch = b;
        }
        if let Some(s) = args.steps {
            config.steps = s;
        }
        if let Some(s) = args.seed {
            config.seed = s;
        }
        if let Some(k) = args.checkpoint_every {
            config.checkpoint_every = k;
        }
        if args.data.is_empty() {
            bail!("--data is required: the training shards (e.g. a `jester data synth` folder's pool)");
        }
        let out = args
            .out
            .clone()
            .expect("clap requires --out without --resume");
        // The library creates, locks and writes the run folder (inputs.json included).
        let inputs = RunInputs {
            data: args.data.clone(),
            reference: args.reference.clone(),
            reference_model: args.reference_model.clone(),
            eval: EvalSpec::new(&args.eval, args.classes.clone()),
            allow_unfinished_reference: args.allow_unfinished,
        };
        (Start::Fresh(Box::new(config)), out, inputs)
    };
    let options = TrainOptions {
        out: out.clone(),
        reference: inputs.reference_source(),
        unfinished_reference: unfinished(inputs.allow_unfinished_reference),
        data: inputs.data,
        device,
        eval: inputs.eval,
    };
    let mut progress = Progress::new();
    let mut seams = Seams::single_process(Box::new(jester::eval::open));
    let lead = processes.as_ref().is_none_or(|p| p.collective.rank() == 0);
    if let Some(p) = processes {
        tracing::info!(
            "rank {} of {} on {device:?}",
            p.collective.rank(),
            p.collective.world_size()
        );
        seams.collective = p.collective;
    }
    let summary = train(start, &options, seams, &mut progress)?;
    progress.finish();
    if lead {
        report(&summary, &out);
    }
    Ok(())
}

fn report(summary: &TrainSummary, out: &Path) {
    eprintln!(
        "{} steps of {} (b = {}, B = {}): final loss {:.4}, {:.2} steps/s, {:.3e} FLOPs ({:.2}× uniform per step); {} samples skipped",
        summary.steps,
        summary.method.name(),
        summary.batch,
        summary.super_batch,
        summary.final_loss,
        summary.steps_per_second,
        summary.flops_train + summary.flops_score,
        summary.cost_vs_uniform,
        summary.skipped.total(),
    );
    eprintln!("run folder: {}", out.display());
}

/// A progress bar on a terminal; log lines otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new() -> Self {
        Self { bar: None }
    }
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// A run's bar is finished however the run ends (an experiment drops each run's observer).
impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Observer for Progress {
    fn started(&mut self, config: &TrainConfig, from_step: usize) {
        tracing::info!(
            "training {} for {} steps (b = {}, B = {}){}",
            config.method.name(),
            config.steps,
            config.batch,
            config.super_batch(),
            if from_step > 0 {
                format!(", resuming after step {from_step}")
            } else {
                String::new()
            }
        );
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(config.steps as u64).with_position(from_step as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps, ETA {eta} {msg}",
                )
                .expect("template"),
            );
            self.bar = Some(bar);
        }
    }
    fn stepped(&mut self, metrics: &StepMetrics) {
        if let Some(bar) = &self.bar {
            bar.set_position(metrics.step as u64);
            bar.set_message(format!("loss {:.4}", metrics.update.loss));
        }
    }
    fn logged(&mut self, line: &StepLine) {
        if self.bar.is_none() {
            tracing::info!(
                "step {} loss {:.4} lr {:.2e} t {:.2} b {:.2} grad {:.3}",
                line.step,
                line.update.loss,
                line.update.lr,
                line.update.t,
                line.update.b,
                line.update.grad_norm,
            );
        }
    }
    fn checkpointed(&mut self, step: usize, dir: &Path) {
        if self.bar.is_none() {
            tracing::info!("checkpoint at step {step}: {}", dir.display());
        }
    }
}

#[derive(Args)]
pub struct EmbedArgs {
    /// A trained run folder (`jester train --out`).
    #[arg(long)]
    model: PathBuf,
    /// The shards to embed (e.g. the pool the learner will train on).
    #[arg(long, num_args = 1.., required = true)]
    data: Vec<String>,
    /// The embeddings file to write (safetensors; keys and provenance in its metadata).
    #[arg(long)]
    out: PathBuf,
    /// Embed with a run that has not finished (its newest checkpoint) instead of refusing.
    #[arg(long)]
    allow_unfinished: bool,
    #[arg(long, default_value_t = 512)]
    batch: usize,
    #[arg(long, default_value = "auto")]
    device: String,
}

pub fn embed(args: EmbedArgs, processes: Option<Processes>) -> Result<()> {
    let device = process_device(&args.device, processes.as_ref())?;
    let single = jester::collective::SingleProcess;
    let collective: &dyn jester::collective::Collective = processes
        .as_ref()
        .map_or(&single, |p| p.collective.as_ref());
    let lead = collective.rank() == 0;
    let trained = load_trained(&args.model, device, unfinished(args.allow_unfinished))?;
    tracing::info!("embedding with {}", trained.weights.display());
    let bar = (lead && std::io::stderr().is_terminal())
        .then(|| ProgressBar::new_spinner().with_message("samples embedded"));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let summary = jester::embed::embed_shards(
        &trained,
        &args.data,
        &args.out,
        args.batch,
        workers,
        collective,
        |n| {
            if let Some(bar) = &bar {
                bar.set_position(n as u64);
            }
        },
    )?;
    if let Some(bar) = bar {
        bar.finish();
    }
    if !lead {
        return Ok(());
    }
    eprintln!(
        "{} samples embedded (D = {}, t = {:.3}, b = {:.3}) into {}; {}{}",
        summary.samples,
        summary.dim,
        summary.t,
        summary.b,
        args.out.display(),
        summary.skipped,
        if summary.skipped.get(jester_data::SkipReason::DuplicateKey) > 0 {
            " (of a repeated key, the copy read first is embedded; the cache holds each key once)"
        } else {
            ""
        }
    );
    Ok(())
}

#[derive(Args)]
pub struct EvalArgs {
    /// A trained run folder.
    model: PathBuf,
    /// The held-out shards.
    #[arg(long, num_args = 1.., required = true)]
    data: Vec<String>,
    /// The zero-shot `classes.json` (default: `classes.json` in the --data folder, if there).
    #[arg(long)]
    classes: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Also write the metrics as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    // Evaluating a run in progress is ordinary; which checkpoint is used is logged.
    let trained = load_trained(&args.model, device, Unfinished::Allow)?;
    let spec = EvalSpec::new(&args.data, args.classes).expect("clap requires --data");
    let set = jester::eval::EvalSet::load(
        &spec.data,
        spec.classes.as_deref(),
        &trained.config,
        &trained.tokenizer,
    )?;
    let metrics = set.evaluate(&trained.model)?;
    println!("{}", serde_json::to_string_pretty(&metrics)?);
    if spec.classes.is_none() {
        eprintln!("no classes.json given or found beside the data: zero-shot skipped");
    }
    if metrics.zero_shot_tied_classes > 0 {
        eprintln!(
            "{} classes tokenise to the same prompts as another class: the model cannot tell them \
             apart, so each counts as right for the other (zero_shot_tied_classes); give them \
             distinct names to classify them apart",
            metrics.zero_shot_tied_classes
        );
    }
    if let Some(out) = &args.out {
        write_json(out, &metrics)?;
    }
    Ok(())
}
