//! Running a recipe: the benchmark, the references and their caches, every run per seed, then the
//! report (the module docs of [`super`] give the folder layout).
use std::path::{Path, PathBuf};

use jester_data::atomic::write_atomic;
use jester_data::benchmark::fashion_mnist::{self, FashionMnistConfig};
use jester_data::benchmark::synthetic::{self, SyntheticConfig};

use jester_data::benchmark::CurationLevel;

use super::markdown::markdown;
use super::recipe::{Budget, Recipe};
use super::report;
use crate::config::{with_overrides, TrainConfig, TrainMethod};
use crate::error::{Error, Result};
use crate::eval::EvalSpec;
use crate::lock::Lock;
use crate::run_dir::{load_trained, ReferenceSource, RunDir, Unfinished};
use crate::train::{train, Observer, Seams, Start, TrainOptions};

/// The headline recipe on built-in synthetic scenes (`jester demo`).
pub const DEMO_RECIPE: &str =
    include_str!("../../../../configs/experiments/headline-synthetic.toml");

/// How to run a recipe.
pub struct ExperimentOptions {
    /// Where the report goes.
    pub out: PathBuf,
    /// Where the trained parts go (may be shared between experiments; often `out`).
    pub work: PathBuf,
    /// Add the recipe's `quick_set` (a short budget).
    pub quick: bool,
    /// Settings for every run, after the recipe's.
    pub set: Vec<String>,
    pub device: tch::Device,
    /// The command line, recorded in the report.
    pub command: String,
}

/// Progress of an experiment: a message per part, and an observer for each training run.
pub trait RunObserver {
    fn message(&mut self, text: &str);
    /// An observer for the training run called `name`.
    fn training(&mut self, name: &str) -> Box<dyn Observer>;
}

