//! The experiment's report: every number in `summary.json`, the tables in `report.md`, the curves in
//! `curves.png`, all built from the runs' `eval.jsonl` and `summary.json`, so they agree.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use jester::eval::EvalMetrics;

use crate::experiment::Recipe;
use crate::output::{write_atomic, write_json};

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
    pub method: String,
    pub score: String,
    pub reference: Option<String>,
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
    /// Executed FLOPs per iteration relative to uniform.
    pub cost_per_iteration: f64,
    /// Wall seconds per step relative to uniform.
    pub wall_per_iteration: f64,
    pub wall_seconds: f64,
    /// Fraction of each noise kind among the examples trained on.
    pub noise_kept: BTreeMap<String, f64>,
    pub curve: Vec<Point>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExperimentSummary {
    pub recipe: String,
    pub description: String,
    pub benchmark: String,
    pub metric: String,
    /// Uniform's final score: the target of *-to-target.
    pub target: f64,
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

/// Where the recipe's parts were trained (runs in recipe order).
#[derive(Default)]
pub struct Parts {
    pub runs: Vec<std::path::PathBuf>,
    pub references: BTreeMap<String, std::path::PathBuf>,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The main metric of an evaluation.
fn metric(name: &str, eval: &EvalMetrics) -> f64 {
    match name {
        "retrieval_r1" => 0.5 * (eval.image_to_text.r1 + eval.text_to_image.r1),
        _ => eval.zero_shot_top1.unwrap_or(f64::NAN),
    }
}

fn evals(run: &Path) -> Result<Vec<(serde_json::Value, EvalMetrics)>> {
    let path = run.join("eval.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            let e: EvalMetrics = serde_json::from_value(v["eval"].clone())?;
            Ok((v, e))
        })
        .collect()
}

fn fractions(counts: &serde_json::Value) -> BTreeMap<String, f64> {
    let Some(map) = counts.as_object() else {
        return BTreeMap::new();
    };
    let total: f64 = map.values().filter_map(|v| v.as_f64()).sum();
    map.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()? / total.max(1.0))))
        .collect()
}

