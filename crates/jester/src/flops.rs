//! Analytic FLOP counts (docs/ALGORITHM.md §6): a multiply-add is 2 FLOPs; matrix products only (LayerNorm,
//! GELU, softmax and the optimiser are O(width) per token and left out); attention counts the full
//! L×L score and value products, causal or not (libtorch's CPU kernel computes them all). A
//! training step costs 3× the forward (forward + backward of twice its cost).
use crate::model::{ModelConfig, TextConfig, VisionConfig};

/// Forward FLOPs of one transformer block over `tokens` tokens of `width`.
fn block(tokens: f64, width: f64, mlp: f64) -> f64 {
    let projections = 2.0 * tokens * (4.0 * width * width + 2.0 * width * mlp);
    let attention = 2.0 * 2.0 * tokens * tokens * width;
    projections + attention
}

/// Forward FLOPs of the image tower for one example at patch size `patch`.
pub fn image_forward(config: &VisionConfig, embed_dim: usize, patch: usize) -> f64 {
    let tokens = ((config.image_size / patch) * (config.image_size / patch)) as f64;
    let width = config.width as f64;
    let patch_embed = 2.0 * tokens * (3 * patch * patch) as f64 * width;
    let blocks = config.depth as f64 * block(tokens, width, config.mlp_dim as f64);
    patch_embed + blocks + 2.0 * width * embed_dim as f64
}

/// Forward FLOPs of the text tower for one caption (all T positions).
pub fn text_forward(config: &TextConfig, embed_dim: usize) -> f64 {
    let tokens = config.context_length as f64;
    let width = config.width as f64;
    config.depth as f64 * block(tokens, width, config.mlp_dim as f64)
        + 2.0 * width * embed_dim as f64
}

/// Forward FLOPs of both towers for one example, the image at patch size `patch`.
pub fn example_forward(config: &ModelConfig, patch: usize) -> f64 {
    image_forward(&config.image, config.embed_dim, patch)
        + text_forward(&config.text, config.embed_dim)
}

/// FLOPs of the sigmoid logits of an n-example batch (n² dot products of width D), per example.
pub fn loss_per_example(n: usize, embed_dim: usize) -> f64 {
    2.0 * n as f64 * embed_dim as f64
}

/// FLOPs of selecting b of B (sigmoid, streamed): every chosen example's row and column blocks
/// against the super-batch for each model scored, plus the diagonal.
pub fn selection(b: usize, super_batch: usize, embed_dim: usize, models: usize) -> f64 {
    let (b, big, d) = (b as f64, super_batch as f64, embed_dim as f64);
    models as f64 * (2.0 * 2.0 * b * big * d + 2.0 * big * d)
}

/// One term of an iteration's FLOPs ([`per_iteration`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Part {
    /// "train" (forward and backward of the trained batch) or "score" (scoring and selection).
    pub phase: &'static str,
    /// "image", "text", "loss", "reference", "selection" or "distill".
    pub tower: &'static str,
    /// The image tower's patch size for image terms.
    pub patch: Option<usize>,
    /// Examples this term runs over.
    pub rows: usize,
    pub flops: f64,
}

/// Every term of one iteration's FLOPs as executed (docs/ALGORITHM.md §6), by phase, tower and
/// resolution: training is 3× the forward of each part of the trained batch (`config`'s
/// `train_parts`, each at its patch size), its text and its loss; scoring is the learner's
/// forward over B at the scoring patch, an online reference's forward (`online_reference`: its
/// model; `None` when scored from a cache or not at all) and the selection's block products.
pub fn per_iteration(
    config: &crate::config::TrainConfig,
    online_reference: Option<&ModelConfig>,
) -> Vec<Part> {
    let m = &config.model;
    let b = config.batch;
    let part = |phase, tower, patch, rows: usize, flops: f64| Part {
        phase,
        tower,
        patch,
        rows,
        flops,
    };
    let mut parts: Vec<Part> = config
        .train_parts()
        .iter()
        .map(|&(rows, patch)| {
            let f = rows as f64 * 3.0 * image_forward(&m.image, m.embed_dim, patch);
            part("train", "image", Some(patch), rows, f)
        })
        .collect();
    parts.push(part(
        "train",
        "text",
        None,
        b,
        b as f64 * 3.0 * text_forward(&m.text, m.embed_dim),
    ));
    parts.push(part(
        "train",
        "loss",
        None,
        b,
        b as f64 * 3.0 * loss_per_example(b, m.embed_dim),
    ));
    if config.distill > 0.0 {
        // Distillation: the reference's and the learner's b × b logits (loss/distill.rs), and
        // an online reference's forward over the trained rows when scoring did not embed them.
        let f = crate::loss::distill_flops(b, m.embed_dim);
        parts.push(part("train", "distill", None, b, f));
        if let Some(r) = online_reference.filter(|_| !config.scores_reference()) {
            let f = b as f64 * example_forward(r, r.image.patch_size);
            parts.push(part("train", "reference", Some(r.image.patch_size), b, f));
        }
    }
    if config.method.scores() {
        let big = config.super_batch();
        // Only the models the score weighs are embedded (easy-reference reads no learner,
        // hard-learner no reference) and only they enter the selection's block products.
        let (w_learner, w_reference) = config.score.weights();
        if w_learner != 0.0 {
            let patch = config.score_patch();
            let image = big as f64 * image_forward(&m.image, m.embed_dim, patch);
            parts.push(part("score", "image", Some(patch), big, image));
            let text = big as f64 * text_forward(&m.text, m.embed_dim);
            parts.push(part("score", "text", None, big, text));
        }
        if w_reference != 0.0 {
            if let Some(r) = online_reference {
                let f = big as f64 * example_forward(r, r.image.patch_size);
                parts.push(part("score", "reference", Some(r.image.patch_size), big, f));
            }
        }
        let models = usize::from(w_learner != 0.0) + usize::from(w_reference != 0.0);
        let f = selection(b, big, m.embed_dim, models);
        parts.push(part("score", "selection", None, big, f));
    }
    parts
}

