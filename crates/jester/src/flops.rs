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
    fn the_predicted_ratios_are_the_papers_when_the_forward_is_reused() {
        // The paper reuses the learner's scoring forward for the step: F·(2 + B/b) / 3F = 2.33.
        // Without the reuse (what jester executes) the same setting costs (3 + 5)/3 = 2.67.
        assert!((predicted_cost_ratio(5.0, 1.0, 0.0) - 8.0 / 3.0).abs() < 1e-12);
        // Flexi-JEST, A = 0.28, half low-res: 3(0.5 + 0.14) + 1.4 = 3.32 → 1.107 (paper: 1.10).
        assert!((predicted_cost_ratio(5.0, 0.28, 0.5) - 1.1067).abs() < 1e-3);
    }
}