/// The first crossing of `target`, interpolated: (examples, flops).
fn to_target(curve: &[Point], target: f64) -> Option<(f64, f64)> {
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
    let mut runs = Vec::new();
    let mut pool_noise = BTreeMap::new();
    for (run, dir) in recipe.runs.iter().zip(&parts.runs) {
        let summary = read_json(&dir.join("summary.json"))?;
        let config = read_json(&dir.join("config.json"))?;
        let points = evals(dir)?;
        let curve: Vec<Point> = points
            .iter()
            .map(|(v, e)| Point {
                step: v["step"].as_u64().unwrap_or(0),
                examples_seen: v["examples_seen"].as_f64().unwrap_or(0.0),
                flops_total: v["flops_total"].as_f64().unwrap_or(0.0),
                metric: metric(&recipe.metric, e),
            })
            .collect();
        let final_eval = points
            .last()
            .map(|p| p.1.clone())
            .context("no evaluation")?;
        let steps = summary["steps"].as_u64().unwrap_or(1) as f64;
        let wall_seconds: f64 = summary["seconds"]
            .as_object()
            .map_or(0.0, |m| m.values().filter_map(|v| v.as_f64()).sum());
        if run.method.name() == "uniform" {
            pool_noise = fractions(&summary["noise_drawn"]);
        }
        runs.push(RunSummary {
            name: run.name.clone(),
            dir: dir.to_string_lossy().into_owned(),
            method: run.method.name().into(),
            score: if run.method.scores() {
                config["score"].as_str().unwrap_or("").into()
            } else {
                "—".into()
            },
            reference: (run.method.scores() && config["score"] != "hard-learner").then(|| {
                run.curated
                    .clone()
                    .unwrap_or(recipe.reference.curated.clone())
            }),
            filter_ratio: if run.method.scores() {
                config["filter_ratio"].as_f64().unwrap_or(0.0)
            } else {
                0.0
            },
            batch: summary["batch"].as_u64().unwrap_or(0) as usize,
            super_batch: summary["super_batch"].as_u64().unwrap_or(0) as usize,
            steps: steps as usize,
            final_metric: metric(&recipe.metric, &final_eval),
            final_eval,
            examples_to_target: None,
            flops_to_target: None,
            iteration_speedup: None,
            flop_speedup: None,
            cost_per_iteration: summary["cost_vs_uniform"].as_f64().unwrap_or(f64::NAN),
            wall_per_iteration: wall_seconds / steps,
            wall_seconds,
            noise_kept: fractions(&summary["noise_selected"]),
            curve,
        });
    }
    let uniform = runs
        .iter()
        .find(|r| r.method == "uniform")
        .context("no uniform run")?
        .clone();
    let target = uniform.final_metric;
    let (u_examples, u_flops) = uniform
        .curve
        .last()
        .map(|p| (p.examples_seen, p.flops_total))
        .unwrap_or((1.0, 1.0));
    let u_wall = uniform.wall_per_iteration;
    for run in &mut runs {
        run.wall_per_iteration /= u_wall.max(1e-12);
        if let Some((examples, flops)) = to_target(&run.curve, target) {
            run.examples_to_target = Some(examples);
            run.flops_to_target = Some(flops);
            run.iteration_speedup = Some(u_examples / examples.max(1.0));
            run.flop_speedup = Some(u_flops / flops.max(1.0));
        }
    }
    let mut references = BTreeMap::new();
    for (level, dir) in &parts.references {
        if let Ok(points) = evals(dir) {
            if let Some((_, e)) = points.last() {
                references.insert(level.clone(), e.clone());
            }
        }
    }
    Ok(ExperimentSummary {
        recipe: recipe.name.clone(),
        description: recipe.description.clone(),
        benchmark: recipe.benchmark.clone(),
        metric: recipe.metric.clone(),
        target,
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

fn pct(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else {
        format!("{:.1}", 100.0 * x)
    }
}

fn times(x: Option<f64>) -> String {
    x.map_or("not reached".into(), |x| format!("{x:.2}×"))
}

/// The main table (markdown).
pub fn table(s: &ExperimentSummary) -> String {
    let mut t = String::new();
    let metric_name = if s.metric == "retrieval_r1" {
        "R@1 (mean of i→t, t→i), %"
    } else {
        "zero-shot top-1, %"
    };
    let _ = writeln!(
        t,
        "| run | method | score | reference | f | b / B | final {metric_name} | zero-shot top-5 % | R@1 i→t / t→i % | fewer iterations to target | fewer FLOPs to target | FLOPs per iteration | wall per iteration | wall time |"
    );
    let _ = writeln!(
        t,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &s.runs {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} / {} | **{}** | {} | {} / {} | {} | {} | {:.2}× | {:.2}× | {:.0} s |",
            r.name,
            r.method,
            r.score,
            r.reference.as_deref().unwrap_or("—"),
            if r.method == "uniform" { "—".into() } else { format!("{:.1}", r.filter_ratio) },
            r.batch,
            r.super_batch,
            pct(r.final_metric),
            r.final_eval.zero_shot_top5.map_or("—".into(), pct),
            pct(r.final_eval.image_to_text.r1),
            pct(r.final_eval.text_to_image.r1),
            times(r.iteration_speedup),
            times(r.flop_speedup),
            r.cost_per_iteration,
            r.wall_per_iteration,
            r.wall_seconds,
        );
    }
    t
}

/// What each run kept, by ground-truth noise kind (markdown).
pub fn noise_table(s: &ExperimentSummary) -> String {
    let kinds: Vec<String> = s.noise_pool.keys().cloned().collect();
    let mut t = String::new();
    let _ = writeln!(t, "| trained on, % | {} |", kinds.join(" | "));
    let _ = writeln!(t, "|---|{}", "---|".repeat(kinds.len()));
    let _ = writeln!(
        t,
        "| the pool (uniform) | {} |",
        kinds
            .iter()
            .map(|k| pct(s.noise_pool[k]))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for r in s.runs.iter().filter(|r| r.method != "uniform") {
        let _ = writeln!(
            t,
            "| {} | {} |",
            r.name,
            kinds
                .iter()
                .map(|k| pct(r.noise_kept.get(k).copied().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    t
}

pub fn markdown(s: &ExperimentSummary) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# Experiment `{}` on `{}`\n", s.recipe, s.benchmark);
    if !s.description.is_empty() {
        let _ = writeln!(m, "{}\n", s.description);
    }
    let _ = writeln!(
        m,
        "Target: uniform's final {} = **{}**. *Fewer iterations (FLOPs) to target* = uniform's examples \
         (total FLOPs, scoring included) at the end over this run's when it first reached the target, \
         interpolated linearly between evaluations; \"not reached\" when it never did within the budget. \
         *FLOPs per iteration* are counted as executed, relative to uniform.\n",
        if s.metric == "retrieval_r1" { "R@1 (mean of both directions)" } else { "zero-shot top-1" },
        pct(s.target)
    );
    m.push_str(&table(s));
    let _ = writeln!(m, "\n![curves](curves.png)\n");
    let _ = writeln!(m, "## What each method trained on\n");
    m.push_str(&noise_table(s));
    if !s.references.is_empty() {
        let _ = writeln!(m, "\n## References\n");
        let _ = writeln!(
            m,
            "| curated set | zero-shot top-1 % | R@1 i→t / t→i % |\n|---|---|---|"
        );
        for (level, e) in &s.references {
            let _ = writeln!(
                m,
                "| {level} | {} | {} / {} |",
                e.zero_shot_top1.map_or("—".into(), pct),
                pct(e.image_to_text.r1),
                pct(e.text_to_image.r1)
            );
        }
    }
    let _ = writeln!(
        m,
        "\n---\nProduced by `{}` at commit `{}` on {} ({}), {:.0} s in all (finished parts of an \
         earlier invocation are not re-timed). Every number is in `summary.json`.",
        s.command, s.commit, s.machine, s.date, s.wall_seconds
    );
    m
}

pub fn write(s: &ExperimentSummary, out: &Path) -> Result<()> {
    write_json(&out.join("summary.json"), s)?;
    crate::plot::curves(s, &out.join("curves.png"))?;
    write_atomic(&out.join("report.md"), markdown(s).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(examples: f64, metric: f64) -> Point {
        Point {
            step: 0,
            examples_seen: examples,
            flops_total: 10.0 * examples,
            metric,
        }
    }

    #[test]
    fn the_target_crossing_is_interpolated_between_evaluations() {
        let curve = [p(0.0, 0.1), p(100.0, 0.3), p(200.0, 0.5)];
        assert_eq!(to_target(&curve, 0.4), Some((150.0, 1500.0)));
        assert_eq!(to_target(&curve, 0.3), Some((100.0, 1000.0)));
        assert_eq!(to_target(&curve, 0.6), None);
        assert_eq!(to_target(&curve, 0.05), Some((100.0, 1000.0)));
    }
}
