//! The pre-LayerNorm transformer block both towers stack.
use tch::nn::{self, Module};
use tch::Tensor;

/// x + Attn(LN(x)), then x + MLP(LN(x)); attention by libtorch's fused scaled-dot-product kernel.
#[derive(Debug)]
pub(crate) struct Block {
    norm1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    heads: i64,
    causal: bool,
}

impl Block {
    pub(crate) fn new(
        path: nn::Path,
        width: usize,
        heads: usize,
        mlp_dim: usize,
        causal: bool,
    ) -> Self {
        let (w, m) = (width as i64, mlp_dim as i64);
        let ln = nn::LayerNormConfig {
            eps: 1e-6,
            ..Default::default()
        };
        Self {
            norm1: nn::layer_norm(&path / "norm1", vec![w], ln),
            qkv: nn::linear(&path / "qkv", w, 3 * w, Default::default()),
            proj: nn::linear(&path / "proj", w, w, Default::default()),
            norm2: nn::layer_norm(&path / "norm2", vec![w], ln),
            fc1: nn::linear(&path / "fc1", w, m, Default::default()),
            fc2: nn::linear(&path / "fc2", m, w, Default::default()),
            heads: heads as i64,
            causal,
        }
    }

    /// `x [n, L, W]` → `[n, L, W]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let (n, len, width) = x.size3().expect("block input is [n, L, W]");
        let head_dim = width / self.heads;
        let qkv = self
            .qkv
            .forward(&x.apply(&self.norm1))
            .reshape([n, len, 3, self.heads, head_dim])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let attended = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            0.0,
            self.causal,
            None,
            false,
        )
        .transpose(1, 2)
        .reshape([n, len, width]);
        let x = x + self.proj.forward(&attended);
        let hidden = self.fc1.forward(&x.apply(&self.norm2)).gelu("tanh");
        &x + self.fc2.forward(&hidden)
    }
}
