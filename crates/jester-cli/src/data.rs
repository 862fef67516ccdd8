//! `jester data`: data-set generators.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use jester_data::synthetic_embeddings::{generate, write_safetensors, ClusteredConfig};

use crate::output::{with_overrides, write_json};

#[derive(Subcommand)]
pub enum DataCommand {
    /// Clustered learner and reference embeddings of one super-batch, with ground truth.
    Embeddings(EmbeddingsArgs),
}

#[derive(Args)]
pub struct EmbeddingsArgs {
    /// Output folder: learner.safetensors, reference.safetensors, truth.json, config.json.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    seed: Option<u64>,
    /// Generator settings, e.g. --set examples=20480 --set dim=256 (see config.json for all).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Embeddings(args) => embeddings(args),
    }
}

fn embeddings(args: EmbeddingsArgs) -> Result<()> {
    let mut config = with_overrides(ClusteredConfig::default(), &args.set)?;
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    let e = generate(&config)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_safetensors(
        &e.learner,
        e.examples,
        e.dim,
        &args.out.join("learner.safetensors"),
    )?;
    write_safetensors(
        &e.reference,
        e.examples,
        e.dim,
        &args.out.join("reference.safetensors"),
    )?;
    write_json(&args.out.join("truth.json"), &e.truth)?;
    write_json(&args.out.join("config.json"), &config)?;
    tracing::info!(
        "wrote {} examples × {} dims ({} topics, {:.0}% learnt, {:.0}% misaligned) to {}",
        e.examples,
        e.dim,
        config.clusters,
        100.0 * config.learnt_fraction,
        100.0 * config.misaligned,
        args.out.display()
    );
    Ok(())
}
