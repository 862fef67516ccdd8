//! What the ranks of a data-parallel run tell each other besides a step's tensors
//! (docs/ARCHITECTURE.md, "Many processes"): rank 0 opens the run folder and sends what it read
//! or made; loader positions are gathered for checkpoints; weights are compared by checksum.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use jester_data::tokenizer::TextTokenizer;
use jester_data::LoaderCursor;

use super::driver::{Start, TrainOptions};
use super::setup::set_up;
use super::step::Step;
use crate::collective::Collective;
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

/// Rank 0's `value` (or its failure) on every rank; a failure on rank 0 fails every rank.
pub(super) fn share_from_lead<T: Serialize + for<'de> Deserialize<'de>>(
    collective: &dyn Collective,
    value: Result<T>,
) -> Result<T> {
    if collective.world_size() == 1 {
        return value;
    }
    let lead = collective.rank() == 0;
    let sent: Option<std::result::Result<&T, String>> =
        lead.then(|| value.as_ref().map_err(|e| e.to_string()));
    let bytes = sent.map(|s| serde_json::to_vec(&s).expect("serialises"));
    let received = collective.broadcast_bytes(bytes)?;
    if lead {
        return value;
    }
    let parsed: std::result::Result<T, String> =
        serde_json::from_slice(&received).map_err(|e| Error::Distributed {
            rank: collective.rank(),
            what: format!("cannot read what rank 0 sent ({e})"),
        })?;
    parsed.map_err(|why| Error::Distributed {
        rank: 0,
        what: format!("failed to open the run: {why}"),
    })
}

/// Every group's loader position (rank by rank, each rank's groups in order).
pub(super) fn all_cursors(step: &Step) -> Result<Vec<LoaderCursor>> {
    let collective = step.collective();
    let mine = serde_json::to_vec(&step.cursors()).expect("cursors serialise");
    let mut cursors = Vec::new();
    for (rank, bytes) in collective.all_gather_bytes(mine)?.into_iter().enumerate() {
        let part: Vec<LoaderCursor> =
            serde_json::from_slice(&bytes).map_err(|e| Error::Distributed {
                rank,
                what: format!("its loader positions do not parse ({e})"),
            })?;
        cursors.extend(part);
    }
    Ok(cursors)
}

/// Every rank must hold the same weights after an update; an error names the ranks that differ.
pub(super) fn check_weights(step: &Step, after: usize) -> Result<()> {
    let collective = step.collective();
    if collective.world_size() == 1 {
        return Ok(());
    }
    let mine = step.weights_checksum().to_bits().to_le_bytes().to_vec();
    let all: Vec<f64> = collective
        .all_gather_bytes(mine)?
        .into_iter()
        .map(|b| f64::from_bits(u64::from_le_bytes(b.try_into().unwrap_or_default())))
        .collect();
    match all.iter().position(|c| c.to_bits() != all[0].to_bits()) {
        None => Ok(()),
        Some(rank) => Err(Error::Distributed {
            rank,
            what: format!(
                "its weights differ from rank 0's after step {after} (checksums by rank: {all:?}); \
                 the ranks no longer train one model — resume from the last checkpoint"
            ),
        }),
    }
}
