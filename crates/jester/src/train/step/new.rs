//! Making a [`Step`]: this rank's own set-up (reference, learner, optimiser, checkpoint, loader
//! shares), agreed by every rank, then rank 0's weights and moments shared.
use tch::Tensor;

use super::*;
use crate::collective::all_ok;

impl Step {
    /// A learner initialised from `config.seed` (rank 0's, in a data-parallel run), or restored
    /// as [`Resume`] says. In a data-parallel run every rank first agrees that its own set-up
    /// (reference, checkpoint, loaders) worked, then rank 0's weights — and, resuming, its AdamW
    /// moments and update count — reach every rank.
    pub fn new(
        config: TrainConfig,
        inputs: StepInputs,
        resume: Option<Resume>,
        collective: Box<dyn Collective>,
    ) -> Result<Self> {
        let resumed = resume.is_some();
        let prepared = Self::prepare(
            config,
            inputs,
            resume,
            collective.rank(),
            collective.world_size(),
        );
        let mut step = all_ok(collective.as_ref(), prepared)?;
        step.collective = collective;
        let tensors: Vec<Tensor> = step
            .parameters
            .iter()
            .map(|(_, p)| p.shallow_clone())
            .collect();
        step.collective.broadcast_parameters(&tensors)?;
        if resumed {
            let updates = Tensor::from_slice(&[step.optimizer.updates()]);
            step.collective
                .broadcast_parameters(&step.optimizer.moments())?;
            step.collective
                .broadcast_parameters(std::slice::from_ref(&updates))?;
            step.optimizer.set_updates(updates.int64_value(&[0]));
        }
        Ok(step)
    }

    /// This rank's own set-up, with no collective yet.
    fn prepare(
        config: TrainConfig,
        inputs: StepInputs,
        resume: Option<Resume>,
        rank: usize,
        world: usize,
    ) -> Result<Self> {
        config.validate()?;
        let reference = open_reference(
            inputs.reference,
            inputs.unfinished_reference,
            &inputs.shards,
            &config,
            inputs.device,
        )?;
        if config.needs_reference() && matches!(reference, Reference::None) {
            let what = if config.scores_reference() {
                format!(
                    "method {} with the {} score",
                    config.method.name(),
                    config.score.name()
                )
            } else {
                format!("distill = {}", config.distill)
            };
            return Err(Error::invalid(
                "train",
                format!(
                    "{what} needs a reference: pass --reference EMBEDDINGS (from `jester embed`) \
                     or --reference-model RUN"
                ),
            ));
        }
        tch::manual_seed(config.seed as i64);
        let mut model = TwoTower::new(&config.model, inputs.device)?;
        model.set_precision(config.precision);
        let parameters = model.parameters();
        let mut optimizer = AdamW::new(&config.optim, &parameters, config.steps);
        let whole_loss = parameters
            .iter()
            .map(|(name, _)| TwoTower::LOSS_PARAMETERS.contains(&name.as_str()))
            .collect();
        let (done, cursors) = match resume {
            Some(resume) => {
                if let Some(checkpoint) = resume.checkpoint {
                    let weights = checkpoint.join("model.safetensors");
                    model
                        .var_store_mut()
                        .load(&weights)
                        .map_err(|e| Error::Input {
                            path: weights.clone(),
                            what: format!("cannot restore the checkpoint's weights ({e})"),
                        })?;
                    optimizer.load(&checkpoint.join("optimizer.safetensors"))?;
                }
                (resume.done, Some(resume.cursors))
            }
            None => (0, None),
        };
        let loader_options = LoaderOptions {
            seed: config.seed,
            epochs: None,
            ..config.data.loader.clone()
        };
        let work = crate::input::cached_work(
            model_work(&config, inputs.tokenizer),
            config.data.decoded_cache_mib << 20,
        );
        let super_batch = config.super_batch();
        let pool = Pool::open(
            inputs.shards,
            &loader_options,
            work,
            cursors,
            super_batch,
            config.selection_groups,
            rank,
            world,
        )?;
        let costs = StepCosts::new(&config, &reference);
        let parts = config
            .group_parts()
            .iter()
            .copied()
            .cycle()
            .take(config.group_parts().len() * pool.groups().len())
            .collect();
        Ok(Self {
            preprocess: model_preprocess(&config),
            config,
            device: inputs.device,
            model,
            parameters,
            whole_loss,
            optimizer,
            reference,
            pool,
            costs,
            parts,
            collective: Box::new(SingleProcess),
            loss_hook: None,
            done,
        })
    }
}
