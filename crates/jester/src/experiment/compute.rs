//! Equal-compute outcomes (a recipe with `budget = "compute"`): every run spent the same total
//! FLOPs, so the question is what each bought — its score at the common budget and at ½ and ¼ of
//! it, and how much compute uniform needs for the same score.
use serde::{Deserialize, Serialize};

use super::report::{to_target, Point};

/// One run's outcome at equal compute, measured against uniform trained to the same FLOPs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComputeOutcome {
    /// The common budget: the total FLOPs (training and scoring) the costliest run spent, which
    /// every other run spent too (to within one of its steps).
    pub budget_flops: f64,
    /// The main metric at ¼, ½ and all of the budget, interpolated linearly on the FLOP curve.
    pub at_quarter: f64,
    pub at_half: f64,
    pub at_budget: f64,
    /// Uniform's FLOPs to first reach this run's final score over this run's FLOPs to first
    /// reach it (both crossings interpolated alike, so uniform is 1× by construction); `None`
    /// when uniform never reached it within the budget.
    pub uniform_flops_ratio: Option<f64>,
    /// When uniform never reached this run's final score: the budget over this run's FLOPs to
    /// reach it, a lower bound on that ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniform_flops_ratio_above: Option<f64>,
}

/// The metric at `flops` on a curve ordered by FLOPs, interpolated linearly between the
/// evaluations around it (the first evaluation's value before it, the last one's after it).
pub fn metric_at(curve: &[Point], flops: f64) -> f64 {
    let Some(first) = curve.first() else {
        return f64::NAN;
    };
    if flops <= first.flops_total {
        return first.metric;
    }
    for pair in curve.windows(2) {
        let (p, q) = (&pair[0], &pair[1]);
        if flops <= q.flops_total {
            let span = q.flops_total - p.flops_total;
            if span <= 0.0 {
                return q.metric;
            }
            let w = (flops - p.flops_total) / span;
            return p.metric + w * (q.metric - p.metric);
        }
    }
    curve.last().map_or(f64::NAN, |p| p.metric)
}

/// The common budget of runs trained to equal compute: the smallest final FLOPs among them (the
/// costliest run's, which the others passed by less than one of their steps).
pub fn common_budget(curves: &[&[Point]]) -> f64 {
    curves
        .iter()
        .filter_map(|c| c.last().map(|p| p.flops_total))
        .fold(f64::INFINITY, f64::min)
}

/// `curve`'s outcome at the common `budget`, against `uniform`'s curve.
pub fn outcome(curve: &[Point], uniform: &[Point], budget: f64) -> ComputeOutcome {
    let final_metric = curve.last().map_or(f64::NAN, |p| p.metric);
    // This run's own first crossing of its final score (its last point if the curve never
    // crossed it after the initialisation, e.g. a final score at or below the untrained model's).
    let own = to_target(curve, final_metric)
        .map(|(_, flops)| flops)
        .or_else(|| curve.last().map(|p| p.flops_total))
        .unwrap_or(1.0)
        .max(1.0);
    let uniform_spent = uniform.last().map_or(budget, |p| p.flops_total);
    let (ratio, above) = match to_target(uniform, final_metric) {
        Some((_, flops)) => (Some(flops / own), None),
        None => (None, Some(uniform_spent / own)),
    };
    ComputeOutcome {
        budget_flops: budget,
        at_quarter: metric_at(curve, budget / 4.0),
        at_half: metric_at(curve, budget / 2.0),
        at_budget: metric_at(curve, budget),
        uniform_flops_ratio: ratio,
        uniform_flops_ratio_above: above,
    }
}

