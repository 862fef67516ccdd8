//! `jester experiment RECIPE.toml` and `jester demo`: the paper's comparisons side by side — one
//! benchmark, references trained on its curated sets and cached, every run of the recipe with the
//! same seed and budget, evaluated on the same held-out set — then `report.md`, `curves.png` and
//! `summary.json`. Every finished part is kept: a rerun skips it and resumes an unfinished run.
//!
//! ```text
//! OUT/recipe.toml                  the recipe as run (with the settings applied)
//! OUT/report.md, curves.png, summary.json
//! WORK/data-HASH/                  the benchmark (generated unless the recipe names a folder)
//! WORK/reference-LEVEL-HASH/       a reference run on curated-LEVEL, and its cached pool
//! WORK/reference-LEVEL-HASH-pool.safetensors   embeddings
//! WORK/runs/METHOD-HASH/           each run of the recipe
//! ```
//! WORK is OUT unless `--work` names a folder shared by several experiments: parts are keyed by a
//! hash of everything that determines them (resolved config, data, reference), so recipes that
//! share a run (uniform, or JEST at f = 0.8) train it once.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use jester::lock::Lock;
use jester::select::ScoreKind;
use jester::train::{
    load_trained, train, EvalSpec, ReferenceSource, Start, TrainConfig, TrainMethod, TrainOptions,
    Unfinished,
};
use jester_data::benchmark::fashion_mnist::{self, FashionMnistConfig};
use jester_data::benchmark::synthetic::{self, SyntheticConfig};

use crate::output::{with_overrides, write_atomic};
use crate::report;
use crate::select::parse_device;
use crate::train::{load_config, Progress};

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
    /// The main metric: `zero_shot_top1` or `retrieval_r1` (mean of both directions).
    #[serde(default = "default_metric")]
    pub metric: String,
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
    /// The curated set references train on by default: strong, moderate or weak.
    #[serde(default = "strong")]
    pub curated: String,
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
    pub curated: Option<String>,
    #[serde(default)]
    pub set: Vec<String>,
}

fn tiny() -> String {
    "tiny".into()
}
fn strong() -> String {
    "strong".into()
}
fn default_metric() -> String {
    "zero_shot_top1".into()
}
fn default_evals() -> usize {
    20
}

