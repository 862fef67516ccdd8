//! Shared helpers for the end-to-end `jester train` / `jester embed` tests: running the binary,
//! reading a run's files, and a per-process fixture (the tiny synthetic benchmark, a reference
//! trained on its strong curated set, and that reference's pool embeddings).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

pub fn jester_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jester"));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run jester")
}

pub fn ok(args: &[&str]) -> String {
    let out = jester_with(args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "jester {args:?} failed:\n{stderr}");
    stderr
}

pub fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = jester_with(args, env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "jester {args:?} should have failed:\n{stderr}"
    );
    stderr
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        // A line being written by a running process may be incomplete: not counted yet.
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A small model so each step takes a few tens of milliseconds.
pub const SMALL: [&str; 16] = [
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

pub struct Fixture {
    pub root: PathBuf,
    pub bench: PathBuf,
    pub reference: PathBuf,
    pub cache: PathBuf,
}

/// The tiny benchmark, a reference trained on its strong curated set, and its pool embeddings.
pub fn fixture() -> &'static Fixture {
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

pub fn jest_args<'a>(f: &'a Fixture, out: &'a str, pool: &'a str, steps: &'a str) -> Vec<&'a str> {
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

/// `jester embed --model MODEL --data DATA --out OUT`.
pub fn embed_args<'a>(model: &'a Path, data: &'a Path, out: &'a Path) -> [&'a str; 7] {
    [
        "embed",
        "--model",
        s(model),
        "--data",
        s(data),
        "--out",
        s(out),
    ]
}
