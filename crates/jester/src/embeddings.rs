//! One model's view of a super-batch: its image and text embeddings and its sigmoid-loss
//! temperature and bias. JEST caches exactly this for the reference model (docs/ALGORITHM.md §6): scores depend
//! on which examples share a batch, so embeddings are kept, not scores.
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// L2-normalised embeddings `image [B, D]`, `text [B, D]` of one model, with the temperature
/// `t = exp(t')` (the temperature itself, not its log) and bias `b` of its sigmoid loss.
#[derive(Debug)]
pub struct PairEmbeddings {
    image: Tensor,
    text: Tensor,
    t: f64,
    b: f64,
}

impl PairEmbeddings {
    /// Checks shapes and values, then L2-normalises the rows (idempotent for normalised input).
    /// f32 and f64 are kept; f16 and bf16 (common in users' caches) are converted to f32 on their
    /// device, since scores summed over thousands of pairs need more than 8–11 mantissa bits.
    /// Fails on a shape mismatch between towers, a non-float dtype, NaN/Inf, or a zero row.
    pub fn new(image: Tensor, text: Tensor, t: f64, b: f64) -> Result<Self> {
        Self::checked(image, text, t, b, false)
    }

    /// As [`Self::new`], but rows that are already of unit norm (within 1e-4, as a model's
    /// normalised output is) are kept as they are: the tensors are the caller's own storage, not a
    /// copy (the Python package's `Embeddings`, for super-batches as large as memory allows).
    pub fn wrap(image: Tensor, text: Tensor, t: f64, b: f64) -> Result<Self> {
        Self::checked(image, text, t, b, true)
    }

    /// The same embeddings sharing the same storage.
    pub fn shallow_clone(&self) -> Self {
        Self {
            image: self.image.shallow_clone(),
            text: self.text.shallow_clone(),
            t: self.t,
            b: self.b,
        }
    }

    fn checked(image: Tensor, text: Tensor, t: f64, b: f64, keep_unit: bool) -> Result<Self> {
        const OP: &str = "PairEmbeddings::new";
        for (name, x) in [("image", &image), ("text", &text)] {
            if x.dim() != 2 || x.size()[0] == 0 || x.size()[1] == 0 {
                return Err(Error::Shape {
                    op: OP,
                    expected: format!("{name} as a non-empty [B, D] matrix"),
                    got: x.size(),
                });
            }
            if !matches!(
                x.kind(),
                Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
            ) {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "{name} has dtype {:?}; expected a floating-point type (f32, f64, f16 or bf16)",
                        x.kind()
                    ),
                ));
            }
        }
        let widen = |x: Tensor| match x.kind() {
            Kind::Half | Kind::BFloat16 => x.to_kind(Kind::Float),
            _ => x,
        };
        let (mut image, mut text) = (widen(image), widen(text));
        if image.kind() != text.kind() {
            // f32 with f64: the engine's working type for both.
            (image, text) = (image.to_kind(Kind::Float), text.to_kind(Kind::Float));
        }
        if image.size() != text.size() {
            return Err(Error::invalid(
                OP,
                format!(
                    "image {:?} and text {:?} disagree; both towers must give [B, D]",
                    image.size(),
                    text.size()
                ),
            ));
        }
        if !t.is_finite() || t <= 0.0 || !b.is_finite() {
            return Err(Error::invalid(
                OP,
                format!("temperature t = {t} must be finite and > 0 and bias b = {b} finite"),
            ));
        }
        let image = normalise_rows(image, "image", keep_unit)?;
        let text = normalise_rows(text, "text", keep_unit)?;
        Ok(Self { image, text, t, b })
    }

    /// `[B, D]`, rows of unit norm.
    pub fn image(&self) -> &Tensor {
        &self.image
    }
    /// `[B, D]`, rows of unit norm.
    pub fn text(&self) -> &Tensor {
        &self.text
    }
    pub fn temperature(&self) -> f64 {
        self.t
    }
    pub fn bias(&self) -> f64 {
        self.b
    }
    /// B, the number of examples.
    pub fn len(&self) -> usize {
        self.image.size()[0] as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// D, the embedding width.
    pub fn dim(&self) -> usize {
        self.image.size()[1] as usize
    }
    pub fn device(&self) -> Device {
        self.image.device()
    }
    pub fn kind(&self) -> Kind {
        self.image.kind()
    }

    /// The same embeddings on another device and/or dtype.
    pub fn to(&self, device: Device, kind: Kind) -> Self {
        Self {
            image: self.image.to_device(device).to_kind(kind),
            text: self.text.to_device(device).to_kind(kind),
            t: self.t,
            b: self.b,
        }
    }

    /// The rows `indices [n]` (int64), in that order.
    pub fn select_rows(&self, indices: &Tensor) -> Self {
        let indices = indices.to_device(self.device());
        Self {
            image: self.image.index_select(0, &indices),
            text: self.text.index_select(0, &indices),
            t: self.t,
            b: self.b,
        }
    }
}

/// Rows of unit norm: `x / ‖x‖` (a new tensor), or `x` itself when `keep_unit` and every row's
/// norm is within 1e-4 of 1. NaN/Inf and zero rows are refused, naming the first.
fn normalise_rows(x: Tensor, name: &str, keep_unit: bool) -> Result<Tensor> {
    // Row blocks bound the check's temporary memory (a [rows, D] mask) for very large inputs.
    const BLOCK: i64 = 65_536;
    let n = x.size()[0];
    for start in (0..n).step_by(BLOCK as usize) {
        let part = x.narrow(0, start, BLOCK.min(n - start));
        if part.isfinite().all().int64_value(&[]) != 1 {
            let bad = part.isfinite().logical_not().any_dim(1, false).nonzero();
            let row = start + bad.int64_value(&[0, 0]);
            return Err(Error::invalid(
                "PairEmbeddings::new",
                format!("{name} row {row} holds NaN or Inf"),
            ));
        }
    }
    let norms = x.norm_scalaropt_dim(2.0, [1i64].as_slice(), true);
    let zero = norms.eq(0.0).nonzero();
    if zero.size()[0] > 0 {
        return Err(Error::invalid(
            "PairEmbeddings::new",
            format!(
                "{name} row {} has zero norm and cannot be normalised",
                zero.int64_value(&[0, 0])
            ),
        ));
    }
    if keep_unit && (&norms - 1.0).abs().max().double_value(&[]) <= 1e-4 {
        return Ok(x);
    }
    Ok(x / norms)
}
