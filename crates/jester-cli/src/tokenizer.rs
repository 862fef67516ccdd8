//! `jester tokenizer`: learn a BPE vocabulary from the captions of a shard set.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use jester_data::decode::{caption, DecodeOptions};
use jester_data::tokenizer::TextTokenizer;
use jester_data::{expand_shards, Loader, LoaderOptions};

#[derive(Subcommand)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE tokenizer on the captions of SHARDS and save tokenizer.json.
    Train(TrainArgs),
}

#[derive(Args)]
pub struct TrainArgs {
    /// Shards: files, folders, globs or brace ranges.
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<String>,
    /// Where to save tokenizer.json.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 8192)]
    vocab_size: usize,
    /// Merges seen fewer times than this are not learnt.
    #[arg(long, default_value_t = 2)]
    min_frequency: u64,
}

pub fn run(command: TokenizerCommand) -> Result<()> {
    let TokenizerCommand::Train(a) = command;
    let shards = expand_shards(&a.data)?;
    let options = LoaderOptions {
        shuffle: false,
        epochs: Some(1),
        ..LoaderOptions::default()
    };
    // Captions only: images are never decoded.
    let work = Arc::new(|raw| caption(&raw, &DecodeOptions::default()));
    let mut loader = Loader::new(shards, &options, work, None)?;
    let mut failure = None;
    let captions = loader
        .by_ref()
        .map_while(|c| c.map_err(|e| failure = Some(e)).ok());
    let tokenizer = TextTokenizer::train_bpe(captions, a.vocab_size, a.min_frequency)?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    tokenizer.save(&a.out)?;
    println!(
        "learnt {} tokens from {} captions; saved {}; {}",
        tokenizer.vocab_size(),
        loader.cursor().samples,
        a.out.display(),
        loader.skipped()
    );
    Ok(())
}
