//! The reference model end to end: scored online it selects what its cached embeddings select, a
//! run folder (or embedding cache) locked by another process is refused naming the holder, and an
//! unfinished reference is refused unless `--allow-unfinished` asks for it.
mod common;

use std::path::Path;

use common::{embed_args, fails, fixture, jest_args, metrics, ok, read, s, SMALL};

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
    let err = fails(&embed_args(&f.reference, &pool, &cache), &[]);
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
