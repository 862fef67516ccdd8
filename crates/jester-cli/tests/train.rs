//! `jester train` and `jester embed` end to end on the tiny synthetic benchmark: every method, exact
//! resume after SIGKILL, and the errors a user meets first. The shared fixture (a reference trained
//! on the curated set and cached) is in `common`; the reference's own checks are in `references.rs`.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{embed_args, fails, fixture, jest_args, metrics, ok, read, s, SMALL};

#[test]
fn every_method_trains_and_reports_what_it_kept_and_what_it_cost() {
    let f = fixture();
    let pool = f.bench.join("pool");
    let mut costs = Vec::new();
    for method in ["uniform", "jest", "independent", "flexi-jest"] {
        let out = f.root.join(format!("method-{method}"));
        let mut args = vec![
            "train",
            "--data",
            s(&pool),
            "--out",
            s(&out),
            "--method",
            method,
            "--reference",
            s(&f.cache),
            "--steps",
            "3",
            "--batch",
            "16",
            "--chunks",
            "4",
        ];
        args.extend(SMALL);
        ok(&args);
        let summary = read(&out.join("summary.json"));
        let lines = metrics(&out);
        assert_eq!(lines.len(), 3, "{method}: a line per step at log_every = 1");
        let last = &lines[2];
        for key in [
            "loss",
            "lr",
            "t",
            "b",
            "grad_norm",
            "examples_seen",
            "flops_train",
            "flops_score",
            "wall_seconds",
        ] {
            assert!(
                last[key].is_number(),
                "{method}: metrics lack {key}: {last}"
            );
        }
        assert_eq!(last["examples_seen"], 48);
        let drawn = if method == "uniform" { 48 } else { 240 };
        assert_eq!(
            last["examples_drawn"], drawn,
            "{method}: B = b / (1 − 0.8) = 80"
        );
        // The benchmark carries ground truth, so each line says what was drawn and what was kept.
        let kept: f64 = last["noise_selected"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((kept - 1.0).abs() < 1e-9, "{method}: {last}");
        if method != "uniform" {
            let score = &last["score"];
            assert_eq!(score["kind"], "learnability");
            assert!(
                score["selected"].as_f64().unwrap() > score["uniform"].as_f64().unwrap(),
                "{method}: {score}"
            );
            assert!(last["seconds_per_step"]["select"].is_number());
        }
        assert!(out.join("model.safetensors").exists());
        costs.push((method, summary["cost_vs_uniform"].as_f64().unwrap()));
    }
    // docs/ALGORITHM.md §6 as executed (scoring forward not reused): 1 + B/(3b) = 2.67 plus the selection's
    // block products; flexi-jest scores at a quarter of the image tokens, so it costs less.
    let cost = |m: &str| costs.iter().find(|c| c.0 == m).unwrap().1;
    assert_eq!(cost("uniform"), 1.0);
    assert!((2.66..2.75).contains(&cost("jest")), "{costs:?}");
    assert!((2.66..2.75).contains(&cost("independent")), "{costs:?}");
    assert!(
        cost("flexi-jest") < 0.75 * cost("jest") && cost("flexi-jest") > 1.0,
        "{costs:?}"
    );
}

#[test]
fn a_run_killed_mid_training_resumes_to_the_same_losses() {
    let f = fixture();
    let pool = f.bench.join("pool");
    let (whole, killed) = (f.root.join("whole"), f.root.join("killed"));
    ok(&jest_args(f, s(&whole), s(&pool), "30"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_jester"))
        .args(jest_args(f, s(&killed), s(&pool), "30"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while metrics(&killed).len() < 10 {
        assert!(Instant::now() < deadline, "the run never reached step 10");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !killed.join("model.safetensors").exists(),
        "the run finished before it was killed; the test needs a slower run"
    );
    // Whatever instant the kill hit, `latest` names a complete checkpoint.
    let latest = std::fs::read_to_string(killed.join("checkpoints/latest")).unwrap();
    let checkpoint = killed.join("checkpoints").join(latest.trim());
    let state = read(&checkpoint.join("state.json"));
    let at = state["step"].as_u64().unwrap();
    assert!(at >= 8 && at.is_multiple_of(4), "checkpoint at step {at}");
    for file in ["model.safetensors", "optimizer.safetensors"] {
        assert!(checkpoint.join(file).metadata().unwrap().len() > 0);
    }

    ok(&["train", "--resume", s(&killed)]);
    let (a, b) = (metrics(&whole), metrics(&killed));
    assert_eq!(a.len(), 30);
    assert_eq!(
        b.len(),
        30,
        "the resumed run rewrote the lines after its checkpoint once"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["step"], y["step"]);
        let (lx, ly) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
        assert!(
            (lx - ly).abs() <= 1e-4 * lx.abs(),
            "step {}: {lx} vs {ly}",
            x["step"]
        );
        assert_eq!(x["examples_drawn"], y["examples_drawn"]);
        assert_eq!(
            x["noise_selected"], y["noise_selected"],
            "step {}: another selection",
            x["step"]
        );
    }
}

#[test]
fn mistakes_get_errors_that_say_how_to_fix_them() {
    let f = fixture();
    let pool = f.bench.join("pool");
    // Reference embeddings of another split: the pool's keys are not all there.
    let eval_cache = f.root.join("reference-eval.safetensors");
    ok(&embed_args(
        &f.reference,
        &f.bench.join("eval"),
        &eval_cache,
    ));
    // Keys are split-local (every split numbers its samples from 0), so the eval split's keys
    // would match the pool's first samples: the cache's provenance tells them apart.
    let out = f.root.join("missing-keys");
    let mut args = jest_args(f, s(&out), s(&pool), "2");
    args[8] = s(&eval_cache);
    let other_split = fails(&args, &[]);
    assert!(
        other_split.contains("reference-eval.safetensors")
            && other_split.contains("pool/")
            && other_split.contains("jester embed"),
        "{other_split}"
    );
    assert!(!out.exists(), "a refused start leaves no run folder behind");

    let out = f.root.join("no-reference");
    let err = fails(
        &[
            "train",
            "--data",
            s(&pool),
            "--out",
            s(&out),
            "--method",
            "jest",
        ],
        &[],
    );
    assert!(
        err.contains("needs a reference") && err.contains("--reference"),
        "{err}"
    );
    assert!(!out.exists(), "a refused start leaves no run folder behind");
    // The same command with the input fixed just works.
    ok(&[
        "train",
        "--data",
        s(&pool),
        "--out",
        s(&out),
        "--method",
        "jest",
        "--reference",
        s(&f.cache),
        "--steps",
        "1",
        "--batch",
        "16",
    ]);
    assert!(out.join("model.safetensors").exists());

    let err = fails(
        &["train", "--data", s(&pool), "--out", s(&f.reference)],
        &[],
    );
    assert!(
        err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );

    let err = fails(
        &[
            "train",
            "--data",
            s(&pool),
            "--out",
            s(&f.root.join("x")),
            "--set",
            "optim.lrr=1",
        ],
        &[],
    );
    assert!(err.contains("no such setting"), "{err}");
    assert!(!f.root.join("x").exists());

    let err = fails(
        &embed_args(&f.root, &pool, &f.root.join("e.safetensors")),
        &[],
    );
    assert!(err.contains("not a jester run folder"), "{err}");
}
