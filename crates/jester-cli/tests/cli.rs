//! The `jester` binary end to end: generate embeddings, select from them (safetensors and .npy
//! input), and refuse bad input with errors that name the file.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tch::Tensor;

fn jester(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jester"))
        .args(args)
        .output()
        .expect("run jester")
}

fn ok(args: &[&str]) -> String {
    let out = jester(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "jester {args:?} failed:\n{stderr}");
    stderr
}

fn fails(args: &[&str]) -> String {
    let out = jester(args);
    assert!(!out.status.success(), "jester {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jester-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn embeddings(dir: &Path, examples: usize) {
    ok(&[
        "data",
        "embeddings",
        "--out",
        s(dir),
        "--set",
        &format!("examples={examples}"),
        "--set",
        "dim=16",
        "--set",
        "clusters=8",
    ]);
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn select_writes_b_unique_indices_in_chunks_with_scores_and_settings() {
    let d = workdir("select");
    embeddings(&d, 300);
    let (learner, reference, out) = (
        d.join("learner.safetensors"),
        d.join("reference.safetensors"),
        d.join("sel.json"),
    );
    let log = ok(&[
        "select",
        "--learner",
        s(&learner),
        "--reference",
        s(&reference),
        "--out",
        s(&out),
        "--chunks",
        "7",
        "--seed",
        "3",
    ]);
    assert!(log.contains("selected 60 of 300"), "{log}");
    let v = read(&out);
    let indices: Vec<i64> = serde_json::from_value(v["indices"].clone()).unwrap();
    assert_eq!(indices.len(), 60); // ⌊300 · 0.2⌋
    let mut unique = indices.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 60);
    assert!(indices.iter().all(|&i| (0..300).contains(&i)));
    let chunks: Vec<[usize; 2]> = serde_json::from_value(v["chunks"].clone()).unwrap();
    assert_eq!(chunks.len(), 7);
    assert_eq!(
        chunks[6],
        [48, 60],
        "the last chunk takes the remainder: 6 × 8 + 12"
    );
    let (selected, uniform) = (
        v["score_selected"].as_f64().unwrap(),
        v["score_superbatch_mean"].as_f64().unwrap(),
    );
    assert!(
        selected > uniform,
        "joint learnability {selected} should beat a uniform batch's {uniform}"
    );
    assert_eq!(v["settings"]["method"], "joint");
    assert_eq!(v["settings"]["score"], "learnability");
    assert_eq!(v["settings"]["batch"], 60);
    assert_eq!(v["settings"]["seed"], 3);

    // Same seed, same selection; another seed, another one.
    let again = d.join("again.json");
    ok(&[
        "select",
        "--learner",
        s(&learner),
        "--reference",
        s(&reference),
        "--out",
        s(&again),
        "--chunks",
        "7",
        "--seed",
        "3",
    ]);
    assert_eq!(read(&again)["indices"], v["indices"]);
    ok(&[
        "select",
        "--learner",
        s(&learner),
        "--reference",
        s(&reference),
        "--out",
        s(&again),
        "--chunks",
        "7",
        "--seed",
        "4",
    ]);
    assert_ne!(read(&again)["indices"], v["indices"]);
}

#[test]
fn npy_input_selects_what_the_safetensors_input_selects() {
    let d = workdir("npy");
    embeddings(&d, 120);
    let mut args: Vec<String> = vec!["select".into()];
    for model in ["learner", "reference"] {
        let tensors = Tensor::read_safetensors(d.join(format!("{model}.safetensors"))).unwrap();
        for (name, t) in &tensors {
            match name.as_str() {
                "image" | "text" => {
                    let path = d.join(format!("{model}_{name}.npy"));
                    t.write_npy(&path).unwrap();
                    args.extend([format!("--{model}-{name}"), path.display().to_string()]);
                }
                _ => args.extend([format!("--{model}-{name}"), t.double_value(&[]).to_string()]),
            }
        }
    }
    let (a, b) = (d.join("a.json"), d.join("b.json"));
    args.extend([
        "--out".into(),
        a.display().to_string(),
        "--batch".into(),
        "30".into(),
    ]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&[
        "select",
        "--learner",
        s(&d.join("learner.safetensors")),
        "--reference",
        s(&d.join("reference.safetensors")),
        "--out",
        s(&b),
        "--batch",
        "30",
    ]);
    assert_eq!(read(&a)["indices"], read(&b)["indices"]);
}

#[test]
fn bad_input_is_refused_naming_the_file_and_the_problem() {
    let d = workdir("bad");
    embeddings(&d, 100);
    let other = d.join("other");
    embeddings(&other, 90);
    let learner = d.join("learner.safetensors");
    let out = d.join("sel.json");
    let select = |extra: &[&str]| {
        let mut args = vec!["select", "--learner", s(&learner), "--out", s(&out)];
        args.extend_from_slice(extra);
        fails(&args)
    };
    let err = select(&["--reference", s(&other.join("reference.safetensors"))]);
    assert!(
        err.contains("B = 100") && err.contains("90") && err.contains("other"),
        "{err}"
    );
    let err = select(&[
        "--reference",
        s(&d.join("reference.safetensors")),
        "--batch",
        "101",
    ]);
    assert!(err.contains("101") && err.contains("100"), "{err}");
    let err = select(&[]);
    assert!(err.contains("--reference"), "{err}");
    let missing = d.join("missing.safetensors");
    let err = select(&["--reference", s(&missing)]);
    assert!(err.contains("missing.safetensors"), "{err}");
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, [0u8; 64]).unwrap();
    let err = select(&["--reference", s(&junk)]);
    assert!(
        err.contains("junk.safetensors") && err.contains("not a safetensors file"),
        "{err}"
    );
    let err = select(&[
        "--reference",
        s(&d.join("reference.safetensors")),
        "--score",
        "loudest",
    ]);
    assert!(err.contains("loudest"), "{err}");
    assert!(
        !out.exists(),
        "a failed selection must not leave output behind"
    );
}
