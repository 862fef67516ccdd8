//! The phases of one step (docs/ARCHITECTURE.md, "One step"), each its own function: score the
//! drawn super-batch, select the trained rows, update the learner on them, and report.
use std::collections::BTreeMap;

use tch::Tensor;

use super::{step_seed, PhaseClock, Step, StepMetrics};
use crate::config::TrainMethod;
use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::input::Drawn;
use crate::loss::{distill_loss, LossKind};
use crate::model::BatchTensors;
use crate::run_dir::{ScoreSummary, Update};
use crate::select::{batch_score, select_grouped, uniform_batch_score, Method, ScoreKind};
use crate::select::{SelectConfig, Selection};
use crate::train::grouped::{embed_grouped, train_grouped};
use crate::train::optim::learning_rate;
use crate::train::order::training_order;
use crate::train::pool::local_rows;
use crate::train::scoring::{reference_embeddings, Reference};

/// The global super-batch as the selection reads it: only the models its score weighs are
/// embedded (easy-reference runs no learner forward, hard-learner reads no reference).
pub(super) struct Scored {
    pub learner: Option<PairEmbeddings>,
    pub reference: Option<PairEmbeddings>,
    /// FLOPs of the scoring forwards that ran and of the selection (docs/ALGORITHM.md §6).
    pub flops: f64,
}

impl Scored {
    /// Either model's embeddings: what the sampler sizes its noise by.
    fn any(&self) -> &PairEmbeddings {
        self.learner
            .as_ref()
            .or(self.reference.as_ref())
            .expect("a scored step embeds at least one model")
    }

    /// The score the summary reports: learnability when both models ran, else the one that did.
    fn summary_kind(&self) -> ScoreKind {
        match (&self.learner, &self.reference) {
            (Some(_), Some(_)) => ScoreKind::Learnability,
            (Some(_), None) => ScoreKind::HardLearner,
            _ => ScoreKind::EasyReference,
        }
    }
}

/// The rows a step trains on.
pub(super) struct Chosen {
    /// This rank's rows of its drawn candidates, in training order; `None`: all of them (uniform).
    pub rows: Option<Vec<i64>>,
    /// The global training order (super-batch rows), for the selection summary.
    pub order: Vec<i64>,
    /// The trained examples' rows in the global super-batch, in selection order.
    pub selected: Vec<usize>,
}

impl Step {
    /// Embeds the drawn super-batch with the models the score reads, gathered over ranks; `None`
    /// when the method scores nothing.
    pub(super) fn score(&self, drawn: &Drawn, clock: &mut PhaseClock) -> Result<Option<Scored>> {
        let config = &self.config;
        if !config.method.scores() {
            return Ok(None);
        }
        let groups = self.pool.groups().len();
        let learner = if config.score.weights().0 != 0.0 {
            let patch = config.score_patch();
            let precision = config.scoring_precision(self.device);
            let local = embed_grouped(&self.model, &drawn.tensors, patch, groups, precision)?;
            Some(clock.communicate(|| self.collective.gather_scoring(local))?)
        } else {
            None
        };
        let local = if config.scores_reference() {
            let (keys, tensors) = (&drawn.keys, &drawn.tensors);
            reference_embeddings(&self.reference, keys, tensors, config, self.device, groups)?
        } else {
            None
        };
        let reference = match local {
            Some(local) => Some(clock.communicate(|| self.collective.gather_scoring(local))?),
            None => None,
        };
        let online = reference.is_some() && matches!(self.reference, Reference::Model(_));
        let flops = self.costs.scoring(learner.is_some(), online);
        Ok(Some(Scored {
            learner,
            reference,
            flops,
        }))
    }

