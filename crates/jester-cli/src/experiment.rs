//! `jester experiment RECIPE.toml` and `jester demo`: the library's experiment protocol
//! (`jester::experiment`), with progress on the terminal, the table printed and the curves drawn.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use jester::experiment::{
    compute_table, run_recipe, table, Budget, ExperimentOptions, Metric, Recipe, RunObserver,
    DEMO_RECIPE,
};
use jester::train::Observer;

use crate::select::parse_device;
use crate::train::Progress;

#[derive(Args)]
pub struct ExperimentArgs {
    /// The recipe (see configs/experiments/).
    recipe: PathBuf,
    /// Output folder (default: results/RECIPE-NAME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Add the recipe's `quick_set` (a short budget).
    #[arg(long)]
    quick: bool,
    /// A folder for the trained parts, shared between experiments (default: the output folder).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Extra settings for every run, after the recipe's.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Report this main metric instead of the recipe's (zero_shot_top1 or retrieval_r1). The runs
    /// do not depend on it, so with the recipe's `--work` folder a finished experiment is
    /// re-reported without training; give a new `--out`.
    #[arg(long)]
    metric: Option<Metric>,
}

pub fn run(args: ExperimentArgs) -> Result<()> {
    let mut recipe = Recipe::read(&args.recipe)?;
    if let Some(metric) = args.metric {
        recipe.metric = metric;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(&recipe.name));
    let work = args.work.clone().unwrap_or_else(|| out.clone());
    run_and_show(recipe, out, work, args.quick, args.set, &args.device)
}

/// Runs the recipe, draws `curves.png` beside the report and prints the table.
fn run_and_show(
    recipe: Recipe,
    out: PathBuf,
    work: PathBuf,
    quick: bool,
    set: Vec<String>,
    device: &str,
) -> Result<()> {
    let options = ExperimentOptions {
        out,
        work,
        quick,
        set,
        device: parse_device(device)?,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let summary = run_recipe(recipe, &options, &mut Terminal)?;
    let out = &options.out;
    crate::plot::curves(&summary, &out.join("curves.png"))?;
    println!("{}", table(&summary));
    if summary.budget == Budget::Compute {
        println!("At equal compute (every run spent the same total FLOPs):\n");
        println!("{}", compute_table(&summary));
    }
    eprintln!(
        "report: {}\nplot:   {}\nnumbers: {}",
        out.join("report.md").display(),
        out.join("curves.png").display(),
        out.join("summary.json").display()
    );
    Ok(())
}

/// An experiment's progress on stderr: a line per part, a progress bar per run.
struct Terminal;

impl RunObserver for Terminal {
    fn message(&mut self, text: &str) {
        eprintln!("{text}");
    }
    fn training(&mut self, _name: &str) -> Box<dyn Observer> {
        Box::new(Progress::new())
    }
}

#[derive(Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "jester-demo")]
    out: PathBuf,
    /// The longer version (the recipe's full budget instead of the quick one).
    #[arg(long)]
    full: bool,
    #[arg(long, default_value = "auto")]
    device: String,
}

pub fn demo(args: DemoArgs) -> Result<()> {
    let mut recipe = Recipe::parse(DEMO_RECIPE).context("the built-in demo recipe")?;
    // One seed: the demo shows the comparison in minutes; the recipe's report has the spread.
    recipe.seeds.truncate(1);
    run_and_show(
        recipe,
        args.out.clone(),
        args.out,
        !args.full,
        Vec::new(),
        &args.device,
    )
}
