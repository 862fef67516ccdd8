//! The model's typed config: presets `tiny`, `small`, `b16`, validated once before anything is built.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A ViT image tower (docs/ALGORITHM.md §5: FlexiViT weights, one base patch size).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisionConfig {
    /// Input resolution (square), pixels. The loader resizes images to it.
    pub image_size: usize,
    /// The patch size the patch embedding is stored at (and trained at by default).
    pub patch_size: usize,
    pub width: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_dim: usize,
}

/// A transformer text tower over token ids, causal, pooled at each caption's last real token
/// (the end-of-text marker for jester's tokenizers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// Rows of the token embedding; 0 = taken from the tokenizer when the model is built.
    pub vocab_size: usize,
    /// T, tokens per caption (captions are truncated or padded to it).
    pub context_length: usize,
    pub width: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_dim: usize,
}

/// The two-tower model: both towers project to `embed_dim`; logits = t·⟨z_img, z_txt⟩ + b with
/// t = exp(t') (docs/ALGORITHM.md §2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub image: VisionConfig,
    pub text: TextConfig,
    /// D, the shared embedding width.
    pub embed_dim: usize,
    /// t' at initialisation (SigLIP: ln 10).
    pub init_log_temperature: f64,
    /// b at initialisation (SigLIP: −10).
    pub init_bias: f64,
}

impl ModelConfig {
    /// Sized so a CPU training step at batch 256 takes well under a second on 2 cores
    /// (32-px images, patch 4: 64 tokens; flexi scoring at patch 8: 16 tokens).
    pub fn tiny() -> Self {
        Self {
            image: VisionConfig {
                image_size: 32,
                patch_size: 4,
                width: 64,
                depth: 2,
                heads: 2,
                mlp_dim: 256,
            },
            text: TextConfig {
                vocab_size: 0,
                context_length: 24,
                width: 64,
                depth: 2,
                heads: 2,
                mlp_dim: 256,
            },
            embed_dim: 64,
            init_log_temperature: 10f64.ln(),
            init_bias: -10.0,
        }
    }

    /// `tiny`'s towers with the paper's token ratio (docs/ALGORITHM.md §5): 64-px images at patch 4
    /// (256 image tokens, 64 when Flexi-JEST scores at patch 8) and 16 text tokens — SigLIP's
    /// B/16 at 256 px reads 256 image tokens and 16 text tokens. In `tiny` (64 image tokens, 24
    /// text) the text tower is a third of a scoring forward at patch 8, which no patch size can
    /// approximate away; here it is under a tenth, as in the paper.
    pub fn tiny_hires() -> Self {
        let tiny = Self::tiny();
        Self {
            image: VisionConfig {
                image_size: 64,
                ..tiny.image
            },
            text: TextConfig {
                context_length: 16,
                ..tiny.text
            },
            ..tiny
        }
    }

    /// A small model for larger CPU runs and GPUs (64-px images, patch 8).
    pub fn small() -> Self {
        Self {
            image: VisionConfig {
                image_size: 64,
                patch_size: 8,
                width: 256,
                depth: 6,
                heads: 4,
                mlp_dim: 1024,
            },
            text: TextConfig {
                vocab_size: 0,
                context_length: 32,
                width: 256,
                depth: 4,
                heads: 4,
                mlp_dim: 1024,
            },
            embed_dim: 256,
            ..Self::tiny()
        }
    }

    /// ViT-B/16 at 224 px and a BERT-base-sized text tower (12 × 768), for GPUs.
    pub fn b16() -> Self {
        Self {
            image: VisionConfig {
                image_size: 224,
                patch_size: 16,
                width: 768,
                depth: 12,
                heads: 12,
                mlp_dim: 3072,
            },
            text: TextConfig {
                vocab_size: 0,
                context_length: 64,
                width: 768,
                depth: 12,
                heads: 12,
                mlp_dim: 3072,
            },
            embed_dim: 768,
            ..Self::tiny()
        }
    }

    /// The preset called `name`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "tiny-hires" => Ok(Self::tiny_hires()),
            "small" => Ok(Self::small()),
            "b16" => Ok(Self::b16()),
            _ => Err(Error::invalid(
                "model preset",
                format!("unknown preset {name:?}; expected tiny, tiny-hires, small or b16"),
            )),
        }
    }

    /// Checks every size once, so that building and running never meet an impossible shape.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::invalid("model config", what));
        let v = &self.image;
        let t = &self.text;
        for (name, value) in [
            ("image.image_size", v.image_size),
            ("image.patch_size", v.patch_size),
            ("image.width", v.width),
            ("image.depth", v.depth),
            ("image.heads", v.heads),
            ("image.mlp_dim", v.mlp_dim),
            ("text.context_length", t.context_length),
            ("text.width", t.width),
            ("text.depth", t.depth),
            ("text.heads", t.heads),
            ("text.mlp_dim", t.mlp_dim),
            ("embed_dim", self.embed_dim),
        ] {
            if value == 0 {
                return bad(format!("{name} is 0; it must be positive"));
            }
        }
        if !v.image_size.is_multiple_of(v.patch_size) {
            return bad(format!(
                "image.image_size {} is not a multiple of image.patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        for (name, width, heads) in [("image", v.width, v.heads), ("text", t.width, t.heads)] {
            if width % heads != 0 {
                return bad(format!(
                    "{name}.width {width} is not a multiple of {name}.heads {heads}"
                ));
            }
        }
        if !self.init_log_temperature.is_finite() || !self.init_bias.is_finite() {
            return bad("init_log_temperature and init_bias must be finite".into());
        }
        Ok(())
    }

    /// Checks that the image tower can run at `patch` (it must tile the image).
    pub fn check_patch(&self, patch: usize) -> Result<()> {
        if patch == 0 || !self.image.image_size.is_multiple_of(patch) {
            return Err(Error::invalid(
                "patch size",
                format!(
                    "patch {patch} does not tile the {}-px image; choose a divisor of it",
                    self.image.image_size
                ),
            ));
        }
        Ok(())
    }
}
