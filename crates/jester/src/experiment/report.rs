//! The experiment's report data: every number in `summary.json` (and so in `report.md` and the
//! CLI's `curves.png`), built from the runs' `eval.jsonl` and `summary.json`, so they agree.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use jester_data::benchmark::CurationLevel;

use super::compute::{common_budget, mean_outcome, outcome, ComputeOutcome};
use super::recipe::{Budget, Metric, Recipe};
use crate::config::TrainMethod;
use crate::error::{Error, Result};
use crate::eval::EvalMetrics;
use crate::run_dir::RunDir;

/// One evaluation of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    pub step: u64,
    pub examples_seen: f64,
    pub flops_total: f64,
    pub metric: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    /// The run folder.
    pub dir: String,
    pub method: TrainMethod,
    /// The score's name, `—` for uniform.
    pub score: String,
    pub reference: Option<CurationLevel>,
    pub filter_ratio: f64,
    pub batch: usize,
    pub super_batch: usize,
    pub steps: usize,
    pub final_metric: f64,
    pub final_eval: EvalMetrics,
    /// Examples trained (and total FLOPs) when the run first reached the target, interpolated
    /// linearly between evaluations; None when it never did.
    pub examples_to_target: Option<f64>,
    pub flops_to_target: Option<f64>,
    /// Uniform's examples (FLOPs) for its final score over this run's examples (FLOPs) to reach it.
    pub iteration_speedup: Option<f64>,
    pub flop_speedup: Option<f64>,
    /// [`Self::flop_speedup`] with the reference's one-off FLOPs (its training and its forward over
    /// the cached pool) charged in full to this run; runs without a reference: the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flop_speedup_with_reference: Option<f64>,
    /// Executed FLOPs per iteration relative to uniform.
    pub cost_per_iteration: f64,
    /// Wall seconds per step relative to uniform.
    pub wall_per_iteration: f64,
    pub wall_seconds: f64,
    /// Fraction of each noise kind among the examples trained on.
    pub noise_kept: BTreeMap<String, f64>,
    /// What the run bought at equal compute (a recipe with `budget = "compute"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<ComputeOutcome>,
    /// The first seed's evaluations.
    pub curve: Vec<Point>,
    /// Each seed's outcome when the recipe has several; the fields above are then their means
    /// (a speedup's mean over the seeds that reached the target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<SeedOutcome>,
}

/// One seed of a run, against that seed's uniform run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedOutcome {
    pub seed: u64,
    pub dir: String,
    pub final_metric: f64,
    pub iteration_speedup: Option<f64>,
    pub flop_speedup: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flop_speedup_with_reference: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<ComputeOutcome>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExperimentSummary {
    pub recipe: String,
    pub description: String,
    pub benchmark: String,
    pub metric: Metric,
    /// Whether every run had the same iterations or the same FLOPs.
    #[serde(default)]
    pub budget: Budget,
    /// Uniform's final score: the target of *-to-target (the mean over seeds when several; each
    /// seed's runs are measured against its own uniform run).
    pub target: f64,
    /// The seeds every run was trained with.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// Fraction of each noise kind in the pool as drawn (uniform run).
    pub noise_pool: BTreeMap<String, f64>,
    pub references: BTreeMap<String, EvalMetrics>,
    pub runs: Vec<RunSummary>,
    pub command: String,
    pub commit: String,
    pub machine: String,
    pub date: String,
    pub wall_seconds: f64,
}

/// Where the recipe's parts were trained: `runs[seed][run]`, runs in recipe order.
#[derive(Default)]
pub struct Parts {
    pub seeds: Vec<u64>,
    pub runs: Vec<Vec<PathBuf>>,
    pub references: BTreeMap<CurationLevel, PathBuf>,
}

fn bad(path: &Path, what: String) -> Error {
    Error::Input {
        path: path.to_owned(),
        what,
    }
}

fn fractions(counts: &BTreeMap<String, u64>) -> BTreeMap<String, f64> {
    let total = counts.values().sum::<u64>().max(1) as f64;
    counts
        .iter()
        .map(|(k, &v)| (k.clone(), v as f64 / total))
        .collect()
}

