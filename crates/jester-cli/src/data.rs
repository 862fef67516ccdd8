//! `jester data`: data-set generators.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use jester_data::benchmark::fashion_mnist::{self, FashionMnistConfig};
use jester_data::benchmark::synthetic::{self, SyntheticConfig};
use jester_data::benchmark::Summary;
use jester_data::synthetic_embeddings::{generate, write_safetensors, ClusteredConfig};

use jester::config::with_overrides;

use crate::output::write_json;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Built-in synthetic scenes (no download): raw pool with known noise, curated sets at three
    /// levels, clean eval set with classes.json.
    Synth(BenchmarkArgs),
    /// Fashion-MNIST scenes from the IDX files of `apt-get install -y dataset-fashion-mnist`.
    FashionMnist(BenchmarkArgs),
    /// Clustered learner and reference embeddings of one super-batch, with ground truth.
    Embeddings(EmbeddingsArgs),
}

#[derive(Args)]
pub struct BenchmarkArgs {
    /// Output folder (must be empty or absent): pool/, curated-{strong,moderate,weak}/, eval/.
    #[arg(long)]
    out: PathBuf,
    /// Sets benchmark.seed.
    #[arg(long)]
    seed: Option<u64>,
    /// `default` (50k pool) or `tiny` (for tests and quick looks).
    #[arg(long, default_value = "default")]
    preset: String,
    /// Settings, dotted for nested ones: --set benchmark.pool=20000 --set image_size=64
    /// (config.json in the output lists them all).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
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
        DataCommand::Synth(args) => {
            let config = preset(&args, SyntheticConfig::default(), SyntheticConfig::tiny())?;
            report(&args, synthetic::generate(&config, &args.out)?)
        }
        DataCommand::FashionMnist(args) => {
            let config = preset(
                &args,
                FashionMnistConfig::default(),
                FashionMnistConfig::tiny(),
            )?;
            report(&args, fashion_mnist::generate(&config, &args.out)?)
        }
        DataCommand::Embeddings(args) => embeddings(args),
    }
}

/// The preset with the overrides and the seed applied.
fn preset<T>(args: &BenchmarkArgs, default: T, tiny: T) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let base = match args.preset.as_str() {
        "default" => default,
        "tiny" => tiny,
        other => anyhow::bail!("--preset {other:?}: expected default or tiny"),
    };
    let mut set = args.set.clone();
    if let Some(seed) = args.seed {
        set.push(format!("benchmark.seed={seed}"));
    }
    Ok(with_overrides(base, &set)?)
}

fn report(args: &BenchmarkArgs, summary: Summary) -> Result<()> {
    for (split, s) in &summary.splits {
        tracing::info!("{split:?}: {}", serde_json::to_string(s)?);
    }
    tracing::info!(
        "wrote {} (classes: {}); see summary.json and config.json there",
        args.out.display(),
        summary.classes
    );
    Ok(())
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
