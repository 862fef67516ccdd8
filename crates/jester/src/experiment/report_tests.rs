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

#[test]
fn uniform_is_one_times_itself_even_when_its_curve_touched_the_target_early() {
    // Uniform's noisy curve reaches its final score 0.30 at 300 examples, dips, and ends
    // there at 600; JEST crosses 0.30 at 150. The ratio is 300 / 150 = 2, and uniform's 1.
    let dir = std::env::temp_dir().join(format!("jester-report-{}", std::process::id()));
    let write_run = |name: &str, method: &str, curve: &[(f64, f64)]| {
        let run = dir.join(name);
        std::fs::create_dir_all(&run).unwrap();
        let lines: Vec<String> = curve
            .iter()
            .enumerate()
            .map(|(step, (examples, metric))| {
                serde_json::json!({
                    "step": step, "examples_seen": examples, "flops_total": examples * 10.0,
                    "eval": {"image_to_text": {"r1": metric, "r5": 0.0, "r10": 0.0},
                             "text_to_image": {"r1": metric, "r5": 0.0, "r10": 0.0},
                             "zero_shot_top1": null, "zero_shot_top5": null,
                             "zero_shot_examples": 0, "retrieval_examples": 10}
                })
                .to_string()
            })
            .collect();
        std::fs::write(run.join("eval.jsonl"), lines.join("\n")).unwrap();
        std::fs::write(
            run.join("summary.json"),
            serde_json::json!({"steps": 6, "batch": 100, "super_batch": 100, "seconds": {"step": 6.0},
                               "cost_vs_uniform": 1.0, "method": method})
            .to_string(),
        )
        .unwrap();
        std::fs::write(
            run.join("config.json"),
            r#"{"score": "learnability", "filter_ratio": 0.8}"#,
        )
        .unwrap();
        run
    };
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
    std::fs::write(
        reference.join("summary.json"),
        r#"{"flops_train": 1500.0, "flops_score": 0.0}"#,
    )
    .unwrap();
    let tiny = crate::config::TrainConfig::preset("tiny").unwrap();
    std::fs::write(
        reference.join("config.json"),
        serde_json::to_string(&tiny).unwrap(),
    )
    .unwrap();
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