impl Recipe {
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let recipe: Recipe = toml::from_str(text)?;
        recipe.validate()?;
        Ok(recipe)
    }

    fn validate(&self) -> Result<()> {
        if self.runs.is_empty() {
            bail!("the recipe has no [[runs]]");
        }
        if !["zero_shot_top1", "retrieval_r1"].contains(&self.metric.as_str()) {
            bail!(
                "metric {:?}: expected zero_shot_top1 or retrieval_r1",
                self.metric
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for run in &self.runs {
            if !names.insert(&run.name) {
                bail!("two runs are named {:?}", run.name);
            }
            for level in run.curated.iter().chain([&self.reference.curated]) {
                if !["strong", "moderate", "weak"].contains(&level.as_str()) {
                    bail!("curated {level:?}: expected strong, moderate or weak");
                }
            }
        }
        let mut seeds = self.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        if seeds.len() != self.seeds.len() {
            bail!("seeds {:?} repeat a seed", self.seeds);
        }
        if self.evals == 0 {
            bail!("evals must be ≥ 1: runs are compared on their evaluations");
        }
        if !self.runs.iter().any(|r| r.method == TrainMethod::Uniform) {
            bail!("the recipe needs a uniform run: targets are uniform's final score");
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct ExperimentArgs {
    /// The recipe (see configs/experiments/).
    recipe: PathBuf,
    /// Output folder (default: results/RECIPE-NAME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Add the recipe's `quick_set` (a short budget).
    #[arg(long)]
    quick: bool,
    /// A folder for the trained parts, shared between experiments (default: the output folder).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Extra settings for every run, after the recipe's.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Report this main metric instead of the recipe's. The runs do not depend on it, so with the
    /// recipe's `--work` folder a finished experiment is re-reported without training; give a new
    /// `--out`.
    #[arg(long, value_parser = ["zero_shot_top1", "retrieval_r1"])]
    metric: Option<String>,
}

pub fn run(args: ExperimentArgs) -> Result<()> {
    let mut recipe = Recipe::read(&args.recipe)?;
    if let Some(metric) = &args.metric {
        recipe.metric = metric.clone();
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(&recipe.name));
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let work = args.work.clone().unwrap_or_else(|| out.clone());
    run_recipe(
        recipe,
        &out,
        &work,
        args.quick,
        &args.set,
        &args.device,
        &command,
    )
}

/// Runs (or finishes) `recipe` into `out` and writes the report.
pub fn run_recipe(
    mut recipe: Recipe,
    out: &Path,
    work: &Path,
    quick: bool,
    extra: &[String],
    device: &str,
    command: &str,
) -> Result<()> {
    let device = parse_device(device)?;
    if quick {
        recipe.set.extend(recipe.quick_set.clone());
    }
    recipe.set.extend(extra.iter().cloned());
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    // Two experiments in one work folder would train the same parts at once.
    let _work_lock = Lock::folder(work, "the experiment work folder")?;
    // The output folder's lock lives beside it and goes when released: reports are committed.
    let _out_lock = if out != work {
        Some(Lock::beside(out, "the experiment output folder")?)
    } else {
        None
    };
    let applied = toml::to_string(&recipe)?;
    let recorded = out.join("recipe.toml");
    match std::fs::read_to_string(&recorded) {
        Ok(previous) if previous != applied => bail!(
            "{} holds an experiment with other settings (see {}); give a new --out, or delete it",
            out.display(),
            recorded.display()
        ),
        _ => write_atomic(&recorded, applied.as_bytes())?,
    }
    let started = std::time::Instant::now();
    let data = benchmark(&recipe, work)?;
    let base = with_overrides(load_config(&recipe.config, &[])?, &recipe.set)?;
    let eval = Some(EvalSpec {
        data: vec![data.join("eval").to_string_lossy().into_owned()],
        classes: Some(data.join("eval/classes.json")).filter(|p| p.exists()),
    });
    let pool = data.join("pool").to_string_lossy().into_owned();
    let mut parts = report::Parts {
        seeds: if recipe.seeds.is_empty() {
            vec![base.seed]
        } else {
            recipe.seeds.clone()
        },
        ..report::Parts::default()
    };
    for &seed in &parts.seeds.clone() {
        let mut dirs = Vec::new();
        for run in &recipe.runs {
            let level = run.curated.as_deref().unwrap_or(&recipe.reference.curated);
            let needs_reference =
                run.method.scores() && run.score.unwrap_or(base.score).needs_reference();
            // References are trained once, with the recipe's seed: they are the fixed given of
            // every learner seed.
            let reference = if needs_reference {
                let (dir, cache) = reference(&recipe, &base, &data, level, work, device)?;
                parts.references.insert(level.to_string(), dir);
                ReferenceSource::Cache(cache)
            } else {
                ReferenceSource::None
            };
            let mut config = with_overrides(base.clone(), &run.set)?;
            config.method = run.method;
            config.seed = seed;
            if let Some(score) = run.score {
                config.score = score;
            }
            config.eval_every = config.steps.div_ceil(recipe.evals.max(1));
            let key = key(&[&config_key(&config)?, &format!("{reference:?}"), &pool]);
            // Named by method and key, not by the recipe's run name: the same settings under
            // another name (`learnability` in one recipe, `jest` in another) are one run.
            let dir = work
                .join("runs")
                .join(format!("{}-{key}", run.method.name()));
            dirs.push(dir.clone());
            let options = TrainOptions {
                out: dir.clone(),
                data: vec![pool.clone()],
                reference,
                unfinished_reference: Unfinished::Refuse,
                device,
                eval: eval.clone(),
            };
            let name = if parts.seeds.len() > 1 {
                format!("{} (seed {seed})", run.name)
            } else {
                run.name.clone()
            };
            run_once(&name, config, &options)?;
        }
        parts.runs.push(dirs);
    }
    let summary = report::build(&recipe, &parts, command, started.elapsed().as_secs_f64())?;
    report::write(&summary, out)?;
    println!("{}", report::table(&summary));
    eprintln!(
        "report: {}\nplot:   {}\nnumbers: {}",
        out.join("report.md").display(),
        out.join("curves.png").display(),
        out.join("summary.json").display()
    );
    Ok(())
}

/// Trains `options.out` to the end: skipped when finished, resumed when started.
fn run_once(name: &str, config: TrainConfig, options: &TrainOptions) -> Result<()> {
    let dir = &options.out;
    if dir.join("summary.json").exists() {
        eprintln!("{name}: finished earlier, kept ({})", dir.display());
        return Ok(());
    }
    let start = if dir.join("config.json").exists() {
        eprintln!("{name}: resuming ({})", dir.display());
        Start::Resume
    } else {
        let _ = std::fs::remove_dir_all(dir);
        eprintln!(
            "{name}: training {} for {} steps",
            config.method.name(),
            config.steps
        );
        Start::Fresh(Box::new(config))
    };
    let mut progress = Progress::new();
    train(start, options, &mut progress).with_context(|| format!("run {name}"))?;
    progress.finish();
    Ok(())
}

/// The resolved config as it determines a part: without the loader's thread and prefetch counts,
/// which follow the machine (workers default to its cores) and never change what is loaded (the
/// loader reorders its workers' output by sample number), so a work folder keeps its parts on
/// another machine.
fn config_key(config: &TrainConfig) -> Result<String> {
    let mut value = serde_json::to_value(config)?;
    if let Some(loader) = value
        .pointer_mut("/data/loader")
        .and_then(|l| l.as_object_mut())
    {
        loader.remove("workers");
        loader.remove("prefetch");
    }
    Ok(value.to_string())
}

/// A short hash of what determines a part.
fn key(parts: &[&str]) -> String {
    let joined = parts.join("\u{1f}");
    format!(
        "{:08x}",
        jester_data::tools::inspect::fnv1a(joined.as_bytes()) as u32
    )
}

/// The benchmark folder: the recipe's path, or generated once into WORK/data-HASH.
fn benchmark(recipe: &Recipe, work: &Path) -> Result<PathBuf> {
    let settings = recipe.benchmark_set.join(" ");
    let dir = work.join(format!("data-{}", key(&[&recipe.benchmark, &settings])));
    let generated = |dir: &Path| dir.join("summary.json").exists();
    match recipe.benchmark.as_str() {
        "synthetic" | "fashion-mnist" if generated(&dir) => Ok(dir),
        "synthetic" => {
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!("generating synthetic scenes into {}", dir.display());
            let config = with_overrides(SyntheticConfig::default(), &recipe.benchmark_set)?;
            synthetic::generate(&config, &dir)?;
            Ok(dir)
        }
        "fashion-mnist" => {
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!("generating Fashion-MNIST scenes into {}", dir.display());
            let config = with_overrides(FashionMnistConfig::default(), &recipe.benchmark_set)?;
            fashion_mnist::generate(&config, &dir)?;
            Ok(dir)
        }
        path => {
            let dir = PathBuf::from(path);
            if !dir.join("pool").exists() || !dir.join("eval").exists() {
                bail!("benchmark {path:?}: expected synthetic, fashion-mnist or a folder with pool/, curated-*/ and eval/");
            }
            Ok(dir)
        }
    }
}

/// The reference trained on `curated-LEVEL` and its cached pool embeddings (made once):
/// (run folder, cache).
fn reference(
    recipe: &Recipe,
    base: &TrainConfig,
    data: &Path,
    level: &str,
    work: &Path,
    device: tch::Device,
) -> Result<(PathBuf, PathBuf)> {
    let mut config = with_overrides(base.clone(), &recipe.reference.set)?;
    config.method = TrainMethod::Uniform;
    config.eval_every = config.steps.div_ceil(recipe.evals.max(1));
    let key = key(&[&config_key(&config)?, level, &data.to_string_lossy()]);
    let dir = work.join(format!("reference-{level}-{key}"));
    let cache = work.join(format!("reference-{level}-{key}-pool.safetensors"));
    if cache.exists() {
        eprintln!(
            "reference ({level}): finished earlier, kept ({})",
            dir.display()
        );
        return Ok((dir, cache));
    }
    let options = TrainOptions {
        out: dir.clone(),
        data: vec![data
            .join(format!("curated-{level}"))
            .to_string_lossy()
            .into_owned()],
        reference: ReferenceSource::None,
        unfinished_reference: Unfinished::Refuse,
        device,
        eval: Some(EvalSpec {
            data: vec![data.join("eval").to_string_lossy().into_owned()],
            classes: Some(data.join("eval/classes.json")).filter(|p| p.exists()),
        }),
    };
    run_once(&format!("reference ({level})"), config, &options)?;
    let trained = load_trained(&dir, device, Unfinished::Refuse)?;
    eprintln!("reference ({level}): embedding the pool");
    let pool = data.join("pool").to_string_lossy().into_owned();
    jester::embed::embed_shards(&trained, &[pool], &cache, 1024, 2, |_| {})?;
    Ok((dir, cache))
}

#[derive(Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "jester-demo")]
    out: PathBuf,
    /// The longer version (the recipe's full budget instead of the quick one).
    #[arg(long)]
    full: bool,
    #[arg(long, default_value = "auto")]
    device: String,
}

/// The headline recipe on built-in synthetic scenes, embedded in the binary.
pub const DEMO_RECIPE: &str = include_str!("../../../configs/experiments/headline-synthetic.toml");

pub fn demo(args: DemoArgs) -> Result<()> {
    let mut recipe = Recipe::parse(DEMO_RECIPE).context("the built-in demo recipe")?;
    // One seed: the demo shows the comparison in minutes; the recipe's report has the spread.
    recipe.seeds.truncate(1);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    run_recipe(
        recipe,
        &args.out,
        &args.out,
        !args.full,
        &[],
        &args.device,
        &command,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_part_key_ignores_the_machines_loader_threads_but_not_the_settings() {
        let config = TrainConfig::preset("tiny").unwrap();
        let mut other_machine = config.clone();
        other_machine.data.loader.workers = 16;
        other_machine.data.loader.prefetch = 4096;
        assert_eq!(
            config_key(&config).unwrap(),
            config_key(&other_machine).unwrap()
        );
        let mut longer = config.clone();
        longer.steps += 1;
        assert_ne!(config_key(&config).unwrap(), config_key(&longer).unwrap());
        let mut reshuffled = config.clone();
        reshuffled.data.loader.shuffle_buffer += 1;
        assert_ne!(
            config_key(&config).unwrap(),
            config_key(&reshuffled).unwrap()
        );
    }
}
