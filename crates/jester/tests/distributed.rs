//! The data-parallel driver through `collective::Distributed` on a fake two-process group whose
//! peer mirrors this process (every gather returns our rows twice, a sum doubles): rank 0's
//! roles (the config it writes, two loader positions per checkpoint, global counters), and the
//! weight checksum that stops a run whose ranks drifted apart, naming the rank. The real group
//! (torch.distributed, gloo, 2 processes) is tested in crates/jester-py/tests.
use std::path::PathBuf;

use tch::{Device, Kind, Tensor};

use jester::collective::{Distributed, ProcessGroup};
use jester::config::TrainConfig;
use jester::run_dir::{read_state, ReferenceSource, RunDir, Unfinished};
use jester::train::{train, Seams, Silent, Start, TrainOptions};
use jester::Error;
use jester_data::benchmark::synthetic::{generate, SyntheticConfig};

struct Mirror {
    /// Make this field of the peer's sync report (its weight checksum, or its selections' hash)
    /// differ from ours.
    drift: Option<&'static str>,
}

impl ProcessGroup for Mirror {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        2
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn all_gather(&self, tensor: &Tensor) -> jester::Result<Tensor> {
        let mut peer = tensor.copy();
        if let Some(field) = self.drift.filter(|_| tensor.kind() == Kind::Uint8) {
            // The peer reports another value: one digit of it changed, length kept.
            let mut bytes = Vec::<u8>::try_from(&peer).unwrap();
            let key = format!("\"{field}\":").into_bytes();
            if let Some(at) = bytes.windows(key.len()).position(|w| w == key) {
                let digits = at + key.len();
                let end = digits
                    + bytes[digits..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                bytes[end - 1] = if bytes[end - 1] == b'9' {
                    b'8'
                } else {
                    bytes[end - 1] + 1
                };
                peer = Tensor::from_slice(&bytes);
            }
        }
        Ok(Tensor::cat(&[tensor.shallow_clone(), peer], 0))
    }
    fn all_reduce_sum(&self, tensor: &Tensor) -> jester::Result<()> {
        let _ = tensor.shallow_clone().g_mul_scalar_(2);
        Ok(())
    }
    fn broadcast(&self, _tensor: &Tensor, _root: usize) -> jester::Result<()> {
        Ok(())
    }
    fn barrier(&self) -> jester::Result<()> {
        Ok(())
    }
}

fn setup(name: &str) -> (PathBuf, TrainConfig, TrainOptions) {
    let root = std::env::temp_dir().join(format!("jester-lib-dp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    generate(&SyntheticConfig::tiny(), &root.join("bench")).unwrap();
    let config = TrainConfig::load(
        "tiny",
        &[
            "model.image.width=32".into(),
            "model.image.mlp_dim=64".into(),
            "model.text.width=32".into(),
            "model.text.mlp_dim=64".into(),
            "model.embed_dim=32".into(),
            "method=jest".into(),
            "score=hard-learner".into(),
            "chunks=2".into(),
            "log_every=1".into(),
            "checkpoint_every=3".into(),
            "batch=16".into(),
            "steps=6".into(),
            "data.tokenizer_vocab=300".into(),
        ],
    )
    .unwrap();
    let options = TrainOptions {
        out: root.join("run"),
        data: vec![root.join("bench/pool").to_string_lossy().into_owned()],
        reference: ReferenceSource::None,
        unfinished_reference: Unfinished::Refuse,
        device: Device::Cpu,
        eval: None,
    };
    (root, config, options)
}

fn seams(drift: Option<&'static str>) -> Seams {
    let mut seams = Seams::single_process(Box::new(jester::eval::open));
    seams.collective = Box::new(Distributed::new(Mirror { drift }));
    seams
}

#[test]
fn rank_zero_writes_the_run_with_every_ranks_loader_position() {
    let (root, config, options) = setup("roles");
    let b = config.batch;
    let summary = train(
        Start::Fresh(Box::new(config)),
        &options,
        seams(None),
        &mut Silent,
    )
    .unwrap();
    let dir = RunDir::new(&options.out);
    assert_eq!(
        dir.config().unwrap().selection_groups,
        2,
        "W = 2 sets the groups"
    );
    let super_batch = dir.config().unwrap().super_batch() as u64;
    assert_eq!(summary.examples_drawn, 6 * super_batch, "B over both ranks");
    assert_eq!(summary.examples_seen, 6 * b as u64);
    assert_eq!(dir.metrics().unwrap().len(), 6);
    let state = read_state(&options.out.join("checkpoints/step-000000006")).unwrap();
    assert_eq!(state.cursors().len(), 2);
    // Rank 0 read only its own share; the peer's position is what it reported (a mirror: ours).
    assert_eq!(state.cursor, state.other_cursors[0]);
    assert_eq!(state.cursor.samples, 6 * super_batch / 2);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn ranks_whose_weights_drift_apart_stop_the_run_naming_the_rank() {
    let (root, config, options) = setup("drift");
    let err = train(
        Start::Fresh(Box::new(config)),
        &options,
        seams(Some("checksum")),
        &mut Silent,
    )
    .unwrap_err();
    match &err {
        Error::Distributed { rank: 1, what } => {
            assert!(
                what.contains("weights differ") && what.contains("after step 1"),
                "{what}"
            );
        }
        other => panic!("expected a drift error naming rank 1, got {other}"),
    }
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn ranks_whose_selections_differ_stop_the_run_naming_the_rank() {
    // The all-reduce keeps weights equal whatever the ranks select: only the selections' hash
    // can see ranks that select from different super-batches.
    let (root, config, options) = setup("selections");
    let err = train(
        Start::Fresh(Box::new(config)),
        &options,
        seams(Some("selections")),
        &mut Silent,
    )
    .unwrap_err();
    match &err {
        Error::Distributed { rank: 1, what } => {
            assert!(
                what.contains("selections differ") && what.contains("up to 1"),
                "{what}"
            );
        }
        other => panic!("expected a selection error naming rank 1, got {other}"),
    }
    let _ = std::fs::remove_dir_all(root);
}
