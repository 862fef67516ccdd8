//! A step runs no forward its score does not use, and its FLOPs follow what ran: with a cached
//! reference `easy-reference` embeds nothing (its selection reads the cache alone) and costs what a
//! uniform step costs, `hard-learner` trains without any reference, and `learnability` pays its
//! learner forward. The selections themselves are unchanged (tests/trajectory.rs in jester-cli
//! holds JEST's 50 steps bit for bit).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jester::config::{TrainConfig, TrainMethod};
use jester::flops;
use jester::run_dir::{load_trained, ReferenceSource, TrainSummary, Unfinished};
use jester::select::ScoreKind;
use jester::train::{train, Seams, Silent, SingleProcess, Start, TrainOptions};
use jester_data::benchmark::synthetic::{generate, SyntheticConfig};

fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("jester-scoring-cost-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        generate(&SyntheticConfig::tiny(), &dir.join("bench")).unwrap();
        dir
    })
}

fn config(method: TrainMethod, score: ScoreKind) -> TrainConfig {
    let mut config = TrainConfig::load(
        "tiny",
        &[
            "model.image.width=32".into(),
            "model.image.mlp_dim=64".into(),
            "model.text.width=32".into(),
            "model.text.mlp_dim=64".into(),
            "model.embed_dim=32".into(),
            "batch=16".into(),
            "steps=3".into(),
            "chunks=4".into(),
            "data.tokenizer_vocab=300".into(),
            "data.loader.shuffle_buffer=256".into(),
        ],
    )
    .unwrap();
    config.method = method;
    config.score = score;
    config
}

fn run(name: &str, config: TrainConfig, data: &str, reference: ReferenceSource) -> TrainSummary {
    let options = TrainOptions {
        out: root().join(name),
        data: vec![root()
            .join("bench")
            .join(data)
            .to_string_lossy()
            .into_owned()],
        reference,
        unfinished_reference: Unfinished::Refuse,
        device: tch::Device::Cpu,
        eval: None,
    };
    let seams = Seams::single_process(Box::new(jester::eval::open));
    train(Start::Fresh(Box::new(config)), &options, seams, &mut Silent).unwrap()
}

/// A reference trained briefly on the curated set, and its embeddings of the pool.
fn cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        run(
            "reference",
            config(TrainMethod::Uniform, ScoreKind::Learnability),
            "curated-strong",
            ReferenceSource::None,
        );
        let trained = load_trained(
            &root().join("reference"),
            tch::Device::Cpu,
            Unfinished::Refuse,
        )
        .unwrap();
        let cache = root().join("reference-pool.safetensors");
        let pool = root().join("bench/pool").to_string_lossy().into_owned();
        jester::embed::embed_shards(&trained, &[pool], &cache, 256, 2, &SingleProcess, |_| {})
            .unwrap();
        cache
    })
}

fn jest(score: ScoreKind) -> TrainConfig {
    config(TrainMethod::Jest, score)
}

#[test]
fn easy_reference_from_a_cache_embeds_nothing_and_costs_a_uniform_step() {
    let c = jest(ScoreKind::EasyReference);
    let summary = run(
        "easy",
        c.clone(),
        "pool",
        ReferenceSource::Cache(cache().to_owned()),
    );
    let m = &c.model;
    // Only the selection's block products over the cached reference (one model): no forward.
    let selection = flops::selection(c.batch, c.super_batch(), m.embed_dim, 1);
    assert_eq!(summary.flops_score, 3.0 * selection);
    let forwards: Vec<_> = flops::per_iteration(&c, None)
        .into_iter()
        .filter(|p| p.phase == "score" && p.tower != "selection")
        .collect();
    assert!(forwards.is_empty(), "{forwards:?}");
    assert_eq!(format!("{:.2}", summary.cost_vs_uniform), "1.00");
}

#[test]
fn learnability_pays_the_learner_forward_and_hard_learner_needs_no_reference() {
    let c = jest(ScoreKind::Learnability);
    let summary = run(
        "learnability",
        c.clone(),
        "pool",
        ReferenceSource::Cache(cache().to_owned()),
    );
    let m = &c.model;
    let big = c.super_batch();
    let forward = big as f64 * flops::example_forward(m, c.score_patch());
    let selection = flops::selection(c.batch, big, m.embed_dim, 2);
    let per_step = forward + selection;
    assert!(
        (summary.flops_score - 3.0 * per_step).abs() < 1e-9 * per_step,
        "{} vs {}",
        summary.flops_score,
        3.0 * per_step
    );
    // The learner alone: trains with no reference at all, scoring its own forward.
    let c = jest(ScoreKind::HardLearner);
    let summary = run("hard", c.clone(), "pool", ReferenceSource::None);
    let selection = flops::selection(c.batch, big, m.embed_dim, 1);
    assert!((summary.flops_score - 3.0 * (forward + selection)).abs() < 1e-9 * forward);
}

#[test]
fn distillation_from_a_cache_adds_only_its_logits() {
    // JEST + KD reads the reference rows scoring already looked up; uniform + KD looks up the
    // trained rows alone. Neither runs a forward: only the b × b logits are added.
    let m = jest(ScoreKind::Learnability).model;
    let kd = jester::loss::distill_flops(16, m.embed_dim);
    for method in [TrainMethod::Jest, TrainMethod::Uniform] {
        let plain = config(method, ScoreKind::Learnability);
        let mut distilled = plain.clone();
        distilled.distill = 0.5;
        let name = format!("kd-{}", method.name());
        let cache = ReferenceSource::Cache(cache().to_owned());
        let with = run(&name, distilled, "pool", cache.clone());
        let without = run(&format!("{name}-off"), plain, "pool", cache);
        assert_eq!(with.flops_score, without.flops_score, "{method:?}");
        let added = with.flops_train - without.flops_train;
        assert!(
            (added - 3.0 * kd).abs() < 1e-9 * kd,
            "{method:?}: {added} vs {}",
            3.0 * kd
        );
        assert!(with.final_loss.is_finite());
    }
}

#[test]
fn distillation_without_a_reference_is_refused_before_training() {
    let mut c = config(TrainMethod::Uniform, ScoreKind::Learnability);
    c.distill = 1.0;
    let options = TrainOptions {
        out: root().join("kd-no-reference"),
        data: vec![root().join("bench/pool").to_string_lossy().into_owned()],
        reference: ReferenceSource::None,
        unfinished_reference: Unfinished::Refuse,
        device: tch::Device::Cpu,
        eval: None,
    };
    let seams = Seams::single_process(Box::new(jester::eval::open));
    let err = train(Start::Fresh(Box::new(c)), &options, seams, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("distill = 1 needs a reference") && err.contains("--reference"),
        "{err}"
    );
    assert!(
        !root().join("kd-no-reference").exists(),
        "nothing half-made is left"
    );
}
