//! Evaluators (big_vision style): zero-shot classification and image↔text retrieval on a held-out
//! shard set, from a model's L2-normalised embeddings.
//!
//! - Zero-shot: every class name in every prompt template is embedded, the template embeddings of a
//!   class averaged and renormalised (CLIP's prompt ensembling); an image is classified by its most
//!   similar class. Only samples with a ground-truth `class` (one-object scenes) count.
//! - Retrieval: each image ranks every caption of the set (and each caption every image); R@k is the
//!   fraction whose own partner — or any example with the same caption — is among the k most
//!   similar.
//!
//! Ties count against the sample (pessimistic ranks; [`rank`] says why), so a collapsed tower scores
//! zero, not 100 %.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use jester_data::benchmark::ClassesFile;
use jester_data::tokenizer::TextTokenizer;

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::input::{assemble, file_order_loader, model_preprocess};
use crate::model::{BatchTensors, TwoTower};

pub mod rank;
pub use rank::{
    caption_groups, duplicate_captions, prompt_groups, retrieval, tied_classes, zero_shot_accuracy,
    Recall,
};

/// Every number an evaluation gives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Zero-shot accuracy (fractions), over `zero_shot_examples` samples; None without classes.
    pub zero_shot_top1: Option<f64>,
    pub zero_shot_top5: Option<f64>,
    pub zero_shot_examples: usize,
    pub image_to_text: Recall,
    pub text_to_image: Recall,
    pub retrieval_examples: usize,
    /// Retrieval examples whose caption also appears on another example (e.g. "A frog." under two
    /// images); either counts as a hit for the other, both ways. Absent in older metrics: 0.
    #[serde(default)]
    pub duplicate_captions: usize,
    /// Classes whose prompts tokenise identically to another class's (e.g. "Frog" and "frog" to a
    /// lowercasing tokenizer): the text tower cannot tell them apart, so either counts as right
    /// for the other. Written only when some do.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub zero_shot_tied_classes: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Where a run's held-out set is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSpec {
    pub data: Vec<String>,
    /// A `classes.json` for zero-shot classification.
    pub classes: Option<PathBuf>,
}

impl EvalSpec {
    /// The eval set of `data` specs, with `classes.json` found beside the first folder when not
    /// given.
    pub fn new(data: &[String], classes: Option<PathBuf>) -> Option<Self> {
        if data.is_empty() {
            return None;
        }
        let classes = classes.or_else(|| {
            let beside = Path::new(&data[0]).join("classes.json");
            beside.exists().then_some(beside)
        });
        Some(Self {
            data: data.to_vec(),
            classes,
        })
    }
}

/// Evaluates a model on a held-out set: how training reaches evaluation (the driver's narrow
/// callback), so training does not depend on how a set is loaded.
pub trait Evaluator {
    fn evaluate(&mut self, model: &TwoTower) -> Result<EvalMetrics>;
}

impl Evaluator for EvalSet {
    fn evaluate(&mut self, model: &TwoTower) -> Result<EvalMetrics> {
        EvalSet::evaluate(self, model)
    }
}

/// The standard evaluator of a run: the [`EvalSet`] of `spec`, read for the run's model.
pub fn open(
    spec: &EvalSpec,
    config: &TrainConfig,
    tokenizer: &TextTokenizer,
) -> Result<Box<dyn Evaluator>> {
    Ok(Box::new(EvalSet::load(
        &spec.data,
        spec.classes.as_deref(),
        config,
        tokenizer,
    )?))
}

/// A held-out set held in memory, tokenised for one model, with its class prompts.
pub struct EvalSet {
    batch: BatchTensors,
    labels: Vec<Option<i64>>,
    /// A caption identity per sample `[n]` ([`caption_groups`]): equal captions match both ways.
    captions: Vec<i64>,
    /// Prompt ids `[C·P, T]` and last positions, class-major; P templates per class.
    prompts: Option<(BatchTensors, usize, usize)>,
    /// Each class's prompt identity `[C]` ([`prompt_groups`]).
    class_groups: Vec<i64>,
}

