//! Clustered synthetic embeddings of a super-batch, as a partly trained learner and a reference
//! trained on curated data would produce them — the structure that makes joint selection differ
//! from independent selection (docs/DATA.md, "Batch-level structure matters").
//!
//! The world: `clusters` topics with random unit centres; example i has a concept
//! c_i = normalise(centre + spread·g_i). The reference embeds image and text close to c_i, so it
//! tells examples of one topic apart. The learner has learnt a fraction of the topics as well as the
//! reference; in the others it only knows the topic (its embeddings keep a fraction `detail` of the
//! concept-specific part), so it confuses examples of one topic with each other: those pairs have
//! high learnability off the diagonal while each example alone looks easy. A fraction of the pairs
//! is misaligned (the text is another example's), which no model can learn.
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{Error, Result};

/// The generator's knobs; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusteredConfig {
    /// B.
    pub examples: usize,
    /// D.
    pub dim: usize,
    pub clusters: usize,
    /// Spread of concepts around their topic centre (norm of the offset).
    pub spread: f32,
    /// Fraction of topics the learner has already learnt.
    pub learnt_fraction: f32,
    /// How much of the concept-specific offset the learner keeps in unlearnt topics (0 = none).
    pub detail: f32,
    /// Fraction of pairs whose text belongs to another example.
    pub misaligned: f32,
    /// Per-model embedding noise (norm).
    pub noise: f32,
    /// The sigmoid loss's temperature and bias, the same for both models.
    pub t: f32,
    pub b: f32,
    pub seed: u64,
}

impl Default for ClusteredConfig {
    fn default() -> Self {
        Self {
            examples: 2048,
            dim: 64,
            clusters: 64,
            spread: 1.0,
            learnt_fraction: 0.5,
            detail: 0.2,
            misaligned: 0.1,
            noise: 0.1,
            t: 20.0,
            b: -12.0,
            seed: 0,
        }
    }
}

impl ClusteredConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| {
            Err(Error::Config {
                what: "clustered embeddings",
                why,
            })
        };
        if self.examples == 0 || self.dim == 0 || self.clusters == 0 {
            return bad(format!(
                "examples ({}), dim ({}) and clusters ({}) must all be at least 1",
                self.examples, self.dim, self.clusters
            ));
        }
        for (name, x) in [
            ("learnt_fraction", self.learnt_fraction),
            ("detail", self.detail),
            ("misaligned", self.misaligned),
        ] {
            if !(0.0..=1.0).contains(&x) {
                return bad(format!("{name} = {x} must be in [0, 1]"));
            }
        }
        if !(self.t > 0.0 && self.t.is_finite() && self.b.is_finite()) {
            return bad(format!(
                "t = {} must be > 0 and b = {} finite",
                self.t, self.b
            ));
        }
        Ok(())
    }
}

/// One model's embeddings: row-major `[B, D]`, rows of unit norm, and its t (not its log) and b.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelEmbeddings {
    pub image: Vec<f32>,
    pub text: Vec<f32>,
    pub t: f32,
    pub b: f32,
}

/// What each example is, for reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Truth {
    pub cluster: Vec<u32>,
    /// The learner has learnt this example's topic.
    pub learnt: Vec<bool>,
    pub misaligned: Vec<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClusteredEmbeddings {
    pub examples: usize,
    pub dim: usize,
    pub learner: ModelEmbeddings,
    pub reference: ModelEmbeddings,
    pub truth: Truth,
}

/// Draws the super-batch described by `config`; deterministic for its seed.
pub fn generate(config: &ClusteredConfig) -> Result<ClusteredEmbeddings> {
    config.validate()?;
    let (n, d) = (config.examples, config.dim);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let centres: Vec<Vec<f32>> = (0..config.clusters)
        .map(|_| normalised(gaussian(&mut rng, d, 1.0)))
        .collect();
    let learnt_topic: Vec<bool> = (0..config.clusters)
        .map(|_| rng.gen::<f32>() < config.learnt_fraction)
        .collect();

    let mut truth = Truth {
        cluster: Vec::with_capacity(n),
        learnt: Vec::with_capacity(n),
        misaligned: Vec::with_capacity(n),
    };
    let (mut concept_learner, mut concept_reference) =
        (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let k = rng.gen_range(0..config.clusters);
        let offset = gaussian(&mut rng, d, config.spread);
        let kept = if learnt_topic[k] { 1.0 } else { config.detail };
        concept_reference.push(normalised(add(&centres[k], &offset, 1.0)));
        concept_learner.push(normalised(add(&centres[k], &offset, kept)));
        truth.cluster.push(k as u32);
        truth.learnt.push(learnt_topic[k]);
        truth.misaligned.push(rng.gen::<f32>() < config.misaligned);
    }
    // A misaligned pair's text describes another example.
    let text_of: Vec<usize> = (0..n)
        .map(|i| {
            if truth.misaligned[i] {
                rng.gen_range(0..n)
            } else {
                i
            }
        })
        .collect();
    let mut view = |concepts: &[Vec<f32>]| ModelEmbeddings {
        image: (0..n)
            .flat_map(|i| normalised(add(&concepts[i], &gaussian(&mut rng, d, config.noise), 1.0)))
            .collect(),
        text: (0..n)
            .flat_map(|i| {
                normalised(add(
                    &concepts[text_of[i]],
                    &gaussian(&mut rng, d, config.noise),
                    1.0,
                ))
            })
            .collect(),
        t: config.t,
        b: config.b,
    };
    let learner = view(&concept_learner);
    let reference = view(&concept_reference);
    Ok(ClusteredEmbeddings {
        examples: n,
        dim: d,
        learner,
        reference,
        truth,
    })
}

