//! The report's ratios and cells on hand-made run folders.
use std::collections::BTreeMap;

use super::markdown::{final_cell, speedup_cell};
use super::report::to_target;
use super::*;
use crate::config::TrainMethod;
use jester_data::benchmark::CurationLevel;

fn p(examples: f64, metric: f64) -> Point {
    Point {
        step: 0,
        examples_seen: examples,
        flops_total: 10.0 * examples,
        metric,
    }
}

/// A finished run folder (typed files, as training writes them) with evaluations at `curve`'s
/// (examples, metric) points, 10 FLOPs an example.
fn write_run(
    dir: &std::path::Path,
    name: &str,
    method: &str,
    curve: &[(f64, f64)],
) -> std::path::PathBuf {
    use crate::run_dir::{EvalLine, RunDir, TrainSummary};
    let run = dir.join(name);
    std::fs::create_dir_all(&run).unwrap();
    let folder = RunDir::new(&run);
    let method: TrainMethod = method.parse().unwrap();
    let mut config = crate::config::TrainConfig::preset("tiny").unwrap();
    config.method = method;
    config.batch = 100;
    folder.write_config(&config).unwrap();
    for (step, (examples, metric)) in curve.iter().enumerate() {
        let eval: crate::eval::EvalMetrics = serde_json::from_value(serde_json::json!({
            "image_to_text": {"r1": metric, "r5": 0.0, "r10": 0.0},
            "text_to_image": {"r1": metric, "r5": 0.0, "r10": 0.0},
            "zero_shot_top1": null, "zero_shot_top5": null,
            "zero_shot_examples": 0, "retrieval_examples": 10
        }))
        .unwrap();
        let line = EvalLine {
            step,
            examples_seen: *examples as u64,
            flops_train: examples * 10.0,
            flops_score: 0.0,
            flops_total: examples * 10.0,
            wall_seconds: 0.0,
            eval,
        };
        folder.append_line(RunDir::EVAL, &line).unwrap();
    }
    let summary = TrainSummary {
        method,
        steps: 6,
        batch: 100,
        super_batch: 100,
        parameters: 0,
        examples_seen: 600,
        examples_drawn: 600,
        flops_train: 6000.0,
        flops_score: 0.0,
        cost_vs_uniform: 1.0,
        final_loss: 0.0,
        seconds: BTreeMap::from([("step".to_string(), 6.0)]),
        steps_per_second: 1.0,
        skipped: Default::default(),
        noise_drawn: BTreeMap::new(),
        noise_selected: BTreeMap::new(),
    };
    folder.write_summary(&summary).unwrap();
    run
}

