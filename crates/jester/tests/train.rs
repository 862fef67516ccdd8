//! The training loop through the library's seams: a poisoned loss (the step's test-only loss hook)
//! stops the run naming the step and the last good checkpoint, which resumes; the step's typed
//! metrics are the lines the run folder holds.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jester::config::TrainConfig;
use jester::run_dir::{ReferenceSource, RunDir, Unfinished};
use jester::train::{train, Seams, Silent, Start, TrainOptions};
use jester::Error;
use jester_data::benchmark::synthetic::{generate, SyntheticConfig};

fn bench() -> &'static Path {
    static BENCH: OnceLock<PathBuf> = OnceLock::new();
    BENCH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("jester-lib-train-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        generate(&SyntheticConfig::tiny(), &dir).unwrap();
        dir
    })
}

fn small_config(steps: usize) -> TrainConfig {
    TrainConfig::load(
        "tiny",
        &[
            "model.image.width=32".into(),
            "model.image.mlp_dim=64".into(),
            "model.text.width=32".into(),
            "model.text.mlp_dim=64".into(),
            "model.embed_dim=32".into(),
            "log_every=1".into(),
            "checkpoint_every=4".into(),
            "batch=16".into(),
            format!("steps={steps}"),
            "data.tokenizer_vocab=300".into(),
            "data.loader.shuffle_buffer=256".into(),
        ],
    )
    .unwrap()
}

/// Equal up to JSON's decimal round trip (serde_json parses 16-17 digit decimals to within an ulp).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

fn options(out: &Path) -> TrainOptions {
    TrainOptions {
        out: out.to_owned(),
        data: vec![bench().join("pool").to_string_lossy().into_owned()],
        reference: ReferenceSource::None,
        unfinished_reference: Unfinished::Refuse,
        device: tch::Device::Cpu,
        eval: None,
    }
}

fn seams(poison_at: Option<usize>) -> Seams {
    let mut seams = Seams::single_process(Box::new(jester::eval::open));
    if let Some(at) = poison_at {
        seams.loss_hook = Some(Box::new(
            move |step, loss| {
                if step == at {
                    loss * f64::NAN
                } else {
                    loss
                }
            },
        ));
    }
    seams
}

#[test]
fn a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint() {
    let out = bench().with_file_name(format!("jester-lib-nan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let err = train(
        Start::Fresh(Box::new(small_config(12))),
        &options(&out),
        seams(Some(7)),
        &mut Silent,
    )
    .unwrap_err();
    let Error::NonFinite {
        step, checkpoint, ..
    } = &err
    else {
        panic!("expected a non-finite error, got {err}");
    };
    assert_eq!(*step, 7);
    assert!(
        checkpoint
            .as_ref()
            .is_some_and(|c| c.ends_with("step-000000004")),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("the training loss is NaN at step 7")
            && message.contains("step-000000004"),
        "{message}"
    );
    let dir = RunDir::new(&out);
    let latest = std::fs::read_to_string(out.join("checkpoints/latest")).unwrap();
    assert_eq!(latest.trim(), "step-000000004");
    assert_eq!(
        dir.metrics().unwrap().len(),
        6,
        "steps 1–6 were logged, 7 not"
    );
    assert!(!dir.is_finished());

    // The good checkpoint resumes, and the resumed run's steps 5–6 repeat the first attempt's.
    let before = dir.metrics().unwrap();
    let summary = train(Start::Resume, &options(&out), seams(None), &mut Silent).unwrap();
    let after = dir.metrics().unwrap();
    assert_eq!(after.len(), 12);
    assert_eq!(after[4].update.loss, before[4].update.loss);
    assert_eq!(after[5].update.loss, before[5].update.loss);
    assert_eq!(summary.steps, 12);
    let written = dir.summary().unwrap();
    assert_eq!(
        (written.steps, written.examples_seen, written.examples_drawn),
        (summary.steps, summary.examples_seen, summary.examples_drawn)
    );
    assert!(close(written.final_loss, summary.final_loss));
    assert!(close(written.flops_train, summary.flops_train));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_run_folder_holds_the_steps_typed_records() {
    let out = bench().with_file_name(format!("jester-lib-records-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let summary = train(
        Start::Fresh(Box::new(small_config(3))),
        &options(&out),
        seams(None),
        &mut Silent,
    )
    .unwrap();
    let dir = RunDir::new(&out);
    let lines = dir.metrics().unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2].examples_seen, 48);
    assert!(close(lines[2].update.loss, summary.final_loss));
    assert_eq!(dir.config().unwrap(), {
        let mut c = small_config(3);
        c.model.text.vocab_size = dir.tokenizer().unwrap().vocab_size();
        c
    });
    assert_eq!(
        dir.inputs().unwrap().reference_source(),
        ReferenceSource::None
    );
    let trained =
        jester::run_dir::load_trained(&out, tch::Device::Cpu, Unfinished::Refuse).unwrap();
    assert_eq!(trained.checkpoint_step, None);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Records each step's selected rows.
struct Selections(Vec<Vec<usize>>);

impl jester::train::Observer for Selections {
    fn stepped(&mut self, metrics: &jester::train::StepMetrics) {
        self.0.push(metrics.selected.clone());
    }
}

#[test]
fn selection_groups_give_each_group_its_quota_in_every_chunk() {
    let out = bench().with_file_name(format!("jester-lib-groups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut config = small_config(3);
    config.method = jester::config::TrainMethod::Jest;
    config.score = jester::select::ScoreKind::HardLearner; // needs no reference
    config.chunks = 4;
    config.selection_groups = 2;
    let mut seen = Selections(Vec::new());
    train(
        Start::Fresh(Box::new(config.clone())),
        &options(&out),
        seams(None),
        &mut seen,
    )
    .unwrap();
    let big = config.super_batch();
    assert_eq!((big, config.batch), (80, 16));
    assert_eq!(seen.0.len(), 3);
    for selected in &seen.0 {
        assert_eq!(selected.len(), 16);
        for chunk in selected.chunks(4) {
            let first = chunk.iter().filter(|&&row| row < big / 2).count();
            assert_eq!(first, 2, "each chunk takes 2 from each half: {selected:?}");
        }
    }
    // Written because it is not 1; a group count that does not divide b is refused up front.
    assert!(std::fs::read_to_string(out.join("config.json"))
        .unwrap()
        .contains("\"selection_groups\": 2"));
    config.selection_groups = 3;
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("selection_groups 3"));
    std::fs::remove_dir_all(&out).unwrap();
}