/// Runs (or finishes) `recipe` and writes `summary.json` and `report.md` into `options.out`.
pub fn run_recipe(
    mut recipe: Recipe,
    options: &ExperimentOptions,
    observer: &mut dyn RunObserver,
) -> Result<report::ExperimentSummary> {
    let (out, work) = (options.out.as_path(), options.work.as_path());
    if options.quick {
        recipe.set.extend(recipe.quick_set.clone());
    }
    recipe.set.extend(options.set.iter().cloned());
    for dir in [out, work] {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    // Two experiments in one work folder would train the same parts at once.
    let _work_lock = Lock::folder(work, "the experiment work folder")?;
    // The output folder's lock lives beside it and goes when released: reports are committed.
    let _out_lock = if out != work {
        Some(Lock::beside(out, "the experiment output folder")?)
    } else {
        None
    };
    let applied = toml::to_string(&recipe).expect("recipes serialise");
    let recorded = out.join("recipe.toml");
    match std::fs::read_to_string(&recorded) {
        Ok(previous) if previous != applied => {
            return Err(Error::Input {
                path: out.to_owned(),
                what: format!(
                    "holds an experiment with other settings (see {}); give a new output \
                     folder, or delete it",
                    recorded.display()
                ),
            })
        }
        _ => write_atomic(&recorded, applied.as_bytes())?,
    }
    let started = std::time::Instant::now();
    let device = options.device;
    let data = benchmark(&recipe, work, observer)?;
    let base = with_overrides(TrainConfig::load(&recipe.config, &[])?, &recipe.set)?;
    let eval = eval_spec(&data);
    let pool = data.join("pool").to_string_lossy().into_owned();
    let mut parts = report::Parts {
        seeds: if recipe.seeds.is_empty() {
            vec![base.seed]
        } else {
            recipe.seeds.clone()
        },
        ..report::Parts::default()
    };
    for &seed in &parts.seeds.clone() {
        let mut dirs = Vec::new();
        for (run, config) in recipe.runs.iter().zip(run_configs(&recipe, &base, seed)?) {
            let level = run.curated.unwrap_or(recipe.reference.curated);
            let needs_reference = config.needs_reference();
            // References are trained once, with the recipe's seed: they are the fixed given of
            // every learner seed.
            let reference = if needs_reference {
                let (dir, cache) = reference(&recipe, &base, &data, level, work, device, observer)?;
                parts.references.insert(level, dir);
                ReferenceSource::Cache(cache)
            } else {
                ReferenceSource::None
            };
            let key = key(&[&config_key(&config), &format!("{reference:?}"), &pool]);
            // Named by method and key, not by the recipe's run name: the same settings under
            // another name (`learnability` in one recipe, `jest` in another) are one run.
            let dir = work
                .join("runs")
                .join(format!("{}-{key}", run.method.name()));
            dirs.push(dir.clone());
            let train_options = TrainOptions {
                out: dir.clone(),
                data: vec![pool.clone()],
                reference,
                unfinished_reference: Unfinished::Refuse,
                device,
                eval: Some(eval.clone()),
            };
            let name = if parts.seeds.len() > 1 {
                format!("{} (seed {seed})", run.name)
            } else {
                run.name.clone()
            };
            run_once(&name, config, &train_options, observer)?;
        }
        parts.runs.push(dirs);
    }
    let summary = report::build(
        &recipe,
        &parts,
        &options.command,
        started.elapsed().as_secs_f64(),
    )?;
    jester_data::atomic::write_json_atomic(&out.join("summary.json"), &summary)?;
    write_atomic(&out.join("report.md"), markdown(&summary).as_bytes())?;
    Ok(summary)
}

/// Every run's config for `seed`, in recipe order: the recipe's settings, the run's, its method
/// and score; under [`Budget::Compute`] each run's steps are what the common FLOP budget buys
/// ([`equal_compute_steps`]); evaluations spread evenly over each run's steps.
pub(super) fn run_configs(
    recipe: &Recipe,
    base: &TrainConfig,
    seed: u64,
) -> Result<Vec<TrainConfig>> {
    let mut configs = Vec::new();
    for run in &recipe.runs {
        let mut config = with_overrides(base.clone(), &run.set)?;
        config.method = run.method;
        config.seed = seed;
        if let Some(score) = run.score {
            config.score = score;
        }
        configs.push(config);
    }
    if recipe.budget == Budget::Compute {
        let steps = equal_compute_steps(&configs);
        for (config, steps) in configs.iter_mut().zip(steps) {
            config.steps = steps;
        }
    }
    for config in &mut configs {
        config.eval_every = config.steps.div_ceil(recipe.evals.max(1));
    }
    Ok(configs)
}

/// FLOPs of one iteration of `config` as executed (training and scoring, the reference read from
/// a cache, as recipes do): [`crate::flops::per_iteration`].
pub fn iteration_flops(config: &TrainConfig) -> f64 {
    crate::flops::per_iteration(config, None)
        .iter()
        .map(|p| p.flops)
        .sum()
}

/// The steps that give every run the same total FLOPs: the costliest run's `steps × FLOPs per
/// iteration` is the common budget, and every run trains until it has spent it — the fewest
/// steps whose FLOPs reach it, so each run ends within one of its steps of the budget.
pub fn equal_compute_steps(configs: &[TrainConfig]) -> Vec<usize> {
    let costs: Vec<f64> = configs.iter().map(iteration_flops).collect();
    let budget = configs
        .iter()
        .zip(&costs)
        .map(|(c, cost)| c.steps as f64 * cost)
        .fold(0.0, f64::max);
    costs
        .iter()
        .map(|cost| {
            // A relative slack so that the costliest run keeps exactly its own steps.
            ((budget / cost) * (1.0 - 1e-12)).ceil().max(1.0) as usize
        })
        .collect()
}

fn eval_spec(data: &Path) -> EvalSpec {
    EvalSpec {
        data: vec![data.join("eval").to_string_lossy().into_owned()],
        classes: Some(data.join("eval/classes.json")).filter(|p| p.exists()),
    }
}

/// Trains `options.out` to the end: skipped when finished, resumed when started.
fn run_once(
    name: &str,
    config: TrainConfig,
    options: &TrainOptions,
    observer: &mut dyn RunObserver,
) -> Result<()> {
    let dir = RunDir::new(&options.out);
    if dir.is_finished() {
        observer.message(&format!(
            "{name}: finished earlier, kept ({})",
            dir.path().display()
        ));
        return Ok(());
    }
    let start = if dir.exists() {
        observer.message(&format!("{name}: resuming ({})", dir.path().display()));
        Start::Resume
    } else {
        let _ = std::fs::remove_dir_all(dir.path());
        observer.message(&format!(
            "{name}: training {} for {} steps",
            config.method.name(),
            config.steps
        ));
        Start::Fresh(Box::new(config))
    };
    let mut progress = observer.training(name);
    let seams = Seams::single_process(Box::new(crate::eval::open));
    train(start, options, seams, progress.as_mut()).map_err(|e| Error::Input {
        path: options.out.clone(),
        what: format!("run {name}: {e}"),
    })?;
    Ok(())
}

/// The resolved config as it determines a part: without the loader's thread and prefetch counts,
/// which follow the machine (workers default to its cores) and never change what is loaded (the
/// loader reorders its workers' output by sample number), so a work folder keeps its parts on
/// another machine.
pub(super) fn config_key(config: &TrainConfig) -> String {
    let mut value = serde_json::to_value(config).expect("configs serialise");
    if let Some(loader) = value
        .pointer_mut("/data/loader")
        .and_then(|l| l.as_object_mut())
    {
        loader.remove("workers");
        loader.remove("prefetch");
    }
    // Memory for speed, not results (an example kept equals one remade).
    if let Some(data) = value.pointer_mut("/data").and_then(|d| d.as_object_mut()) {
        data.remove("decoded_cache_mib");
    }
    value.to_string()
}

/// A short hash of what determines a part.
fn key(parts: &[&str]) -> String {
    let joined = parts.join("\u{1f}");
    format!(
        "{:08x}",
        jester_data::tools::inspect::fnv1a(joined.as_bytes()) as u32
    )
}

/// The benchmark folder: the recipe's path, or generated once into WORK/data-HASH.
fn benchmark(recipe: &Recipe, work: &Path, observer: &mut dyn RunObserver) -> Result<PathBuf> {
    let settings = recipe.benchmark_set.join(" ");
    let dir = work.join(format!("data-{}", key(&[&recipe.benchmark, &settings])));
    let generated = |dir: &Path| dir.join("summary.json").exists();
    let mut generate = |what: &str, write: &dyn Fn(&Path) -> Result<()>| {
        let _ = std::fs::remove_dir_all(&dir);
        observer.message(&format!("generating {what} into {}", dir.display()));
        write(&dir)?;
        Ok(dir.clone())
    };
    match recipe.benchmark.as_str() {
        "synthetic" | "fashion-mnist" if generated(&dir) => Ok(dir.clone()),
        "synthetic" => generate("synthetic scenes", &|dir| {
            let config = with_overrides(SyntheticConfig::default(), &recipe.benchmark_set)?;
            Ok(synthetic::generate(&config, dir).map(|_| ())?)
        }),
        "fashion-mnist" => generate("Fashion-MNIST scenes", &|dir| {
            let config = with_overrides(FashionMnistConfig::default(), &recipe.benchmark_set)?;
            Ok(fashion_mnist::generate(&config, dir).map(|_| ())?)
        }),
        path => {
            let dir = PathBuf::from(path);
            if !dir.join("pool").exists() || !dir.join("eval").exists() {
                return Err(Error::Input {
                    path: dir,
                    what: "expected synthetic, fashion-mnist or a benchmark folder with pool/, \
                           curated-*/ and eval/"
                        .into(),
                });
            }
            Ok(dir)
        }
    }
}

/// The reference trained on `curated-LEVEL` and its cached pool embeddings (made once):
/// (run folder, cache).
fn reference(
    recipe: &Recipe,
    base: &TrainConfig,
    data: &Path,
    level: CurationLevel,
    work: &Path,
    device: tch::Device,
    observer: &mut dyn RunObserver,
) -> Result<(PathBuf, PathBuf)> {
    let name = level.name();
    let mut config = with_overrides(base.clone(), &recipe.reference.set)?;
    config.method = TrainMethod::Uniform;
    config.eval_every = config.steps.div_ceil(recipe.evals.max(1));
    let key = key(&[&config_key(&config), name, &data.to_string_lossy()]);
    let dir = work.join(format!("reference-{name}-{key}"));
    let cache = work.join(format!("reference-{name}-{key}-pool.safetensors"));
    if cache.exists() {
        observer.message(&format!(
            "reference ({name}): finished earlier, kept ({})",
            dir.display()
        ));
        return Ok((dir, cache));
    }
    let options = TrainOptions {
        out: dir.clone(),
        data: vec![data
            .join(format!("curated-{name}"))
            .to_string_lossy()
            .into_owned()],
        reference: ReferenceSource::None,
        unfinished_reference: Unfinished::Refuse,
        device,
        eval: Some(eval_spec(data)),
    };
    run_once(&format!("reference ({name})"), config, &options, observer)?;
    let trained = load_trained(&dir, device, Unfinished::Refuse)?;
    observer.message(&format!("reference ({name}): embedding the pool"));
    let pool = data.join("pool").to_string_lossy().into_owned();
    crate::embed::embed_shards(
        &trained,
        &[pool],
        &cache,
        1024,
        2,
        &crate::collective::SingleProcess,
        |_| {},
    )?;
    Ok((dir, cache))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_part_key_ignores_the_machines_loader_threads_but_not_the_settings() {
        let config = TrainConfig::preset("tiny").unwrap();
        let mut other_machine = config.clone();
        other_machine.data.loader.workers = 16;
        other_machine.data.loader.prefetch = 4096;
        assert_eq!(config_key(&config), config_key(&other_machine));
        let mut longer = config.clone();
        longer.steps += 1;
        assert_ne!(config_key(&config), config_key(&longer));
        let mut reshuffled = config.clone();
        reshuffled.data.loader.shuffle_buffer += 1;
        assert_ne!(config_key(&config), config_key(&reshuffled));
    }
}
