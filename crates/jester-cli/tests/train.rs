//! `jester train` and `jester embed` end to end on the tiny synthetic benchmark: a reference
//! trained on the curated set and cached, every method, exact resume after SIGKILL, the NaN guard,
//! and the errors a user meets first.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

fn jester_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jester"));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run jester")
}

fn ok(args: &[&str]) -> String {
    let out = jester_with(args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "jester {args:?} failed:\n{stderr}");
    stderr
}

fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = jester_with(args, env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "jester {args:?} should have failed:\n{stderr}"
    );
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        // A line being written by a running process may be incomplete: not counted yet.
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A small model so each step takes a few tens of milliseconds.
const SMALL: [&str; 16] = [
    "--set",
    "model.image.width=32",
    "--set",
    "model.image.mlp_dim=64",
    "--set",
    "model.text.width=32",
    "--set",
    "model.text.mlp_dim=64",
    "--set",
    "model.embed_dim=32",
    "--set",
    "log_every=1",
    "--set",
    "data.tokenizer_vocab=300",
    "--set",
    "data.loader.shuffle_buffer=256",
];

struct Fixture {
    root: PathBuf,
    bench: PathBuf,
    reference: PathBuf,
    cache: PathBuf,
}

/// The tiny benchmark, a reference trained on its strong curated set, and its pool embeddings.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("jester-train-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let bench = root.join("bench");
        ok(&["data", "synth", "--preset", "tiny", "--out", s(&bench)]);
        let reference = root.join("reference");
        let mut args = vec![
            "train",
            "--data",
            "",
            "--out",
            s(&reference),
            "--steps",
            "6",
            "--batch",
            "32",
        ];
        let curated = bench.join("curated-strong");
        args[2] = s(&curated);
        args.extend(SMALL);
        ok(&args);
        let cache = root.join("reference-pool.safetensors");
        ok(&[
            "embed",
            "--model",
            s(&reference),
            "--data",
            s(&bench.join("pool")),
            "--out",
            s(&cache),
        ]);
        Fixture {
            root,
            bench,
            reference,
            cache,
        }
    })
}

fn jest_args<'a>(f: &'a Fixture, out: &'a str, pool: &'a str, steps: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--data",
        pool,
        "--out",
        out,
        "--method",
        "jest",
        "--reference",
        s(&f.cache),
        "--steps",
        steps,
        "--batch",
        "16",
        "--chunks",
        "4",
        "--checkpoint-every",
        "4",
    ];
    args.extend(SMALL);
    args
}

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
    ok(&[
        "embed",
        "--model",
        s(&f.reference),
        "--data",
        s(&f.bench.join("eval")),
        "--out",
        s(&eval_cache),
    ]);
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
        &[
            "embed",
            "--model",
            s(&f.root),
            "--data",
            s(&pool),
            "--out",
            s(&f.root.join("e.safetensors")),
        ],
        &[],
    );
    assert!(err.contains("not a jester run folder"), "{err}");
}

