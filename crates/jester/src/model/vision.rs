//! The ViT image tower with a flexible patch size (FlexiViT, docs/ALGORITHM.md §5).
use std::collections::HashMap;
use std::sync::Mutex;

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::block::Block;
use super::config::VisionConfig;
use super::flexi::{pi_resize_matrix, resample_kernel, resize_positions};

/// Patch embedding (kernel stored at the base patch size) + position embeddings (base grid) +
/// transformer + final LayerNorm, mean-pooled over tokens, projected to D.
#[derive(Debug)]
pub(crate) struct VisionTower {
    kernel: Tensor,
    kernel_bias: Tensor,
    positions: Tensor,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
    head: nn::Linear,
    config: VisionConfig,
    /// PI-resize matrices by target patch size, on the model's device.
    resize: Mutex<HashMap<usize, Tensor>>,
}

impl VisionTower {
    pub(crate) fn new(path: nn::Path, config: &VisionConfig, embed_dim: usize) -> Self {
        let (w, p) = (config.width as i64, config.patch_size as i64);
        let grid = (config.image_size / config.patch_size) as i64;
        let fan_in = (3 * p * p) as f64;
        let kernel = path.var(
            "patch_kernel",
            &[w, 3, p, p],
            nn::Init::Randn {
                mean: 0.0,
                stdev: fan_in.powf(-0.5),
            },
        );
        let kernel_bias = path.zeros("patch_bias", &[w]);
        let positions = path.var(
            "positions",
            &[1, grid * grid, w],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        );
        let blocks = (0..config.depth)
            .map(|i| {
                Block::new(
                    &path / "blocks" / i,
                    config.width,
                    config.heads,
                    config.mlp_dim,
                    false,
                )
            })
            .collect();
        let norm = nn::layer_norm(
            &path / "norm",
            vec![w],
            nn::LayerNormConfig {
                eps: 1e-6,
                ..Default::default()
            },
        );
        let head = nn::linear(&path / "head", w, embed_dim as i64, Default::default());
        Self {
            kernel,
            kernel_bias,
            positions,
            blocks,
            norm,
            head,
            config: config.clone(),
            resize: Mutex::new(HashMap::new()),
        }
    }

    /// `images [n, 3, H, H]` (H = image_size) at patch size `patch` (a divisor of H, checked by
    /// the caller) → unnormalised embeddings `[n, D]`.
    pub(crate) fn forward(&self, images: &Tensor, patch: usize) -> Tensor {
        let base = self.config.patch_size;
        let kernel = if patch == base {
            self.kernel.shallow_clone()
        } else {
            let matrix = self
                .resize
                .lock()
                .expect("resize cache")
                .entry(patch)
                .or_insert_with(|| {
                    // Kept for every later forward, training's included: made as a normal tensor
                    // even when the first call comes from scoring's inference mode.
                    let _normal = super::inference::InferenceMode::suspend();
                    let _no_grad = tch::no_grad_guard();
                    pi_resize_matrix(base, patch)
                        .to_device(self.kernel.device())
                        .to_kind(Kind::Float)
                })
                .shallow_clone();
            resample_kernel(&self.kernel, &matrix.to_kind(self.kernel.kind()), patch)
        };
        let stride = patch as i64;
        let tokens = images
            .conv2d(
                &kernel,
                Some(&self.kernel_bias),
                [stride, stride],
                [0, 0],
                [1, 1],
                1,
            )
            .flatten(2, 3)
            .transpose(1, 2);
        let grid = self.config.image_size / base;
        let positions = resize_positions(&self.positions, grid, self.config.image_size / patch);
        let mut x = tokens + positions;
        for block in &self.blocks {
            x = block.forward(&x);
        }
        let pooled = x.apply(&self.norm).mean_dim(1, false, x.kind());
        self.head.forward(&pooled)
    }
}
