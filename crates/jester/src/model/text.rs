//! The transformer text tower: causal, so positions up to a caption's end never see its padding,
//! and pooled at the caption's last real token (jester's tokenizers end every caption with
//! `<|endoftext|>`; the pad id may be a real token in a user's tokenizer, so padding is never
//! detected by id).
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::block::Block;
use super::config::TextConfig;

#[derive(Debug)]
pub(crate) struct TextTower {
    tokens: nn::Embedding,
    positions: Tensor,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
    head: nn::Linear,
}

impl TextTower {
    pub(crate) fn new(path: nn::Path, config: &TextConfig, embed_dim: usize) -> Self {
        let w = config.width as i64;
        let tokens = nn::embedding(
            &path / "tokens",
            config.vocab_size as i64,
            w,
            nn::EmbeddingConfig {
                ws_init: nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
                ..Default::default()
            },
        );
        let positions = path.var(
            "positions",
            &[1, config.context_length as i64, w],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
        );
        let blocks = (0..config.depth)
            .map(|i| {
                Block::new(
                    &path / "blocks" / i,
                    config.width,
                    config.heads,
                    config.mlp_dim,
                    true,
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
            tokens,
            positions,
            blocks,
            norm,
            head,
        }
    }

    /// `ids [n, T]` (int64) and `last [n]` (int64, the position of each caption's last real
    /// token) → unnormalised embeddings `[n, D]`.
    pub(crate) fn forward(&self, ids: &Tensor, last: &Tensor) -> Tensor {
        let mut x = self.tokens.forward(ids) + &self.positions;
        for block in &self.blocks {
            x = block.forward(&x);
        }
        let width = x.size()[2];
        let index = last
            .to_kind(Kind::Int64)
            .view([-1, 1, 1])
            .expand([-1, 1, width], false);
        let pooled = x.gather(1, &index, false).squeeze_dim(1);
        self.head.forward(&pooled.apply(&self.norm))
    }
}