#[test]
fn uniform_is_one_times_itself_even_when_its_curve_touched_the_target_early() {
    // Uniform's noisy curve reaches its final score 0.30 at 300 examples, dips, and ends
    // there at 600; JEST crosses 0.30 at 150. The ratio is 300 / 150 = 2, and uniform's 1.
    let dir = std::env::temp_dir().join(format!("jester-report-{}", std::process::id()));
    let write_run =
        |name: &str, method: &str, curve: &[(f64, f64)]| write_run(&dir, name, method, curve);
    let uniform = write_run(
        "uniform",
        "uniform",
        &[
            (0.0, 0.0),
            (150.0, 0.2),
            (300.0, 0.3),
            (450.0, 0.25),
            (600.0, 0.3),
        ],
    );
    let jest = write_run("jest", "jest", &[(0.0, 0.0), (150.0, 0.3), (600.0, 0.5)]);
    let recipe = Recipe::parse(
        r#"
        name = "t"
        benchmark = "synthetic"
        metric = "retrieval_r1"
        [reference]
        [[runs]]
        name = "uniform"
        method = "uniform"
        [[runs]]
        name = "jest"
        method = "jest"
        "#,
    )
    .unwrap();
    // A reference: 1,500 FLOPs of training and 3 cached pool rows of the tiny model's forward.
    let reference = dir.join("reference-strong-k");
    std::fs::create_dir_all(&reference).unwrap();
    write_run("reference-strong-k", "uniform", &[(0.0, 0.0), (150.0, 0.1)]);
    let mut summary = crate::run_dir::RunDir::new(&reference).summary().unwrap();
    (summary.flops_train, summary.flops_score) = (1500.0, 0.0);
    crate::run_dir::RunDir::new(&reference)
        .write_summary(&summary)
        .unwrap();
    let tiny = crate::config::TrainConfig::preset("tiny").unwrap();
    let mut writer =
        crate::cache::EmbeddingWriter::create(&dir.join("reference-strong-k-pool.safetensors"))
            .unwrap();
    let rows = tch::Tensor::ones([3, 4], (tch::Kind::Float, tch::Device::Cpu)) / 2.0;
    writer
        .append(&["a".into(), "b".into(), "c".into()], &rows, &rows)
        .unwrap();
    writer.finish(10.0, -10.0, None).unwrap();
    let parts = Parts {
        seeds: vec![0],
        runs: vec![vec![uniform, jest]],
        references: BTreeMap::from([(CurationLevel::Strong, reference)]),
    };
    let s = build(&recipe, &parts, "test", 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
    let s = s.unwrap();
    assert_eq!(s.runs[0].iteration_speedup, Some(1.0));
    assert_eq!(s.runs[0].flop_speedup, Some(1.0));
    assert_eq!(s.runs[1].iteration_speedup, Some(2.0));
    // Uniform reached its target at 3,000 FLOPs, JEST at 1,500: 2× without the reference, and
    // 3,000 / (1,500 + its one-off cost) with it; uniform has no reference, so stays 1×.
    let m = &tiny.model;
    let cost = 1500.0 + 3.0 * crate::flops::example_forward(m, m.image.patch_size);
    assert_eq!(s.runs[1].flop_speedup, Some(2.0));
    assert_eq!(
        s.runs[1].flop_speedup_with_reference,
        Some(3000.0 / (1500.0 + cost))
    );
    assert_eq!(s.runs[0].flop_speedup_with_reference, Some(1.0));
}

#[test]
fn several_seeds_are_reported_as_mean_and_range() {
    let seed = |seed, final_metric, speedup| SeedOutcome {
        seed,
        dir: String::new(),
        final_metric,
        iteration_speedup: speedup,
        flop_speedup: None,
        flop_speedup_with_reference: None,
        compute: None,
    };
    let run = RunSummary {
        name: "jest".into(),
        dir: String::new(),
        method: TrainMethod::Jest,
        score: String::new(),
        reference: None,
        filter_ratio: 0.8,
        batch: 64,
        super_batch: 320,
        steps: 1,
        final_metric: 0.12,
        final_eval: serde_json::from_value(serde_json::json!({
            "image_to_text": {"r1": 0.1, "r5": 0.0, "r10": 0.0},
            "text_to_image": {"r1": 0.1, "r5": 0.0, "r10": 0.0},
            "zero_shot_top1": null, "zero_shot_top5": null,
            "zero_shot_examples": 0, "retrieval_examples": 10
        }))
        .unwrap(),
        examples_to_target: None,
        flops_to_target: None,
        iteration_speedup: Some(3.0),
        flop_speedup: None,
        flop_speedup_with_reference: None,
        cost_per_iteration: 1.0,
        wall_per_iteration: 1.0,
        wall_seconds: 1.0,
        noise_kept: BTreeMap::new(),
        compute: None,
        curve: Vec::new(),
        seeds: vec![
            seed(0, 0.10, Some(2.5)),
            seed(1, 0.14, Some(3.5)),
            seed(2, 0.12, None),
        ],
    };
    assert_eq!(final_cell(&run), "**12.0** (10.0–14.0)");
    assert_eq!(
        speedup_cell(&run, run.iteration_speedup, |s| s.iteration_speedup),
        "3.00× (2.50–3.50, 2 of 3 seeds reached)"
    );
    assert_eq!(
        speedup_cell(&run, run.flop_speedup, |s| s.flop_speedup),
        "not reached, 0 of 3 seeds reached"
    );
}

#[test]
fn the_target_crossing_is_interpolated_between_evaluations() {
    let curve = [p(0.0, 0.1), p(100.0, 0.3), p(200.0, 0.5)];
    assert_eq!(to_target(&curve, 0.4), Some((150.0, 1500.0)));
    assert_eq!(to_target(&curve, 0.3), Some((100.0, 1000.0)));
    assert_eq!(to_target(&curve, 0.6), None);
    assert_eq!(to_target(&curve, 0.05), Some((100.0, 1000.0)));
}

#[test]
fn an_equal_compute_report_says_what_the_same_flops_bought() {
    // Both runs spent 6,000 FLOPs (600 examples at 10 FLOPs; the cost per iteration does not
    // matter to the report). Uniform ends at 0.3, first reached at 400 examples; JEST reaches
    // 0.3 at 200 and ends at 0.5, which uniform never reaches.
    let dir = std::env::temp_dir().join(format!("jester-report-compute-{}", std::process::id()));
    let uniform = write_run(
        &dir,
        "uniform",
        "uniform",
        &[
            (0.0, 0.0),
            (150.0, 0.15),
            (300.0, 0.25),
            (400.0, 0.3),
            (600.0, 0.3),
        ],
    );
    let jest = write_run(
        &dir,
        "jest",
        "jest",
        &[(0.0, 0.0), (200.0, 0.3), (600.0, 0.5)],
    );
    let recipe = Recipe::parse(
        r#"
        name = "t"
        benchmark = "synthetic"
        metric = "retrieval_r1"
        budget = "compute"
        [reference]
        [[runs]]
        name = "uniform"
        method = "uniform"
        [[runs]]
        name = "jest"
        method = "jest"
        "#,
    )
    .unwrap();
    let parts = Parts {
        seeds: vec![0],
        runs: vec![vec![uniform, jest]],
        references: BTreeMap::new(),
    };
    let s = build(&recipe, &parts, "test", 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
    let s = s.unwrap();
    let (u, j) = (&s.runs[0], s.runs[1].compute.as_ref().unwrap());
    let uc = u.compute.as_ref().unwrap();
    // Uniform is 1× in every ratio.
    assert_eq!(u.iteration_speedup, Some(1.0));
    assert_eq!(u.flop_speedup, Some(1.0));
    assert_eq!(uc.uniform_flops_ratio, Some(1.0));
    assert_eq!(uc.budget_flops, 6000.0);
    assert!((uc.at_quarter - 0.15).abs() < 1e-12, "{}", uc.at_quarter);
    assert!((uc.at_half - 0.25).abs() < 1e-12, "{}", uc.at_half);
    assert_eq!(uc.at_budget, 0.3);
    // JEST: uniform's final with 4,000 / 2,000 = 2× fewer FLOPs; its own final never reached by
    // uniform, whose 6,000 FLOPs over JEST's 6,000 bound that ratio from below.
    assert_eq!(s.runs[1].flop_speedup, Some(2.0));
    assert_eq!(j.uniform_flops_ratio, None);
    assert_eq!(j.uniform_flops_ratio_above, Some(1.0));
    assert!((j.at_quarter - 0.3 * 150.0 / 200.0).abs() < 1e-12);
    let report = markdown(&s);
    assert!(report.contains("## At equal compute"), "{report}");
    assert!(
        report.contains("not reached within the budget (> 1.00×)"),
        "{report}"
    );
}

#[test]
fn equal_compute_steps_give_every_run_the_costliest_runs_flops() {
    use crate::config::{TrainConfig, TrainMethod};
    let mut configs = Vec::new();
    for method in [
        TrainMethod::Uniform,
        TrainMethod::Jest,
        TrainMethod::FlexiJest,
    ] {
        let mut c = TrainConfig::preset("tiny").unwrap();
        c.batch = 64;
        c.filter_ratio = 0.8;
        c.steps = 600;
        c.method = method;
        configs.push(c);
    }
    let steps = equal_compute_steps(&configs);
    let cost: Vec<f64> = configs.iter().map(iteration_flops).collect();
    let budget = 600.0 * cost[1];
    assert_eq!(
        steps[1], 600,
        "JEST is the costliest per iteration and keeps its steps"
    );
    for (s, c) in steps.iter().zip(&cost) {
        let spent = *s as f64 * c;
        assert!(
            spent >= budget * (1.0 - 1e-9) && spent < budget + c,
            "{s} steps of {c}"
        );
    }
    assert!(steps[0] > steps[2] && steps[2] > steps[1], "{steps:?}");
}
