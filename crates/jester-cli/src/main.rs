//! `jester`: JEST data selection for image-text contrastive learning.
mod bench;
mod bench_loader;
mod bench_select;
mod bench_stream;
mod bench_train;
mod data;
mod experiment;
mod logging;
mod malloc;
mod measure;
mod output;
mod plot;
mod select;
mod shards;
mod tokenizer;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "jester",
    version,
    about = "JEST: joint example selection for image-text contrastive learning"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Select a sub-batch from embeddings you already have (JEST on a super-batch).
    Select(select::SelectArgs),
    /// Generate data sets.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Build, inspect and split WebDataset shards.
    #[command(subcommand)]
    Shards(shards::ShardsCommand),
    /// Learn a text tokenizer from a shard set.
    #[command(subcommand)]
    Tokenizer(tokenizer::TokenizerCommand),
    /// Train a model: uniform, jest, independent or flexi-jest (a reference is a uniform run).
    Train(train::TrainArgs),
    /// Cache a trained model's embeddings of a shard set (the reference for `train`).
    Embed(train::EmbedArgs),
    /// Evaluate a trained model: zero-shot classification and image-text retrieval.
    Eval(train::EvalArgs),
    /// Run a recipe's comparison side by side: report.md, curves.png, summary.json.
    Experiment(experiment::ExperimentArgs),
    /// The paper's headline comparison on built-in synthetic scenes, in minutes (the main job).
    Demo(experiment::DemoArgs),
    /// Measure speed and memory.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    malloc::tune();
    logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Select(args) => select::run(args),
        Command::Data(command) => data::run(command),
        Command::Shards(command) => shards::run(command),
        Command::Tokenizer(command) => tokenizer::run(command),
        Command::Train(args) => train::run(args),
        Command::Embed(args) => train::embed(args),
        Command::Eval(args) => train::eval(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Demo(args) => experiment::demo(args),
        Command::Bench(command) => bench::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