/// The first crossing of `target`, interpolated: (examples, flops).
pub(super) fn to_target(curve: &[Point], target: f64) -> Option<(f64, f64)> {
    // The evaluation before the first step is the initialisation's, not a method's: a target at or
    // below it means uniform learnt nothing, and nothing is "reached" by not training.
    let mut previous: Option<&Point> = None;
    for p in curve {
        if p.examples_seen == 0.0 {
            previous = Some(p);
            continue;
        }
        if p.metric >= target {
            return Some(match previous {
                // Interpolate only from a point still below the target (the one before it may be
                // the initialisation's, already at or above a target near chance).
                Some(q) if q.metric < target => {
                    let w = (target - q.metric) / (p.metric - q.metric);
                    (
                        q.examples_seen + w * (p.examples_seen - q.examples_seen),
                        q.flops_total + w * (p.flops_total - q.flops_total),
                    )
                }
                _ => (p.examples_seen, p.flops_total),
            });
        }
        previous = Some(p);
    }
    None
}

pub fn build(
    recipe: &Recipe,
    parts: &Parts,
    command: &str,
    wall: f64,
) -> Result<ExperimentSummary> {
    // A reference whose cost cannot be read (an older folder) leaves its runs' column empty.
    let reference_costs: BTreeMap<CurationLevel, f64> = parts
        .references
        .iter()
        .filter_map(|(level, dir)| Some((*level, reference_cost(dir).ok()?)))
        .collect();
    let mut per_seed = Vec::new();
    for dirs in &parts.runs {
        per_seed.push(one_seed(recipe, dirs, &reference_costs)?);
    }
    let (mut runs, mut target, pool_noise) = per_seed
        .first()
        .cloned()
        .ok_or_else(|| Error::invalid("report", "the experiment has no runs"))?;
    if per_seed.len() > 1 {
        target = mean(per_seed.iter().map(|s| s.1));
        for (i, run) in runs.iter_mut().enumerate() {
            run.seeds = per_seed
                .iter()
                .zip(&parts.seeds)
                .map(|((runs, _, _), &seed)| SeedOutcome {
                    seed,
                    dir: runs[i].dir.clone(),
                    final_metric: runs[i].final_metric,
                    iteration_speedup: runs[i].iteration_speedup,
                    flop_speedup: runs[i].flop_speedup,
                    flop_speedup_with_reference: runs[i].flop_speedup_with_reference,
                    compute: runs[i].compute.clone(),
                })
                .collect();
            let outcomes: Vec<&ComputeOutcome> = run
                .seeds
                .iter()
                .filter_map(|s| s.compute.as_ref())
                .collect();
            run.compute = mean_outcome(&outcomes);
            run.final_metric = mean(run.seeds.iter().map(|s| s.final_metric));
            let reached = |f: fn(&SeedOutcome) -> Option<f64>| {
                let values: Vec<f64> = run.seeds.iter().filter_map(f).collect();
                (!values.is_empty()).then(|| mean(values.into_iter()))
            };
            run.iteration_speedup = reached(|s| s.iteration_speedup);
            run.flop_speedup = reached(|s| s.flop_speedup);
            run.flop_speedup_with_reference = reached(|s| s.flop_speedup_with_reference);
        }
    }
    let mut references = BTreeMap::new();
    for (level, dir) in &parts.references {
        if let Ok(points) = RunDir::new(dir).evals() {
            if let Some(line) = points.last() {
                references.insert(level.name().to_string(), line.eval.clone());
            }
        }
    }
    Ok(ExperimentSummary {
        recipe: recipe.name.clone(),
        description: recipe.description.clone(),
        benchmark: recipe.benchmark.clone(),
        metric: recipe.metric,
        budget: recipe.budget,
        target,
        seeds: parts.seeds.clone(),
        noise_pool: pool_noise,
        references,
        runs,
        command: command.into(),
        commit: shell("git", &["rev-parse", "--short", "HEAD"]),
        machine: machine(),
        date: shell("date", &["-u", "+%Y-%m-%d"]),
        wall_seconds: wall,
    })
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

/// One seed's runs measured against its uniform run: (runs, target, the pool's noise).
type SeedRuns = (Vec<RunSummary>, f64, BTreeMap<String, f64>);

/// The one-off FLOPs of the reference trained in `dir`: its training (`summary.json`) and its
/// forward over every pool example it cached (`DIR-pool.safetensors`, the protocol's name).
fn reference_cost(dir: &Path) -> Result<f64> {
    let run = RunDir::new(dir);
    let summary = run.summary()?;
    let config = run.config()?;
    let cache = PathBuf::from(format!("{}-pool.safetensors", dir.display()));
    let rows = crate::cache::EmbeddingCache::read(&cache)?.len();
    let m = &config.model;
    Ok(summary.flops_train
        + summary.flops_score
        + rows as f64 * crate::flops::example_forward(m, m.image.patch_size))
}

fn one_seed(
    recipe: &Recipe,
    dirs: &[PathBuf],
    reference_costs: &BTreeMap<CurationLevel, f64>,
) -> Result<SeedRuns> {
    let mut runs = Vec::new();
    let mut pool_noise = BTreeMap::new();
    for (run, dir) in recipe.runs.iter().zip(dirs) {
        let folder = RunDir::new(dir);
        let summary = folder.summary()?;
        let config = folder.config()?;
        let points = folder.evals()?;
        let curve: Vec<Point> = points
            .iter()
            .map(|line| Point {
                step: line.step as u64,
                examples_seen: line.examples_seen as f64,
                flops_total: line.flops_total,
                metric: recipe.metric.of(&line.eval),
            })
            .collect();
        let final_eval = points
            .last()
            .map(|line| line.eval.clone())
            .ok_or_else(|| bad(dir, "the run has no evaluation".into()))?;
        let steps = summary.steps.max(1) as f64;
        let wall_seconds: f64 = summary.seconds.values().sum();
        if run.method == TrainMethod::Uniform {
            pool_noise = fractions(&summary.noise_drawn);
        }
        let scores = run.method.scores();
        let mut score = if scores {
            config.score.name().to_string()
        } else {
            "—".into()
        };
        if config.distill > 0.0 {
            score = format!("{score}, distilled ×{}", config.distill);
        }
        runs.push(RunSummary {
            name: run.name.clone(),
            dir: dir.to_string_lossy().into_owned(),
            method: run.method,
            score,
            reference: config
                .needs_reference()
                .then(|| run.curated.unwrap_or(recipe.reference.curated)),
            filter_ratio: if scores { config.filter_ratio } else { 0.0 },
            batch: summary.batch,
            super_batch: summary.super_batch,
            steps: summary.steps,
            final_metric: recipe.metric.of(&final_eval),
            final_eval,
            examples_to_target: None,
            flops_to_target: None,
            iteration_speedup: None,
            flop_speedup: None,
            flop_speedup_with_reference: None,
            cost_per_iteration: summary.cost_vs_uniform,
            wall_per_iteration: wall_seconds / steps,
            wall_seconds,
            noise_kept: fractions(&summary.noise_selected),
            compute: None,
            curve,
            seeds: Vec::new(),
        });
    }
    let uniform = runs
        .iter()
        .find(|r| r.method == TrainMethod::Uniform)
        .ok_or_else(|| Error::invalid("report", "the experiment has no uniform run"))?
        .clone();
    let target = uniform.final_metric;
    // Uniform's own first crossing of its final score, on the same interpolation as every other
    // run's, so uniform is 1× by construction: a noisy curve that touched its final score early
    // must not make uniform look slower than itself.
    let (u_examples, u_flops) = to_target(&uniform.curve, target)
        .or_else(|| {
            uniform
                .curve
                .last()
                .map(|p| (p.examples_seen, p.flops_total))
        })
        .unwrap_or((1.0, 1.0));
    let u_wall = uniform.wall_per_iteration;
    for run in &mut runs {
        run.wall_per_iteration /= u_wall.max(1e-12);
        if let Some((examples, flops)) = to_target(&run.curve, target) {
            run.examples_to_target = Some(examples);
            run.flops_to_target = Some(flops);
            run.iteration_speedup = Some(u_examples / examples.max(1.0));
            run.flop_speedup = Some(u_flops / flops.max(1.0));
            run.flop_speedup_with_reference = match run.reference {
                None => run.flop_speedup,
                Some(level) => reference_costs
                    .get(&level)
                    .map(|cost| u_flops / (flops + cost).max(1.0)),
            };
        }
    }
    if recipe.budget == Budget::Compute {
        let curves: Vec<&[Point]> = runs.iter().map(|r| r.curve.as_slice()).collect();
        let budget = common_budget(&curves);
        for run in &mut runs {
            run.compute = Some(outcome(&run.curve, &uniform.curve, budget));
        }
    }
    Ok((runs, target, pool_noise))
}

fn shell(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
    let device = if tch::Cuda::is_available() {
        "CUDA GPU"
    } else {
        "no GPU"
    };
    format!("{cpu}, {cores} cores, {memory}, {device}")
}
