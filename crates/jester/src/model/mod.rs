//! The two-tower SigLIP model (docs/ALGORITHM.md §§2, 5): a FlexiViT image tower that runs at any patch size
//! dividing the image, a causal text tower pooled at each caption's end, and the learnable
//! temperature t = exp(t') and bias b of the sigmoid loss.
//!
//! ```text
//! images [n, 3, H, H] ─► VisionTower(patch) ─► [n, D] ─► L2-normalise ─┐
//! ids [n, T], last [n] ─► TextTower ─────────► [n, D] ─► L2-normalise ─┴► logits = t·z_img·z_txtᵀ + b
//! ```
mod block;
mod config;
pub mod flexi;
pub mod inference;
pub mod precision;
mod text;
mod vision;

use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

pub use config::{ModelConfig, TextConfig, VisionConfig};
pub use precision::{autocast, Precision};

use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::loss::sigmoid_batch_loss;
use text::TextTower;
use vision::VisionTower;

/// Rows per forward when embedding without gradients. Measured (tiny preset, B = 1280, 2 cores):
/// scoring the super-batch in one forward took 0.89 s a step, in chunks of 256 rows 0.68 s (a
/// chunk's activations stay in cache).
pub const EMBED_CHUNK: usize = 256;

/// A batch as tensors on the model's device.
#[derive(Debug)]
pub struct BatchTensors {
    /// `[n, 3, H, H]` f32, normalised pixels.
    pub images: Tensor,
    /// `[n, T]` int64 token ids.
    pub ids: Tensor,
    /// `[n]` int64: position of each caption's last real token.
    pub last: Tensor,
}

impl BatchTensors {
    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The rows `indices [m]` (int64, same device).
    pub fn select_rows(&self, indices: &Tensor) -> Self {
        Self {
            images: self.images.index_select(0, indices),
            ids: self.ids.index_select(0, indices),
            last: self.last.index_select(0, indices),
        }
    }
    /// Rows `start..end`.
    pub fn narrow(&self, start: usize, end: usize) -> Self {
        let (s, l) = (start as i64, (end - start) as i64);
        Self {
            images: self.images.narrow(0, s, l),
            ids: self.ids.narrow(0, s, l),
            last: self.last.narrow(0, s, l),
        }
    }
}

/// The two-tower model and the variables it owns.
pub struct TwoTower {
    vars: nn::VarStore,
    image: VisionTower,
    text: TextTower,
    log_temperature: Tensor,
    bias: Tensor,
    config: ModelConfig,
    precision: Precision,
}

impl std::fmt::Debug for TwoTower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoTower")
            .field("config", &self.config)
            .finish()
    }
}

impl TwoTower {
    /// Builds a freshly initialised model on `device` (after [`ModelConfig::validate`]); its
    /// initial weights follow libtorch's global seed (`tch::manual_seed`).
    pub fn new(config: &ModelConfig, device: Device) -> Result<Self> {
        config.validate()?;
        if config.text.vocab_size == 0 {
            return Err(Error::invalid(
                "model config",
                "text.vocab_size is 0: set it from the tokenizer before building the model",
            ));
        }
        let vars = nn::VarStore::new(device);
        let root = vars.root();
        let image = VisionTower::new(&root / "image", &config.image, config.embed_dim);
        let text = TextTower::new(&root / "text", &config.text, config.embed_dim);
        let log_temperature = root.var(
            "log_temperature",
            &[],
            nn::Init::Const(config.init_log_temperature),
        );
        let bias = root.var("bias", &[], nn::Init::Const(config.init_bias));
        Ok(Self {
            vars,
            image,
            text,
            log_temperature,
            bias,
            config: config.clone(),
            precision: Precision::F32,
        })
    }

    /// Builds the model of `config` and loads its weights from `path` (safetensors, as
    /// [`save`](Self::save) writes them).
    pub fn load(config: &ModelConfig, path: &Path, device: Device) -> Result<Self> {
        let mut model = Self::new(config, device)?;
        model.vars.load(path).map_err(|e| Error::Input {
            path: path.to_owned(),
            what: format!("cannot load the model's weights ({e}); was it saved with this config?"),
        })?;
        Ok(model)
    }

