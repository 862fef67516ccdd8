//! What the ranks of a data-parallel run tell each other besides a step's tensors
//! (docs/ARCHITECTURE.md, "Many processes"): rank 0 opens the run folder and sends what it read
//! or made; loader positions are gathered for checkpoints; weights are compared by checksum.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use jester_data::tokenizer::TextTokenizer;
use jester_data::LoaderCursor;

use super::options::{Start, TrainOptions};
use super::setup::set_up;
use super::step::Step;
use crate::collective::all_gather_json;
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::run_dir::{latest_checkpoint, read_state, Claim, RunInputs, RunState, Unfinished};

/// What rank 0 reads or makes of the run folder, sent to every rank.
#[derive(Serialize, Deserialize)]
pub(super) struct Opened {
    pub config: TrainConfig,
    #[serde(with = "tokenizer_json")]
    pub tokenizer: TextTokenizer,
    pub state: RunState,
    pub checkpoint: Option<PathBuf>,
}

mod tokenizer_json {
    use jester_data::tokenizer::TextTokenizer;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &TextTokenizer, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_json().map_err(serde::ser::Error::custom)?)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TextTokenizer, D::Error> {
        let json = String::deserialize(d)?;
        TextTokenizer::from_json(&json, std::path::Path::new("rank 0's tokenizer"))
            .map_err(D::Error::custom)
    }
}

/// Rank 0 claims the folder and sets up a fresh run or reads the resumed one.
pub(super) fn open_run(
    start: Start,
    options: &TrainOptions,
    shards: &[PathBuf],
    world: usize,
) -> Result<(Claim, Opened)> {
    let claim = match start {
        Start::Fresh(_) => Claim::fresh(&options.out)?,
        Start::Resume => Claim::existing(&options.out)?,
    };
    let dir = claim.dir();
    let (config, tokenizer) = match start {
        Start::Fresh(mut config) => {
            if world > 1 && config.selection_groups == 1 {
                config.selection_groups = world;
            }
            dir.write_inputs(&RunInputs::of(
                &options.data,
                &options.reference,
                &options.eval,
                options.unfinished_reference == Unfinished::Allow,
            ))?;
            set_up(*config, &dir, shards, &options.reference)?
        }
        Start::Resume => (dir.config()?, dir.tokenizer()?),
    };
    let groups = config.selection_groups;
    if !groups.is_multiple_of(world) {
        let sizes: Vec<usize> = (1..=groups).filter(|w| groups.is_multiple_of(*w)).collect();
        return Err(Error::invalid(
            "train",
            format!(
                "{} selects in {groups} groups (selection_groups, one loader share each); it can \
                 run on a world size that divides {groups} ({sizes:?}), not {world}",
                options.out.display()
            ),
        ));
    }
    let (state, checkpoint) = match latest_checkpoint(dir.path())? {
        Some(checkpoint) => (read_state(&checkpoint)?, Some(checkpoint)),
        None => (RunState::default(), None),
    };
    if checkpoint.is_some() && state.cursors().len() != groups {
        return Err(Error::invalid(
            "train",
            format!(
                "the checkpoint holds {} loader positions for {groups} selection groups",
                state.cursors().len()
            ),
        ));
    }
    Ok((
        claim,
        Opened {
            config,
            tokenizer,
            state,
            checkpoint,
        },
    ))
}

/// What the ranks agree on at a metrics line or a checkpoint (one gather, not one per step).
pub(super) struct Synced {
    /// Every group's loader position (rank by rank, each rank's groups in order).
    pub cursors: Vec<LoaderCursor>,
    /// Noise kinds drawn and trained on, summed over ranks, since the previous sync.
    pub noise_drawn: BTreeMap<String, u64>,
    pub noise_selected: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize)]
struct RankReport {
    cursors: Vec<LoaderCursor>,
    noise: (BTreeMap<String, u64>, BTreeMap<String, u64>),
    /// The weights' checksum as its bits (JSON would round the f64).
    checksum: u64,
    /// A hash of the selections since the last sync (every rank selects the same rows).
    #[serde(default)]
    selections: u64,
}

/// Gathers every rank's loader positions and noise counts since the last sync (`noise`, this
/// rank's), and checks that every rank holds the same weights after step `after` and made the same
/// selections since the last sync (`selections`, their hash): ranks that drift apart stop the run,
/// naming the first that differs from rank 0.
pub(super) fn sync(
    step: &Step,
    noise: (BTreeMap<String, u64>, BTreeMap<String, u64>),
    selections: u64,
    after: usize,
) -> Result<Synced> {
    let collective = step.collective();
    let checksum = if collective.world_size() > 1 {
        step.weights_checksum().to_bits()
    } else {
        0
    };
    let reports = all_gather_json(
        collective,
        RankReport {
            cursors: step.cursors(),
            noise,
            checksum,
            selections,
        },
    )?;
    if let Some(rank) = reports
        .iter()
        .position(|r| r.selections != reports[0].selections)
    {
        return Err(Error::Distributed {
            rank,
            what: format!(
                "its selections differ from rank 0's in the steps up to {after}: the ranks no \
                 longer select from one super-batch (a loader, reference or seed that differs by \
                 rank) — resume from the last checkpoint"
            ),
        });
    }
    if let Some(rank) = reports
        .iter()
        .position(|r| r.checksum != reports[0].checksum)
    {
        let all: Vec<f64> = reports.iter().map(|r| f64::from_bits(r.checksum)).collect();
        return Err(Error::Distributed {
            rank,
            what: format!(
                "its weights differ from rank 0's after step {after} (checksums by rank: {all:?}); \
                 the ranks no longer train one model — resume from the last checkpoint"
            ),
        });
    }
    let mut synced = Synced {
        cursors: Vec::new(),
        noise_drawn: BTreeMap::new(),
        noise_selected: BTreeMap::new(),
    };
    for report in reports {
        synced.cursors.extend(report.cursors);
        add_counts(&mut synced.noise_drawn, report.noise.0);
        add_counts(&mut synced.noise_selected, report.noise.1);
    }
    Ok(synced)
}

fn add_counts(total: &mut BTreeMap<String, u64>, part: BTreeMap<String, u64>) {
    for (kind, n) in part {
        *total.entry(kind).or_default() += n;
    }
}
