//! `jester`: JEST data selection for image-text contrastive learning. The command line as a
//! library, so that the Python package runs the very same commands data-parallel under torchrun
//! (`python -m jester train ...`, docs/ARCHITECTURE.md "Many processes"); `main.rs` calls [`main`].
mod bench;
mod bench_flops;
mod bench_loader;
mod bench_score;
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

use jester::collective::Collective;

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

/// A data-parallel launch: the link to the other processes, and this process's GPU index on its
/// machine (torchrun's LOCAL_RANK).
pub struct Processes {
    pub collective: Box<dyn Collective>,
    pub local_rank: usize,
}

/// The `jester` binary: tunes the allocator (first thing, before any thread) and runs `args`.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> std::process::ExitCode {
    malloc::tune();
    std::process::ExitCode::from(run(args, None))
}

/// Runs the command line `args` (the program name first), in one process or, with `processes`,
/// as one rank of a data-parallel run (`train` and `embed` only); returns the exit status.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>, processes: Option<Processes>) -> u8 {
    logging::init();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code() as u8;
        }
    };
    let rank = processes.as_ref().map(|p| p.collective.rank());
    if let Some(rank) = rank {
        say_when_stopped(rank);
    }
    let result = match (cli.command, processes) {
        (Command::Train(args), processes) => train::run(args, processes),
        (Command::Embed(args), processes) => train::embed(args, processes),
        (_, Some(_)) => Err(anyhow::anyhow!(
            "only `train` and `embed` run data-parallel; run other commands as `jester ...` in \
             one process"
        )),
        (Command::Select(args), None) => select::run(args),
        (Command::Data(command), None) => data::run(command),
        (Command::Shards(command), None) => shards::run(command),
        (Command::Tokenizer(command), None) => tokenizer::run(command),
        (Command::Eval(args), None) => train::eval(args),
        (Command::Experiment(args), None) => experiment::run(args),
        (Command::Demo(args), None) => experiment::demo(args),
        (Command::Bench(command), None) => bench::run(command),
    };
    match result {
        Ok(()) => 0,
        Err(err) => {
            let message = error_chain(&err);
            let line = match rank {
                Some(rank) => format!("error (rank {rank}): {message}\n"),
                None => format!("error: {message}\n"),
            };
            // One write: ranks sharing a terminal or log do not interleave inside a line.
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            1
        }
    }
}

/// Under torchrun, a rank that another rank's failure brings down is stopped by its agent with
/// SIGTERM, before any collective can tell it why: it says so in one line, then ends as SIGTERM
/// would have ended it.
fn say_when_stopped(rank: usize) {
    use signal_hook::consts::SIGTERM;
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let line = format!(
                "error (rank {rank}): stopped by SIGTERM: torchrun stops every rank when one fails \
                 or is killed; the rank that failed first said why above (a rank killed by SIGKILL \
                 or the out-of-memory killer cannot)\n"
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            let _ = signal_hook::low_level::emulate_default_handler(signal);
        }
    });
}

/// `err` and its causes joined by ": ", each cause once: library errors that print their cause in
/// their own message (an I/O error after its path) would otherwise repeat it.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_printed_again() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = jester::Error::Io {
            path: "runs/x".into(),
            source: io,
        };
        let message = super::error_chain(&anyhow::Error::new(err).context("cannot start"));
        assert_eq!(message, "cannot start: runs/x: entity not found");
    }
}
