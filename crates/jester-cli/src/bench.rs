//! `jester bench`: speed and memory measurements, recorded in BENCHMARKS.md.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Joint selection of b from B, against the machine's GEMM rate and the paper's way in numpy.
    Select(crate::bench_select::SelectBench),
    /// The data loader: samples/s through read → decode → preprocess → tokenise, and peak memory.
    Loader(crate::bench_loader::LoaderBench),
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
    }
}