/// Writes one model's embeddings in the layout `jester select` reads: tensors `image [B, D]`,
/// `text [B, D]` (f32) and scalars `t`, `b` (f32, shape []). Atomic: a temp file, then a rename.
pub fn write_safetensors(
    model: &ModelEmbeddings,
    examples: usize,
    dim: usize,
    path: &Path,
) -> Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (image, text, t, b) = (
        bytes(&model.image),
        bytes(&model.text),
        bytes(&[model.t]),
        bytes(&[model.b]),
    );
    let fail = |why: String| Error::Safetensors {
        path: path.to_owned(),
        why,
    };
    fn view<'a>(shape: Vec<usize>, data: &'a [u8]) -> Result<TensorView<'a>, String> {
        TensorView::new(Dtype::F32, shape, data).map_err(|e| format!("{e:?}"))
    }
    let tensors = vec![
        ("image", view(vec![examples, dim], &image).map_err(fail)?),
        ("text", view(vec![examples, dim], &text).map_err(fail)?),
        ("t", view(vec![], &t).map_err(fail)?),
        ("b", view(vec![], &b).map_err(fail)?),
    ];
    crate::atomic::write_atomic_with(path, true, |tmp| {
        safetensors::serialize_to_file(tensors, &None, tmp).map_err(|e| fail(format!("{e:?}")))
    })
}

/// `d` draws of N(0, σ²/d) (Box–Muller): a vector of norm ≈ σ.
fn gaussian(rng: &mut ChaCha8Rng, d: usize, sigma: f32) -> Vec<f32> {
    let scale = sigma / (d as f32).sqrt();
    (0..d)
        .map(|_| {
            let u: f32 = rng.gen_range(f32::MIN_POSITIVE..1.0);
            let v: f32 = rng.gen();
            scale * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        })
        .collect()
}

fn add(a: &[f32], b: &[f32], weight: f32) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + weight * y).collect()
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn same_seed_same_embeddings_and_unit_rows() {
        let config = ClusteredConfig {
            examples: 50,
            dim: 16,
            clusters: 4,
            ..Default::default()
        };
        let a = generate(&config).unwrap();
        assert_eq!(a, generate(&config).unwrap());
        assert_ne!(
            a,
            generate(&ClusteredConfig {
                seed: 1,
                ..config.clone()
            })
            .unwrap()
        );
        for row in a
            .learner
            .image
            .chunks(16)
            .chain(a.reference.text.chunks(16))
        {
            assert!((dot(row, row) - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn unlearnt_topics_blur_examples_together_for_the_learner_only() {
        let config = ClusteredConfig {
            examples: 400,
            dim: 64,
            clusters: 2,
            learnt_fraction: 0.5,
            misaligned: 0.0,
            seed: 3,
            ..Default::default()
        };
        let e = generate(&config).unwrap();
        let row = |v: &[f32], i: usize| v[i * 64..(i + 1) * 64].to_vec();
        // Mean image-text similarity of different examples in the same unlearnt topic.
        let mut same = (0.0, 0.0, 0);
        for i in 0..400 {
            for j in 0..400 {
                if i != j && e.truth.cluster[i] == e.truth.cluster[j] && !e.truth.learnt[i] {
                    same.0 += dot(&row(&e.learner.image, i), &row(&e.learner.text, j));
                    same.1 += dot(&row(&e.reference.image, i), &row(&e.reference.text, j));
                    same.2 += 1;
                }
            }
        }
        if same.2 > 0 {
            let (learner, reference) = (same.0 / same.2 as f32, same.1 / same.2 as f32);
            assert!(
                learner > 0.9 && reference < 0.6,
                "learner {learner}, reference {reference}"
            );
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let err = generate(&ClusteredConfig {
            misaligned: 1.5,
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("misaligned"), "{err}");
        assert!(generate(&ClusteredConfig {
            examples: 0,
            ..Default::default()
        })
        .is_err());
    }
}