impl EvalSet {
    /// Reads every sample of `data` (file order) for a model trained with `config`, tokenised with
    /// `tokenizer`; `classes` (a `classes.json`) enables zero-shot classification.
    pub fn load(
        data: &[String],
        classes: Option<&Path>,
        config: &TrainConfig,
        tokenizer: &TextTokenizer,
    ) -> Result<Self> {
        let context = config.model.text.context_length;
        let loader = file_order_loader(data, config, tokenizer, 2, 256, jester_data::Share::WHOLE)?;
        let examples = loader.collect::<std::result::Result<Vec<_>, _>>()?;
        if examples.is_empty() {
            return Err(Error::invalid("eval", format!("no samples in {data:?}")));
        }
        let drawn = assemble(examples, &model_preprocess(config), Device::Cpu);
        let captions = caption_groups(&drawn.tensors.ids, &drawn.tensors.last)?;
        let prompts = match classes {
            None => None,
            Some(path) => Some(class_prompts(path, tokenizer, context)?),
        };
        let class_groups = match &prompts {
            Some((batch, _, templates)) => prompt_groups(&batch.ids, &batch.last, *templates)?,
            None => Vec::new(),
        };
        Ok(Self {
            batch: drawn.tensors,
            labels: drawn.classes,
            captions,
            prompts,
            class_groups,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Evaluates `model` (its base patch size).
    pub fn evaluate(&self, model: &TwoTower) -> Result<EvalMetrics> {
        let _guard = tch::no_grad_guard();
        let device = model.device();
        let patch = model.config().image.patch_size;
        let on_device = BatchTensors {
            images: self.batch.images.to_device(device),
            ids: self.batch.ids.to_device(device),
            last: self.batch.last.to_device(device),
        };
        let embeddings = model.embed(&on_device, patch)?;
        let (image_to_text, text_to_image) =
            retrieval(embeddings.image(), embeddings.text(), &self.captions)?;
        let mut metrics = EvalMetrics {
            image_to_text,
            text_to_image,
            retrieval_examples: self.len(),
            duplicate_captions: duplicate_captions(&self.captions),
            ..Default::default()
        };
        if let Some((prompts, classes, templates)) = &self.prompts {
            let rows: Vec<i64> = (0..self.len() as i64)
                .filter(|&i| self.labels[i as usize].is_some())
                .collect();
            let labels: Vec<i64> = rows
                .iter()
                .map(|&i| self.labels[i as usize].unwrap())
                .collect();
            if let Some(&bad) = labels.iter().find(|&&l| l < 0 || l as usize >= *classes) {
                return Err(Error::invalid(
                    "eval",
                    format!("a sample has class {bad} but classes.json lists {classes} classes"),
                ));
            }
            let text = model.encode_texts(
                &prompts.ids.to_device(device),
                &prompts.last.to_device(device),
            )?;
            let class_embeddings = class_means(&text, *classes as i64, *templates as i64);
            let image = embeddings
                .image()
                .index_select(0, &Tensor::from_slice(&rows).to_device(device));
            let (top1, top5) =
                zero_shot_accuracy(&image, &class_embeddings, &labels, &self.class_groups);
            metrics.zero_shot_top1 = Some(top1);
            metrics.zero_shot_top5 = Some(top5);
            metrics.zero_shot_examples = labels.len();
            metrics.zero_shot_tied_classes = tied_classes(&self.class_groups);
        }
        Ok(metrics)
    }
}

/// Class embeddings `[C, D]`: the renormalised mean of each class's P template embeddings
/// (`text [C·P, D]`, class-major).
pub fn class_means(text: &Tensor, classes: i64, templates: i64) -> Tensor {
    let dim = text.size()[1];
    let mean = text
        .reshape([classes, templates, dim])
        .mean_dim(1, false, Kind::Float);
    let norm = mean
        .norm_scalaropt_dim(2, [1i64].as_slice(), true)
        .clamp_min(1e-12);
    mean / norm
}

fn class_prompts(
    path: &Path,
    tokenizer: &TextTokenizer,
    context: usize,
) -> Result<(BatchTensors, usize, usize)> {
    let input = |what: String| Error::Input {
        path: path.to_owned(),
        what,
    };
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let file: ClassesFile = serde_json::from_slice(&bytes).map_err(|e| {
        input(format!(
            "expected {{\"classes\": [...], \"templates\": [\"a photo of a {{}}.\"]}} ({e})"
        ))
    })?;
    if file.classes.is_empty() || file.templates.is_empty() {
        return Err(input("needs at least one class and one template".into()));
    }
    if let Some(t) = file.templates.iter().find(|t| !t.contains("{}")) {
        return Err(input(format!(
            "template {t:?} has no {{}} for the class name"
        )));
    }
    let mut ids = Vec::new();
    let mut last = Vec::new();
    for class in &file.classes {
        for template in &file.templates {
            let (row, length) =
                tokenizer.encode_with_length(&template.replace("{}", class), context)?;
            ids.extend(row.into_iter().map(i64::from));
            last.push(length.max(1) as i64 - 1);
        }
    }
    let n = (file.classes.len() * file.templates.len()) as i64;
    let batch = BatchTensors {
        images: Tensor::zeros([0], (Kind::Float, Device::Cpu)),
        ids: Tensor::from_slice(&ids).reshape([n, context as i64]),
        last: Tensor::from_slice(&last),
    };
    Ok((batch, file.classes.len(), file.templates.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(rows: &[[f32; 3]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let t = Tensor::from_slice(&flat).reshape([rows.len() as i64, 3]);
        let norm = t.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        t / norm
    }

    #[test]
    fn prompt_ensembles_average_then_renormalise() {
        let text = unit(&[
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [0.0, 0.0, 1.0],
        ]);
        let means = class_means(&text, 2, 2);
        let expected = unit(&[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        assert!((means - expected).abs().max().double_value(&[]) < 1e-6);
    }
}