#[test]
fn a_reference_scored_online_gives_the_cached_references_selections() {
    // Same weights, same inputs: scoring the reference online must select what the cache selects.
    let f = fixture();
    let pool = f.bench.join("pool");
    let cached = f.root.join("cached");
    let online = f.root.join("online");
    let base = |out: &Path| -> Vec<String> {
        let mut a: Vec<String> = [
            "train",
            "--data",
            s(&pool),
            "--out",
            s(out),
            "--method",
            "jest",
            "--steps",
            "3",
            "--batch",
            "16",
            "--chunks",
            "4",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(SMALL.iter().map(|x| x.to_string()));
        // The online reference feeds the learner's token ids to the reference: one tokenizer.
        a.extend([
            "--set".into(),
            format!("data.tokenizer={}", s(&f.reference.join("tokenizer.json"))),
        ]);
        a
    };
    let mut a = base(&cached);
    a.extend(["--reference".into(), s(&f.cache).into()]);
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let mut b = base(&online);
    b.extend(["--reference-model".into(), s(&f.reference).into()]);
    ok(&b.iter().map(String::as_str).collect::<Vec<_>>());
    for (x, y) in metrics(&cached).iter().zip(metrics(&online).iter()) {
        assert_eq!(x["noise_selected"], y["noise_selected"]);
        let (lx, ly) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
        assert!((lx - ly).abs() < 1e-4 * lx.abs(), "{lx} vs {ly}");
    }
    let (sc, so) = (
        read(&cached.join("summary.json")),
        read(&online.join("summary.json")),
    );
    assert!(
        so["cost_vs_uniform"].as_f64().unwrap() > sc["cost_vs_uniform"].as_f64().unwrap() + 1.0
    );
}

#[test]
fn a_run_folder_in_use_is_refused_naming_the_holder() {
    // Two `jester train --out X` at once (e.g. the same command on two ranks) must not both write.
    let f = fixture();
    let pool = f.bench.join("pool");
    let out = f.root.join("locked");
    std::fs::create_dir_all(&out).unwrap();
    let held = jester::lock::Lock::folder(&out, "the run folder").unwrap();
    let args = jest_args(f, s(&out), s(&pool), "2");
    let err = fails(&args, &[]);
    assert!(
        err.contains("in use by another process")
            && err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(
        !out.join("config.json").exists(),
        "the refused run wrote nothing"
    );
    // An embedding cache too.
    let cache = f.root.join("locked.safetensors");
    let held_cache = jester::lock::Lock::beside(&cache, "the embedding cache").unwrap();
    let err = fails(
        &[
            "embed",
            "--model",
            s(&f.reference),
            "--data",
            s(&pool),
            "--out",
            s(&cache),
        ],
        &[],
    );
    assert!(err.contains("in use by another process"), "{err}");
    drop((held, held_cache));
    ok(&args);
}

#[test]
fn an_unfinished_reference_is_refused_unless_asked_for() {
    let f = fixture();
    let curated = f.bench.join("curated-strong");
    let unfinished = f.root.join("unfinished-reference");
    let mut args = vec![
        "train",
        "--data",
        s(&curated),
        "--out",
        s(&unfinished),
        "--steps",
        "8",
        "--batch",
        "16",
        "--checkpoint-every",
        "4",
    ];
    args.extend(SMALL);
    // A run stopped between its checkpoints at steps 4 and 8: finish it, then take back what
    // steps 5–8 wrote.
    ok(&args);
    for written in ["model.safetensors", "summary.json"] {
        std::fs::remove_file(unfinished.join(written)).unwrap();
    }
    std::fs::remove_dir_all(unfinished.join("checkpoints/step-000000008")).unwrap();
    std::fs::write(unfinished.join("checkpoints/latest"), "step-000000004").unwrap();
    let cache = f.root.join("unfinished.safetensors");
    let embed = |extra: &[&'static str]| {
        let mut a = vec![
            "embed".to_string(),
            "--model".into(),
            s(&unfinished).into(),
            "--data".into(),
            s(&f.bench.join("pool")).into(),
            "--out".into(),
            s(&cache).into(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let refused = embed(&[]);
    let err = fails(&refused.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(
        err.contains("unfinished") && err.contains("step 4") && err.contains("--allow-unfinished"),
        "{err}"
    );
    assert!(!cache.exists());
    let allowed = embed(&["--allow-unfinished"]);
    let log = ok(&allowed.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        log.contains("checkpoint at step 4"),
        "says which checkpoint: {log}"
    );
    assert!(cache.exists());
    // Scoring online with it: refused the same way.
    let out = f.root.join("online-unfinished");
    let err = fails(
        &[
            "train",
            "--data",
            s(&f.bench.join("pool")),
            "--out",
            s(&out),
            "--method",
            "jest",
            "--reference-model",
            s(&unfinished),
            "--set",
            &format!("data.tokenizer={}", s(&unfinished.join("tokenizer.json"))),
        ],
        &[],
    );
    assert!(err.contains("--allow-unfinished"), "{err}");
    assert!(!out.exists());
}