    /// Writes the weights as safetensors (not atomically: callers write to a temporary path).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.vars.save(path).map_err(Error::Torch)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
    /// The arithmetic of the forward passes (f32 unless set); embeddings are f32 either way.
    pub fn precision(&self) -> Precision {
        self.precision
    }
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }
    pub fn device(&self) -> Device {
        self.vars.device()
    }
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vars
    }
    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vars
    }

    /// The parameters the loss uses directly (t' and b), not through an embedding.
    pub const LOSS_PARAMETERS: [&'static str; 2] = ["log_temperature", "bias"];

    /// Trainable parameters: (name, tensor), sorted by name so every run visits them in one order.
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> = self.vars.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// Parameter count.
    pub fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|(_, t)| t.numel()).sum()
    }

    /// t = exp(t') (0-dim tensor, in the graph).
    pub fn temperature(&self) -> Tensor {
        self.log_temperature.exp()
    }
    /// b (0-dim tensor, in the graph).
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// L2-normalised image embeddings `[n, D]` of `images [n, 3, H, H]` at patch size `patch`.
    pub fn encode_images(&self, images: &Tensor, patch: usize) -> Result<Tensor> {
        self.encode_images_in(images, patch, self.precision)
    }

    fn encode_images_in(
        &self,
        images: &Tensor,
        patch: usize,
        precision: Precision,
    ) -> Result<Tensor> {
        self.config.check_patch(patch)?;
        let h = self.config.image.image_size as i64;
        let size = images.size();
        if size.len() != 4 || size[1] != 3 || size[2] != h || size[3] != h {
            return Err(Error::Shape {
                op: "encode_images",
                expected: format!("[n, 3, {h}, {h}]"),
                got: size,
            });
        }
        let x = autocast(precision, self.device(), || {
            self.image.forward(images, patch)
        });
        Ok(normalise(&x.to_kind(Kind::Float)))
    }

    /// L2-normalised text embeddings `[n, D]` of `ids [n, T]` pooled at `last [n]`.
    pub fn encode_texts(&self, ids: &Tensor, last: &Tensor) -> Result<Tensor> {
        self.encode_texts_in(ids, last, self.precision)
    }

    fn encode_texts_in(&self, ids: &Tensor, last: &Tensor, precision: Precision) -> Result<Tensor> {
        let t = self.config.text.context_length as i64;
        let size = ids.size();
        if size.len() != 2 || size[1] != t || last.size() != [size[0]] {
            return Err(Error::Shape {
                op: "encode_texts",
                expected: format!("ids [n, {t}] and last [n]"),
                got: size,
            });
        }
        let x = autocast(precision, self.device(), || self.text.forward(ids, last));
        Ok(normalise(&x.to_kind(Kind::Float)))
    }

    /// Embeddings of a batch with every image at patch `patch`, detached, as the selector takes
    /// them (with this model's t and b), computed in inference mode (model/inference.rs): the
    /// results are inference tensors, to be read, not updated in place.
    pub fn embed(&self, batch: &BatchTensors, patch: usize) -> Result<PairEmbeddings> {
        self.embed_in(batch, patch, self.precision)
    }

    /// [`Self::embed`] with the towers' matrix products in `precision` instead of the model's
    /// own (scoring in bf16 while training in f32: `TrainConfig::scoring_precision`).
    pub fn embed_in(
        &self,
        batch: &BatchTensors,
        patch: usize,
        precision: Precision,
    ) -> Result<PairEmbeddings> {
        let _guard = inference::InferenceMode::enter();
        let n = batch.len();
        let mut images = Vec::new();
        let mut texts = Vec::new();
        for start in (0..n).step_by(EMBED_CHUNK) {
            let part = batch.narrow(start, (start + EMBED_CHUNK).min(n));
            images.push(self.encode_images_in(&part.images, patch, precision)?);
            texts.push(self.encode_texts_in(&part.ids, &part.last, precision)?);
        }
        let image = Tensor::cat(&images, 0);
        let text = Tensor::cat(&texts, 0);
        PairEmbeddings::new(
            image,
            text,
            self.temperature().double_value(&[]),
            self.bias.double_value(&[]),
        )
    }

    /// The sigmoid batch loss (docs/ALGORITHM.md §2) of `batch`: [`Self::train_embeddings`], then
    /// [`Self::pair_loss`].
    pub fn loss(&self, batch: &BatchTensors, parts: &[(usize, usize)]) -> Result<Tensor> {
        let (image, text) = self.train_embeddings(batch, parts)?;
        Ok(self.pair_loss(&image, &text))
    }

    /// The image and text embeddings a training step differentiates, `[n, D]` each: the images
    /// split into parts each encoded at its own patch size (`parts`: (rows, patch), in order,
    /// covering the batch), concatenated — Flexi-JEST's multi-resolution training (§5).
    pub fn train_embeddings(
        &self,
        batch: &BatchTensors,
        parts: &[(usize, usize)],
    ) -> Result<(Tensor, Tensor)> {
        let n: usize = parts.iter().map(|p| p.0).sum();
        if n != batch.len() {
            return Err(Error::invalid(
                "loss",
                format!("parts cover {n} rows but the batch has {}", batch.len()),
            ));
        }
        let mut start = 0;
        let mut images = Vec::with_capacity(parts.len());
        for &(rows, patch) in parts {
            if rows > 0 {
                let part = batch.images.narrow(0, start as i64, rows as i64);
                images.push(self.encode_images(&part, patch)?);
            }
            start += rows;
        }
        let image = Tensor::cat(&images, 0);
        let text = self.encode_texts(&batch.ids, &batch.last)?;
        Ok((image, text))
    }

    /// The sigmoid batch loss of paired embeddings with this model's t and b.
    pub fn pair_loss(&self, image: &Tensor, text: &Tensor) -> Tensor {
        sigmoid_batch_loss(image, text, &self.temperature(), &self.bias)
    }
}

/// Rows scaled to unit L2 norm (ε-guarded so a zero row stays finite).
fn normalise(x: &Tensor) -> Tensor {
    let norm = x
        .norm_scalaropt_dim(2, [-1i64].as_slice(), true)
        .clamp_min(1e-12);
    x / norm
}

/// The `(rows, patch)` parts of Flexi-JEST's multi-resolution training: the first half of `n` at
/// the base patch, the rest at `low_res_patch`.
pub fn half_and_half(n: usize, base_patch: usize, low_res_patch: usize) -> Vec<(usize, usize)> {
    let first = n.div_ceil(2);
    vec![(first, base_patch), (n - first, low_res_patch)]
}
