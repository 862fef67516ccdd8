//! `report.md`'s tables and text, from the experiment's summary.
use std::fmt::Write as _;

use super::compute::ComputeOutcome;
use super::recipe::{Budget, Metric};
use super::report::{ExperimentSummary, RunSummary, SeedOutcome};
use crate::config::TrainMethod;

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

/// The final metric, with its range over seeds when there are several.
pub(super) fn final_cell(r: &RunSummary) -> String {
    let values: Vec<f64> = r.seeds.iter().map(|s| s.final_metric).collect();
    match range(&values) {
        Some((lo, hi)) => format!("**{}** ({}–{})", pct(r.final_metric), pct(lo), pct(hi)),
        None => format!("**{}**", pct(r.final_metric)),
    }
}

/// A speedup, with its range over seeds and how many seeds reached the target.
pub(super) fn speedup_cell(
    r: &RunSummary,
    mean: Option<f64>,
    of: fn(&SeedOutcome) -> Option<f64>,
) -> String {
    if r.seeds.len() < 2 {
        return times(mean);
    }
    let values: Vec<f64> = r.seeds.iter().filter_map(of).collect();
    let reached = if values.len() < r.seeds.len() {
        format!(", {} of {} seeds reached", values.len(), r.seeds.len())
    } else {
        String::new()
    };
    match (mean, range(&values)) {
        (Some(m), Some((lo, hi))) => format!("{m:.2}× ({lo:.2}–{hi:.2}{reached})"),
        _ => format!("not reached{reached}"),
    }
}

fn range(values: &[f64]) -> Option<(f64, f64)> {
    (values.len() > 1).then(|| {
        values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    })
}