    /// The rows to train on: the selection from `scored`, shuffled for a multi-part step and cut
    /// to this rank's groups; every drawn row for a uniform step.
    pub(super) fn select(&self, drawn: &Drawn, scored: Option<&Scored>) -> Result<Chosen> {
        let config = &self.config;
        let Some(scored) = scored else {
            let offset = self.pool.groups().start * self.pool.per_group();
            return Ok(Chosen {
                rows: None,
                order: Vec::new(),
                selected: (offset..offset + drawn.keys.len()).collect(),
            });
        };
        let select_config = SelectConfig {
            method: match config.method {
                TrainMethod::Independent => Method::Independent,
                _ => Method::Joint,
            },
            score: config.score,
            loss: LossKind::Sigmoid,
            chunks: config.chunks,
            gain: config.gain,
            seed: step_seed(config.seed, self.done),
        };
        // A score that weighs only the reference reads no learner: the reference stands in for
        // it, which the scorer uses only for B, the device and the dtype (the same: the selection
        // is the one a learner forward would have given).
        let Selection { indices, .. } = select_grouped(
            scored.learner.as_ref().unwrap_or_else(|| scored.any()),
            scored.reference.as_ref(),
            config.batch,
            &select_config,
            config.selection_groups,
        )?;
        let order = training_order(&indices, config.train_parts().len(), select_config.seed);
        let rows = local_rows(&order, self.pool.per_group(), self.pool.groups());
        Ok(Chosen {
            rows: Some(rows),
            order,
            selected: indices.iter().map(|&i| i as usize).collect(),
        })
    }

    /// Mean score per example of the selected batch and of a uniform batch of the same size from
    /// the same super-batch (learnability when both models were embedded, else the score's own).
    pub(super) fn summarise(&self, scored: &Scored, chosen: &Chosen) -> Result<ScoreSummary> {
        let kind = scored.summary_kind();
        let learner = scored.learner.as_ref().unwrap_or_else(|| scored.any());
        let reference = scored.reference.as_ref();
        let index = Tensor::from_slice(&chosen.order).to_device(self.device);
        let block = 1024;
        let batch = self.config.batch;
        let selected = batch_score(kind, LossKind::Sigmoid, learner, reference, &index, block)?;
        let uniform =
            uniform_batch_score(kind, LossKind::Sigmoid, learner, reference, batch, block)?;
        Ok(ScoreSummary {
            kind: kind.name().to_string(),
            selected,
            uniform,
        })
    }