/// The mean of several seeds' outcomes: scores averaged; the ratio over the seeds where uniform
/// reached the run's final score (`None` if in none), the lower bound the smallest of the rest.
pub fn mean_outcome(outcomes: &[&ComputeOutcome]) -> Option<ComputeOutcome> {
    let n = outcomes.len();
    if n == 0 {
        return None;
    }
    let mean =
        |f: fn(&ComputeOutcome) -> f64| outcomes.iter().map(|o| f(o)).sum::<f64>() / n as f64;
    let reached: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| o.uniform_flops_ratio)
        .collect();
    let above = outcomes
        .iter()
        .filter_map(|o| o.uniform_flops_ratio_above)
        .reduce(f64::min);
    Some(ComputeOutcome {
        budget_flops: mean(|o| o.budget_flops),
        at_quarter: mean(|o| o.at_quarter),
        at_half: mean(|o| o.at_half),
        at_budget: mean(|o| o.at_budget),
        uniform_flops_ratio: (!reached.is_empty())
            .then(|| reached.iter().sum::<f64>() / reached.len() as f64),
        uniform_flops_ratio_above: above,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(points: &[(f64, f64)]) -> Vec<Point> {
        points
            .iter()
            .enumerate()
            .map(|(i, &(flops, metric))| Point {
                step: i as u64,
                examples_seen: flops,
                flops_total: flops,
                metric,
            })
            .collect()
    }

    #[test]
    fn the_metric_is_interpolated_on_the_flop_axis() {
        let c = curve(&[(0.0, 0.1), (10.0, 0.3), (20.0, 0.5)]);
        assert!((metric_at(&c, 5.0) - 0.2).abs() < 1e-12);
        assert!((metric_at(&c, 15.0) - 0.4).abs() < 1e-12);
        assert_eq!(metric_at(&c, 20.0), 0.5);
        assert_eq!(metric_at(&c, 25.0), 0.5);
        assert_eq!(metric_at(&c, -1.0), 0.1);
    }

    #[test]
    fn uniform_against_itself_is_one_and_a_better_run_saves_compute() {
        // Uniform climbs to 0.3 by its budget of 100 (with a plateau it touches early); a
        // selective run reaches 0.3 at 25 and ends at 0.5, a score uniform never reaches.
        let uniform = curve(&[
            (0.0, 0.1),
            (25.0, 0.2),
            (50.0, 0.3),
            (75.0, 0.28),
            (100.0, 0.3),
        ]);
        let jest = curve(&[(0.0, 0.1), (25.0, 0.3), (50.0, 0.4), (100.0, 0.5)]);
        let budget = common_budget(&[&uniform, &jest]);
        assert_eq!(budget, 100.0);
        let u = outcome(&uniform, &uniform, budget);
        assert_eq!(u.uniform_flops_ratio, Some(1.0));
        assert_eq!(u.at_budget, 0.3);
        assert!((u.at_quarter - 0.2).abs() < 1e-12 && (u.at_half - 0.3).abs() < 1e-12);
        let j = outcome(&jest, &uniform, budget);
        // Not reached: the lower bound is uniform's whole budget over JEST's 100.
        assert_eq!(j.uniform_flops_ratio, None);
        assert_eq!(j.uniform_flops_ratio_above, Some(1.0));
        // A run ending at 0.25 (reached first at 50): uniform got there at 37.5.
        let weak = curve(&[(0.0, 0.1), (50.0, 0.25), (100.0, 0.25)]);
        let w = outcome(&weak, &uniform, budget);
        assert!((w.uniform_flops_ratio.unwrap() - 37.5 / 50.0).abs() < 1e-12);
    }

    #[test]
    fn the_budget_is_the_costliest_runs_final_flops() {
        // Uniform overshoots the budget by part of a step, the costliest run ends on it.
        let uniform = curve(&[(0.0, 0.1), (100.4, 0.3)]);
        let jest = curve(&[(0.0, 0.1), (100.0, 0.5)]);
        assert_eq!(common_budget(&[&uniform, &jest]), 100.0);
    }

    #[test]
    fn seeds_average_scores_and_keep_the_weakest_bound() {
        let a = ComputeOutcome {
            budget_flops: 100.0,
            at_quarter: 0.1,
            at_half: 0.2,
            at_budget: 0.3,
            uniform_flops_ratio: Some(2.0),
            uniform_flops_ratio_above: None,
        };
        let b = ComputeOutcome {
            at_budget: 0.5,
            uniform_flops_ratio: None,
            uniform_flops_ratio_above: Some(3.0),
            ..a.clone()
        };
        let m = mean_outcome(&[&a, &b]).unwrap();
        assert!((m.at_budget - 0.4).abs() < 1e-12);
        assert_eq!(m.uniform_flops_ratio, Some(2.0));
        assert_eq!(m.uniform_flops_ratio_above, Some(3.0));
    }
}