/// The main table (markdown).
pub fn table(s: &ExperimentSummary) -> String {
    let mut t = String::new();
    let metric_name = if s.metric == Metric::RetrievalR1 {
        "R@1 (mean of i→t, t→i), %"
    } else {
        "zero-shot top-1, %"
    };
    let _ = writeln!(
        t,
        "| run | method | score | reference | f | b / B | final {metric_name} | zero-shot top-5 % | R@1 i→t / t→i % | fewer iterations to target | fewer FLOPs to target | fewer FLOPs, reference's cost included | FLOPs per iteration | wall per iteration | wall time |"
    );
    let _ = writeln!(
        t,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &s.runs {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} | {} / {} | {} | {} | {} | {:.2}× | {:.2}× | {:.0} s |",
            r.name,
            r.method.name(),
            r.score,
            r.reference.map_or("—", |l| l.name()),
            if r.method == TrainMethod::Uniform { "—".into() } else { format!("{:.1}", r.filter_ratio) },
            r.batch,
            r.super_batch,
            final_cell(r),
            r.final_eval.zero_shot_top5.map_or("—".into(), pct),
            pct(r.final_eval.image_to_text.r1),
            pct(r.final_eval.text_to_image.r1),
            speedup_cell(r, r.iteration_speedup, |s| s.iteration_speedup),
            speedup_cell(r, r.flop_speedup, |s| s.flop_speedup),
            speedup_cell(r, r.flop_speedup_with_reference, |s| s.flop_speedup_with_reference),
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
    for r in s.runs.iter().filter(|r| r.method != TrainMethod::Uniform) {
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

/// A cell of per-seed values: the mean, with the range when there are several.
fn mean_range_cell(mean: f64, values: &[f64], format: fn(f64) -> String) -> String {
    match range(values) {
        Some((lo, hi)) => format!("{} ({}–{})", format(mean), format(lo), format(hi)),
        None => format(mean),
    }
}

/// "How much more compute uniform needs for this run's final score": the ratio where uniform
/// reached it, "not reached (> x×)" where it did not within the budget.
fn uniform_ratio_cell(r: &RunSummary, c: &ComputeOutcome) -> String {
    let outcomes: Vec<&ComputeOutcome> =
        r.seeds.iter().filter_map(|s| s.compute.as_ref()).collect();
    let n = outcomes.len().max(1);
    let reached: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| o.uniform_flops_ratio)
        .collect();
    let bound = c
        .uniform_flops_ratio_above
        .map(|x| format!("not reached within the budget (> {x:.2}×)"));
    match (c.uniform_flops_ratio, bound) {
        (Some(mean), None) => mean_range_cell(mean, &reached, |x| format!("{x:.2}×")),
        (Some(mean), Some(bound)) => format!(
            "{}; {} of {n} seeds: {bound}",
            mean_range_cell(mean, &reached, |x| format!("{x:.2}×")),
            n - reached.len()
        ),
        (None, Some(bound)) => bound,
        (None, None) => "—".into(),
    }
}

/// The equal-compute table (markdown): what every run's share of the common FLOP budget bought.
pub fn compute_table(s: &ExperimentSummary) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| run | steps | score at ¼ of the budget | at ½ | at the budget | fewer FLOPs to reach compute-matched uniform's final | uniform's FLOPs for this run's final score |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|");
    for r in &s.runs {
        let Some(c) = &r.compute else { continue };
        let per_seed = |f: fn(&ComputeOutcome) -> f64| -> Vec<f64> {
            r.seeds
                .iter()
                .filter_map(|s| s.compute.as_ref().map(f))
                .collect()
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | **{}** | {} | {} |",
            r.name,
            r.steps,
            mean_range_cell(c.at_quarter, &per_seed(|o| o.at_quarter), pct),
            mean_range_cell(c.at_half, &per_seed(|o| o.at_half), pct),
            mean_range_cell(c.at_budget, &per_seed(|o| o.at_budget), pct),
            speedup_cell(r, r.flop_speedup, |s| s.flop_speedup),
            uniform_ratio_cell(r, c),
        );
    }
    t
}

/// The equal-compute section of `report.md` (empty for an equal-iterations recipe).
fn compute_section(s: &ExperimentSummary) -> String {
    if s.budget != Budget::Compute {
        return String::new();
    }
    let budget = s
        .runs
        .first()
        .and_then(|r| r.compute.as_ref())
        .map_or(f64::NAN, |c| c.budget_flops);
    let mut m = String::new();
    let _ = writeln!(
        m,
        "## At equal compute\n\nEvery run spent the same total FLOPs, training and scoring as \
         executed ({:.2} TFLOP{}): the costliest run per iteration trained the recipe's steps, \
         every other run as many as the same FLOPs buy (each within one of its steps of the \
         budget). Scores at ¼, ½ and all of the budget are interpolated on each run's FLOP curve. \
         *Fewer FLOPs to reach compute-matched uniform's final* is the table above's FLOPs to \
         target, whose target is this uniform's final score. *Uniform's FLOPs for this run's final \
         score*: the FLOPs uniform needed to first reach it over those this run needed, so uniform \
         is 1× by construction; where uniform never reached it, the budget over this run's FLOPs \
         is a lower bound.\n",
        budget / 1e12,
        if s.seeds.len() > 1 {
            ", the mean over seeds"
        } else {
            ""
        }
    );
    m.push_str(&compute_table(s));
    m.push('\n');
    m
}

pub fn markdown(s: &ExperimentSummary) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# Experiment `{}` on `{}`\n", s.recipe, s.benchmark);
    if !s.description.is_empty() {
        let _ = writeln!(m, "{}\n", s.description);
    }
    let seeds = if s.seeds.len() > 1 {
        format!(
            " Every run was trained with seeds {:?}, each measured against uniform with the same \
             seed; cells give the mean and, in brackets, the range over seeds (zero-shot top-5 and \
             R@1 columns: the first seed).",
            s.seeds
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        m,
        "Target: uniform's final {} = **{}**. *Fewer iterations (FLOPs) to target* = the examples \
         (total FLOPs, scoring included) uniform needed to first reach its final score over those \
         this run needed, both crossings interpolated linearly between evaluations, so uniform is \
         1× by construction; \"not reached\" when the run never did within the budget. *Reference's \
         cost included*: the same with the reference's one-off FLOPs (its training and its forward \
         over the cached pool) added to this run's, as if no other run shared the reference. *FLOPs \
         per iteration* are counted as executed, relative to uniform.{seeds}\n",
        if s.metric == Metric::RetrievalR1 {
            "R@1 (mean of both directions)"
        } else {
            "zero-shot top-1"
        },
        pct(s.target)
    );
    m.push_str(&table(s));
    let _ = writeln!(m);
    m.push_str(&compute_section(s));
    let _ = writeln!(m, "![curves](curves.png)\n");
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
