//! A fixed-seed 50-step `jest` run on the tiny preset must give the per-step losses recorded in
//! `tests/data/jest_trajectory.json`, bit for bit: the guard that a change meant to reshape the code
//! (not the algorithm) changed nothing a run computes.
//!
//! libtorch runs on one thread here (`OMP_NUM_THREADS=1`) so reductions happen in one order whatever
//! the core count, and its kernels are pinned to one instruction set (`KERNELS`: ATen's vectorised
//! kernels, MKL's and oneDNN's code paths at AVX2), so that the bits do not follow the CPU: at
//! AVX-512 an AMD EPYC and an Intel Xeon differ from step 2. A CPU without AVX2 cannot repeat them.
//! To record again after an intended change of the numbers, run this test with
//! `JESTER_RECORD_TRAJECTORY=1` and commit the file with the reason.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The instruction set every kernel runs at, whatever the CPU offers beyond it.
const KERNELS: [(&str, &str); 3] = [
    ("ATEN_CPU_CAPABILITY", "avx2"),
    ("MKL_CBWR", "AVX2,STRICT"),
    ("ONEDNN_MAX_CPU_ISA", "AVX2"),
];

fn jester(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_jester"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .envs(KERNELS)
        .output()
        .expect("run jester");
    assert!(
        out.status.success(),
        "jester {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jest_trajectory.json")
}

#[test]
fn a_fixed_seed_jest_run_repeats_its_recorded_losses_bit_for_bit() {
    let root = std::env::temp_dir().join(format!("jester-trajectory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let bench = root.join("bench");
    jester(&["data", "synth", "--preset", "tiny", "--out", s(&bench)]);
    let settings = [
        "log_every=1",
        "data.tokenizer_vocab=300",
        "data.loader.shuffle_buffer=256",
        "seed=7",
    ];
    let common: Vec<&str> = settings.iter().flat_map(|s| ["--set", s]).collect();
    let curated = bench.join("curated-strong");
    let pool = bench.join("pool");
    let reference = root.join("reference");
    let mut args = vec![
        "train",
        "--data",
        s(&curated),
        "--out",
        s(&reference),
        "--steps",
        "10",
        "--batch",
        "32",
    ];
    args.extend(&common);
    jester(&args);
    let cache = root.join("reference.safetensors");
    jester(&[
        "embed",
        "--model",
        s(&reference),
        "--data",
        s(&pool),
        "--out",
        s(&cache),
    ]);
    let run = root.join("jest");
    let mut args = vec![
        "train",
        "--data",
        s(&pool),
        "--out",
        s(&run),
        "--method",
        "jest",
        "--reference",
        s(&cache),
        "--steps",
        "50",
        "--batch",
        "16",
        "--chunks",
        "4",
        "--checkpoint-every",
        "25",
    ];
    args.extend(&common);
    jester(&args);

    let losses: Vec<f64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["loss"].as_f64().unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 50, "a metrics line per step");
    let bits: Vec<String> = losses
        .iter()
        .map(|l| format!("{:016x}", l.to_bits()))
        .collect();
    // Recording is explicit: only `=1` rewrites the golden (an empty or stray value does not).
    if std::env::var("JESTER_RECORD_TRAJECTORY").as_deref() == Ok("1") {
        let record = serde_json::json!({
            "what": "per-step training loss of `jester train --method jest` on the tiny synthetic \
                     benchmark (see tests/trajectory.rs), as f64 bit patterns and values",
            "bits": bits,
            "loss": losses,
        });
        std::fs::write(
            golden_path(),
            serde_json::to_string_pretty(&record).unwrap() + "\n",
        )
        .unwrap();
    }
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden_path()).unwrap()).unwrap();
    let expected: Vec<&str> = golden["bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    for (step, (got, want)) in bits.iter().zip(&expected).enumerate() {
        assert_eq!(
            got,
            want,
            "step {}: loss {} differs from the recorded {}",
            step + 1,
            losses[step],
            golden["loss"][step]
        );
    }
    assert_eq!(bits.len(), expected.len());
    let _ = std::fs::remove_dir_all(&root);
}
