//! A fresh run's folder: the tokenizer (given, the online reference's, or trained on the captions)
//! and the resolved config, written before the first step.
use std::path::PathBuf;

use jester_data::decode::caption;
use jester_data::shard_reader::{read_shard, ShardItem};
use jester_data::tokenizer::TextTokenizer;

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::run_dir::{ReferenceSource, RunDir};

/// A fresh run's folder (created and locked by the caller): resolves the tokenizer and the
/// vocabulary, writes `config.json` and `tokenizer.json`.
pub(super) fn set_up(
    mut config: TrainConfig,
    dir: &RunDir,
    shards: &[PathBuf],
    reference: &ReferenceSource,
) -> Result<(TrainConfig, TextTokenizer)> {
    let tokenizer = if !config.data.tokenizer.is_empty() {
        TextTokenizer::from_file(&config.data.tokenizer)?
    } else if let ReferenceSource::Model(dir) = reference {
        // Scoring online feeds the learner's token ids to the reference: share its tokenizer.
        TextTokenizer::from_file(dir.join("tokenizer.json"))?
    } else {
        train_tokenizer(shards, &config)?
    };
    let vocab = tokenizer.vocab_size();
    if config.model.text.vocab_size == 0 {
        config.model.text.vocab_size = vocab;
    } else if config.model.text.vocab_size < vocab {
        return Err(Error::invalid(
            "train config",
            format!(
                "model.text.vocab_size {} is below the tokenizer's {vocab}; set it to 0 to follow the tokenizer",
                config.model.text.vocab_size
            ),
        ));
    }
    config.validate()?;
    dir.write_tokenizer(&tokenizer)?;
    dir.write_config(&config)?;
    Ok((config, tokenizer))
}

/// A byte-level BPE trained on the first captions of the training shards, in file order.
fn train_tokenizer(shards: &[PathBuf], config: &TrainConfig) -> Result<TextTokenizer> {
    let limit = config.data.tokenizer_captions;
    let mut captions = Vec::new();
    for shard in shards {
        read_shard(shard, |item| {
            if let ShardItem::Sample(raw) = item {
                if captions.len() < limit {
                    if let Ok(text) = caption(&raw, &config.data.decode) {
                        captions.push(text);
                    }
                }
            }
        })?;
        if captions.len() >= limit {
            break;
        }
    }
    Ok(TextTokenizer::train_bpe(
        captions.into_iter(),
        config.data.tokenizer_vocab,
        2,
    )?)
}