/// The FLOPs of `phase` ("train" or "score") among `parts`.
pub fn phase_total(parts: &[Part], phase: &str) -> f64 {
    parts
        .iter()
        .filter(|p| p.phase == phase)
        .map(|p| p.flops)
        .sum()
}

/// The per-iteration cost relative to uniform training that docs/ALGORITHM.md §6 predicts, with `ratio` =
/// B/b and `approx` = A (cost of a scoring forward relative to a full one), scoring the reference
/// from cache and *not* reusing the scoring forward for the step: (3 + A·B/b) / 3.
pub fn predicted_cost_ratio(ratio: f64, approx: f64, low_res_fraction: f64) -> f64 {
    let train = 3.0 * ((1.0 - low_res_fraction) + low_res_fraction * approx);
    (train + approx * ratio) / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vit_b16_forward_matches_the_published_count() {
        // ViT-B/16 at 224 px is quoted as 17.5–17.6 G multiply-adds (timm, DeiT; they count the
        // class token, we mean-pool 196 tokens); we count 2 FLOPs per multiply-add.
        let config = ModelConfig::b16();
        let image = image_forward(&config.image, 0, 16);
        assert!((image / 2.0 / 1e9 - 17.5).abs() < 0.3, "{}", image / 2e9);
    }

    #[test]
    fn doubling_the_patch_quarters_the_token_work() {
        let config = ModelConfig::tiny();
        let full = image_forward(&config.image, config.embed_dim, 4);
        let low = image_forward(&config.image, config.embed_dim, 8);
        // 64 → 16 tokens: projections ÷4, attention ÷16, patch embedding unchanged.
        assert!(low < full / 3.5 && low > full / 5.0, "{full} vs {low}");
    }

    #[test]
    fn the_breakdown_sums_to_the_step_and_splits_flexi_by_resolution() {
        use crate::config::{TrainConfig, TrainMethod};
        let mut config = TrainConfig::preset("tiny").unwrap();
        config.batch = 64;
        config.method = TrainMethod::FlexiJest;
        let parts = per_iteration(&config, None);
        let sum = |phase: &str| phase_total(&parts, phase);
        let m = &config.model;
        // Half the batch at patch 4, half at 8; scoring over B = 320 at patch 8.
        let train = 32.0 * 3.0 * image_forward(&m.image, m.embed_dim, 4)
            + 32.0 * 3.0 * image_forward(&m.image, m.embed_dim, 8)
            + 64.0 * 3.0 * (text_forward(&m.text, m.embed_dim) + loss_per_example(64, m.embed_dim));
        assert!((sum("train") - train).abs() < 1e-6 * train);
        let score = 320.0 * example_forward(m, 8) + selection(64, 320, m.embed_dim, 2);
        assert!((sum("score") - score).abs() < 1e-6 * score);
        let patches: Vec<_> = parts
            .iter()
            .filter(|p| p.tower == "image")
            .map(|p| p.patch)
            .collect();
        assert_eq!(patches, [Some(4), Some(8), Some(8)]);
        // Uniform: no scoring terms at all.
        config.method = TrainMethod::Uniform;
        assert!(per_iteration(&config, None)
            .iter()
            .all(|p| p.phase == "train"));
    }

    #[test]
    fn the_predicted_ratios_are_the_papers_when_the_forward_is_reused() {
        // The paper reuses the learner's scoring forward for the step: F·(2 + B/b) / 3F = 2.33.
        // Without the reuse (what jester executes) the same setting costs (3 + 5)/3 = 2.67.
        assert!((predicted_cost_ratio(5.0, 1.0, 0.0) - 8.0 / 3.0).abs() < 1e-12);
        // Flexi-JEST, A = 0.28, half low-res: 3(0.5 + 0.14) + 1.4 = 3.32 → 1.107 (paper: 1.10).
        assert!((predicted_cost_ratio(5.0, 0.28, 0.5) - 1.1067).abs() < 1e-3);
    }
}
