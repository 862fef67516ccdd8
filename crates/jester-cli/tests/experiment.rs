//! `jester experiment` end to end on a tiny budget: the report, the plot and the summary exist and
//! agree with each other and with the runs' own files; a rerun keeps the finished parts.
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn jester(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jester"))
        .args(args)
        .output()
        .expect("run jester");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_tiny_headline_experiment_writes_a_report_plot_and_summary_that_agree() {
    let root = std::env::temp_dir().join(format!("jester-experiment-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let bench = root.join("bench");
    let (ok, _, err) = jester(&[
        "data",
        "synth",
        "--preset",
        "tiny",
        "--out",
        bench.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let recipe = root.join("recipe.toml");
    std::fs::write(
        &recipe,
        format!(
            r#"
name = "tiny-headline"
benchmark = "{}"
config = "tiny"
set = ["batch=16", "steps=8", "chunks=4", "log_every=4", "model.image.width=32",
       "model.image.mlp_dim=64", "model.text.width=32", "model.text.mlp_dim=64",
       "model.embed_dim=32", "data.tokenizer_vocab=300", "data.loader.shuffle_buffer=256"]
metric = "retrieval_r1"
evals = 2

[reference]
curated = "strong"
set = ["steps=4"]

[[runs]]
name = "uniform"
method = "uniform"

[[runs]]
name = "jest"
method = "jest"

[[runs]]
name = "flexi-jest"
method = "flexi-jest"
"#,
            bench.display()
        ),
    )
    .unwrap();
    let out = root.join("out");
    let args = [
        "experiment",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (ok, table, err) = jester(&args);
    assert!(ok, "{err}");

    let summary = read(&out.join("summary.json"));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let uniform_final = runs[0]["final_metric"].as_f64().unwrap();
    assert_eq!(
        summary["target"].as_f64().unwrap(),
        uniform_final,
        "the target is uniform's final score"
    );
    for run in runs {
        let name = run["name"].as_str().unwrap();
        // The summary's final score is the run's last evaluation.
        let dir = Path::new(run["dir"].as_str().unwrap());
        assert!(
            dir.starts_with(&out),
            "the parts live in the output folder without --work"
        );
        let evals = std::fs::read_to_string(dir.join("eval.jsonl")).unwrap();
        let last: Value = serde_json::from_str(evals.lines().last().unwrap()).unwrap();
        let e = &last["eval"];
        let mean_r1 = 0.5
            * (e["image_to_text"]["r1"].as_f64().unwrap()
                + e["text_to_image"]["r1"].as_f64().unwrap());
        assert!(
            (run["final_metric"].as_f64().unwrap() - mean_r1).abs() < 1e-12,
            "{name}"
        );
        assert_eq!(
            run["curve"].as_array().unwrap().len(),
            evals.lines().count(),
            "{name}: a point per evaluation"
        );
        // The report's table row shows the same number.
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{report}"));
        assert!(
            row.contains(&format!("**{:.1}**", 100.0 * mean_r1)),
            "{row}"
        );
        assert!(table.contains(row), "stdout prints the same table");
        let cost = run["cost_per_iteration"].as_f64().unwrap();
        match name {
            "uniform" => assert_eq!(cost, 1.0),
            "jest" => assert!((2.6..2.8).contains(&cost), "{cost}"),
            _ => assert!(cost > 1.0 && cost < 2.6, "{cost}"),
        }
    }
    assert!(
        report.contains("![curves](curves.png)") && report.contains("What each method trained on")
    );
    let png = image::open(out.join("curves.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1400, 560));
    // Not a blank canvas: the plot drew lines in colour.
    let rgb = png.to_rgb8();
    let coloured = rgb.pixels().filter(|p| p[0].abs_diff(p[2]) > 60).count();
    assert!(coloured > 500, "{coloured} coloured pixels");

    // A rerun keeps every finished part and reproduces the numbers.
    let (ok, _, err) = jester(&args);
    assert!(ok, "{err}");
    assert_eq!(
        err.matches("finished earlier, kept").count(),
        5,
        "three runs, and the reference for each of the two runs that use it: {err}"
    );
    let again = read(&out.join("summary.json"));
    assert_eq!(again["runs"], summary["runs"]);
    // Other settings into the same folder are refused rather than mixed.
    let (ok, _, err) = jester(&[&args[..], &["--set", "steps=9"]].concat());
    assert!(
        !ok && err.contains("holds an experiment with other settings"),
        "{err}"
    );
    // Another main metric re-reports the same runs without training (a new --out, same work).
    let other = root.join("by-zero-shot");
    let (ok, _, err) = jester(
        &[
            &args[..2],
            &[
                "--metric",
                "zero_shot_top1",
                "--out",
                other.to_str().unwrap(),
                "--work",
                out.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    assert_eq!(err.matches("finished earlier, kept").count(), 5, "{err}");
    let by_zero_shot = read(&other.join("summary.json"));
    assert_eq!(by_zero_shot["metric"], "zero_shot_top1");
    for (run, before) in by_zero_shot["runs"].as_array().unwrap().iter().zip(runs) {
        assert_eq!(run["dir"], before["dir"], "the same run folders");
        assert_eq!(run["final_metric"], run["final_eval"]["zero_shot_top1"]);
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn an_equal_compute_experiment_gives_every_run_the_same_flops_within_one_step() {
    let root = std::env::temp_dir().join(format!("jester-experiment-fl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let bench = root.join("bench");
    let (ok, _, err) = jester(&[
        "data",
        "synth",
        "--preset",
        "tiny",
        "--out",
        bench.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let recipe = root.join("recipe.toml");
    std::fs::write(
        &recipe,
        format!(
            r#"
name = "tiny-compute"
benchmark = "{}"
config = "tiny"
set = ["batch=16", "steps=6", "chunks=4", "log_every=4", "model.image.width=32",
       "model.image.mlp_dim=64", "model.text.width=32", "model.text.mlp_dim=64",
       "model.embed_dim=32", "data.tokenizer_vocab=300", "data.loader.shuffle_buffer=256"]
metric = "retrieval_r1"
budget = "compute"
evals = 3

[reference]
curated = "strong"
set = ["steps=4"]

[[runs]]
name = "uniform"
method = "uniform"

[[runs]]
name = "jest"
method = "jest"

[[runs]]
name = "flexi-jest"
method = "flexi-jest"
"#,
            bench.display()
        ),
    )
    .unwrap();
    let out = root.join("out");
    let (ok, table, err) = jester(&[
        "experiment",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let summary = read(&out.join("summary.json"));
    assert_eq!(summary["budget"], "compute");
    let runs = summary["runs"].as_array().unwrap();
    let spent = |run: &Value| {
        let s = read(&Path::new(run["dir"].as_str().unwrap()).join("summary.json"));
        let steps = s["steps"].as_f64().unwrap();
        let total = s["flops_train"].as_f64().unwrap() + s["flops_score"].as_f64().unwrap();
        (steps, total, total / steps)
    };
    let (jest_steps, budget, _) = spent(&runs[1]);
    assert_eq!(
        jest_steps, 6.0,
        "JEST, the costliest per iteration, keeps the recipe's steps"
    );
    for run in runs {
        let (steps, total, per_step) = spent(run);
        assert!(
            total >= budget * (1.0 - 1e-9) && total < budget + per_step,
            "{}: {steps} steps spent {total} of {budget}",
            run["name"]
        );
        assert_eq!(run["compute"]["budget_flops"].as_f64().unwrap(), budget);
    }
    assert!(spent(&runs[0]).0 > spent(&runs[2]).0 && spent(&runs[2]).0 > jest_steps);
    // Uniform is 1× in every ratio of the equal-compute table.
    assert_eq!(runs[0]["compute"]["uniform_flops_ratio"], 1.0);
    assert_eq!(runs[0]["flop_speedup"], 1.0);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## At equal compute"), "{report}");
    assert!(table.contains("At equal compute"), "{table}");
    std::fs::remove_dir_all(root).unwrap();
}