    /// One AdamW update on the chosen rows: forward (each group as its rank would), the loss over
    /// the global batch, backward, the gradients summed over ranks, the optimiser step. A
    /// non-finite loss or update is an error and leaves the weights as they were.
    pub(super) fn update(
        &mut self,
        drawn: &Drawn,
        scored: Option<&Scored>,
        chosen: &Chosen,
        clock: &mut PhaseClock,
    ) -> Result<Update> {
        let step = self.done;
        let world = self.collective.world_size();
        let batch = match &chosen.rows {
            Some(rows) => drawn
                .tensors
                .select_rows(&Tensor::from_slice(rows).to_device(self.device)),
            None => shallow_clone(&drawn.tensors),
        };
        let targets = self.distill_targets(drawn, &batch, scored, chosen, clock)?;
        zero_grads(&self.parameters);
        let groups = self.pool.groups().len();
        let (image, text) = train_grouped(&self.model, &batch, &self.parts, groups)?;
        let (image, text) = clock.communicate(|| self.collective.gather_for_loss(image, text))?;
        let mut loss = self.model.pair_loss(&image, &text);
        let mut distill = None;
        if let Some(r) = &targets {
            // Over the global batch, as the loss: the ranks' rows concatenated, the reference's
            // rows in the same order (docs/ALGORITHM.md §9).
            let t = self.model.temperature();
            let (i, x, b) = (r.image(), r.text(), self.model.bias());
            let kd = distill_loss(
                LossKind::Sigmoid,
                &image,
                &text,
                &t,
                b,
                i,
                x,
                r.temperature(),
                r.bias(),
            );
            distill = Some(kd.double_value(&[]));
            // Out of place: autograd keeps the sum as a new node.
            loss = &loss + kd * self.config.distill;
        }
        if let Some(hook) = &mut self.loss_hook {
            loss = hook(step + 1, loss);
        }
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            return Err(Error::NonFinite {
                step: step + 1,
                what: format!("the training loss is {value}"),
                checkpoint: None,
            });
        }
        loss.backward();
        let mut gradients = Vec::new();
        for ((_, p), &whole) in self.parameters.iter().zip(&self.whole_loss) {
            let g = p.grad();
            if g.defined() {
                if whole && world > 1 {
                    // Every rank computed t's and b's gradient from the whole global loss: the
                    // sum over ranks below becomes their mean.
                    let _ = g.detach().g_div_scalar_(world as f64);
                }
                gradients.push(g);
            }
        }
        clock.communicate(|| self.collective.all_reduce_gradients(&gradients))?;
        let norms = self
            .optimizer
            .step(&self.parameters, step)
            .map_err(|e| Error::NonFinite {
                step: step + 1,
                what: e.to_string(),
                checkpoint: None,
            })?;
        Ok(Update {
            loss: value,
            lr: learning_rate(&self.config.optim, step, self.config.steps),
            t: self.model.temperature().double_value(&[]),
            b: self.model.bias().double_value(&[]),
            grad_norm: norms.grad_norm,
            param_norm: norms.param_norm,
            distill,
        })
    }

    /// The reference's embeddings of the global trained batch, row for row as the loss sees it,
    /// when distilling: the scored super-batch's rows when the step scored with the reference (no
    /// extra work), else this rank's trained rows looked up in the cache or embedded by the online
    /// reference, gathered over ranks.
    fn distill_targets(
        &self,
        drawn: &Drawn,
        batch: &BatchTensors,
        scored: Option<&Scored>,
        chosen: &Chosen,
        clock: &mut PhaseClock,
    ) -> Result<Option<PairEmbeddings>> {
        if self.config.distill == 0.0 {
            return Ok(None);
        }
        if let Some(reference) = scored.and_then(|s| s.reference.as_ref()) {
            // Every rank's trained rows in rank order are the global order cut group by group.
            let groups = 0..self.config.selection_groups;
            let rows = local_rows(&chosen.order, self.pool.per_group(), groups);
            let index = Tensor::from_slice(&rows).to_device(self.device);
            return Ok(Some(reference.select_rows(&index)));
        }
        let keys: Vec<String> = match &chosen.rows {
            Some(rows) => rows
                .iter()
                .map(|&r| drawn.keys[r as usize].clone())
                .collect(),
            None => drawn.keys.clone(),
        };
        let groups = self.pool.groups().len();
        let config = &self.config;
        let Some(local) =
            reference_embeddings(&self.reference, &keys, batch, config, self.device, groups)?
        else {
            return Ok(None);
        };
        let (image, text) = clock.communicate(|| {
            Ok((
                self.collective.gather_rows(local.image())?,
                self.collective.gather_rows(local.text())?,
            ))
        })?;
        Ok(Some(PairEmbeddings::wrap(
            image,
            text,
            local.temperature(),
            local.bias(),
        )?))
    }

    /// What the step did (after [`Self::update`] counted it done).
    pub(super) fn metrics(
        &self,
        drawn: Drawn,
        scored: Option<&Scored>,
        chosen: Chosen,
        update: Update,
        score: Option<ScoreSummary>,
        clock: PhaseClock,
    ) -> StepMetrics {
        let count = |rows: &mut dyn Iterator<Item = usize>| {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for row in rows {
                if let Some(kind) = &drawn.noise[row] {
                    *counts.entry(kind.clone()).or_default() += 1;
                }
            }
            counts
        };
        let noise_selected = match &chosen.rows {
            Some(rows) => count(&mut rows.iter().map(|&r| r as usize)),
            None => count(&mut (0..drawn.noise.len())),
        };
        StepMetrics {
            step: self.done,
            update,
            examples_trained: self.config.batch as u64,
            examples_drawn: (drawn.keys.len() * self.collective.world_size()) as u64,
            flops_train: self.costs.train,
            flops_score: scored.map_or(0.0, |s| s.flops),
            seconds: clock.seconds,
            score,
            noise_drawn: count(&mut (0..drawn.noise.len())),
            noise_selected,
            selected: chosen.selected,
        }
    }
}

fn zero_grads(parameters: &[(String, Tensor)]) {
    for (_, p) in parameters {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.detach_().zero_();
        }
    }
}

fn shallow_clone(batch: &BatchTensors) -> BatchTensors {
    BatchTensors {
        images: batch.images.shallow_clone(),
        ids: batch.ids.shallow_clone(),
        last: batch.last.shallow_clone(),
    }
}
