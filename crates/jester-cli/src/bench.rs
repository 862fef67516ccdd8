//! `jester bench`: speed and memory measurements, recorded in BENCHMARKS.md.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Joint selection of b from B, against the machine's GEMM rate and the paper's way in numpy.
    Select(crate::bench_select::SelectBench),
    /// The data loader: samples/s through read → decode → preprocess → tokenise, and peak memory.
    Loader(crate::bench_loader::LoaderBench),
    /// Where an iteration's FLOPs go, by phase, tower and resolution, per preset and method.
    Flops(crate::bench_flops::FlopsBench),
    /// Scoring one super-batch: no_grad vs inference mode, f32 vs bf16, and what bf16 selects.
    Score(crate::bench_score::ScoreBench),
    /// Training throughput of every method: steps/s, examples/s, MFU, cost relative to uniform.
    Train(crate::bench_train::TrainBench),
    /// A million small samples through the loader: resident memory must stay flat after warm-up.
    Stream(crate::bench_stream::StreamBench),
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Select(args) => crate::bench_select::run(args),
        BenchCommand::Loader(args) => crate::bench_loader::run(args),
        BenchCommand::Stream(args) => crate::bench_stream::run(args),
        BenchCommand::Train(args) => crate::bench_train::run(args),
        BenchCommand::Flops(args) => crate::bench_flops::run(args),
        BenchCommand::Score(args) => crate::bench_score::run(args),
    }
}
