//! The softmax (CLIP / InfoNCE) loss: cross-entropy over each row (image → texts) and each column
//! (text → images) of the logit matrix t · image · textᵀ, averaged. No bias: a constant shift does
//! not change a softmax. Stable through `log_softmax`.
use tch::{Kind, Tensor};

/// Per-example loss `[n]`: ℓ_i = ½ (−log softmax_row(s)[i, i] − log softmax_col(s)[i, i]) for
/// `image [n, D]`, `text [n, D]`, `t` the temperature (0-dim).
pub fn softmax_per_example(image: &Tensor, text: &Tensor, t: &Tensor) -> Tensor {
    let logits = image.matmul(&text.tr()) * t;
    let rows = logits.log_softmax(1, None::<Kind>).diagonal(0, 0, 1);
    let cols = logits.log_softmax(0, None::<Kind>).diagonal(0, 0, 1);
    (rows + cols) * -0.5
}

/// The batch loss (0-dim): the mean of [`softmax_per_example`].
pub fn softmax_batch_loss(image: &Tensor, text: &Tensor, t: &Tensor) -> Tensor {
    softmax_per_example(image, text, t).mean(None::<Kind>)
}
