//! The sigmoid (SigLIP) loss, pair by pair (docs/ALGORITHM.md §2; Zhai et al. 2023).
//!
//! logits[i, j] = t · image[i]·text[j] + b, label +1 on positives and −1 elsewhere, and
//! nll[i, j] = softplus(−label · logits[i, j]). libtorch's softplus is stable (x above its threshold
//! is returned as is, below it `log1p(exp(x))`), so |logits| up to 1e4 give neither NaN nor Inf.
//! `t` and `b` are tensors (0-dim) so that training can differentiate through them; the selector
//! passes plain numbers via `Tensor::from(f64)`.
use tch::{Kind, Tensor};

/// `image [R, D]`, `text [M, D]` → logits `[R, M]` = t · image · textᵀ + b.
pub fn sigmoid_logits(image: &Tensor, text: &Tensor, t: &Tensor, b: &Tensor) -> Tensor {
    // Scaling the left operand ([R, D]) instead of the product ([R, M]) saves a pass; R ≤ M
    // wherever it matters (the selector's [C, B] blocks). addmm's β-add of a broadcast b measured
    // slower here than the separate add.
    (image * t).matmul(&text.tr()) + b
}

/// Pairwise NLL of a logit block `[R, M]` in which row r's positive pair is column
/// `positive_cols[r]` (int64 `[R]`) and every other pair is a negative: softplus(logits) for
/// negatives, softplus(−logits) for the R positives. No `[R, M]` label matrix is built.
pub fn sigmoid_nll_block(logits: &Tensor, positive_cols: &Tensor) -> Tensor {
    let rows = Tensor::arange(logits.size()[0], (Kind::Int64, logits.device()));
    let cols = positive_cols.to_device(logits.device());
    let positives = logits.index(&[Some(&rows), Some(&cols)]);
    // In place on softplus's fresh output: its backward reads the input, not the output, so
    // autograd allows it, and the block is not copied.
    let mut nll = logits.softplus();
    let _ = nll.index_put_(
        &[Some(rows), Some(cols)],
        &positives.neg().softplus(),
        false,
    );
    nll
}

/// The batch's pairwise NLL matrix `[n, n]` from `image [n, D]`, `text [n, D]` (positives on the
/// diagonal).
pub fn sigmoid_nll_matrix(image: &Tensor, text: &Tensor, t: &Tensor, b: &Tensor) -> Tensor {
    let n = image.size()[0];
    let diagonal = Tensor::arange(n, (Kind::Int64, image.device()));
    sigmoid_nll_block(&sigmoid_logits(image, text, t, b), &diagonal)
}

/// Per-example loss `[n]`: row sums of the NLL matrix (image i against every text of the batch),
/// as in big_vision's `-sum(log_sigmoid(labels * logits), axis=-1)`.
pub fn sigmoid_per_example(image: &Tensor, text: &Tensor, t: &Tensor, b: &Tensor) -> Tensor {
    sigmoid_nll_matrix(image, text, t, b).sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)
}

/// The batch loss (a 0-dim tensor): (1/n) Σ_i Σ_j nll[i, j].
pub fn sigmoid_batch_loss(image: &Tensor, text: &Tensor, t: &Tensor, b: &Tensor) -> Tensor {
    sigmoid_per_example(image, text, t, b).mean(None::<Kind>)
}

/// Streamed block `[C, B]` of the super-batch's NLL matrix: the rows `rows [C]`, i.e. entry
/// `(c, j)` = nll[rows[c], j] (image rows[c] against every text).
pub fn sigmoid_nll_rows(
    image: &Tensor,
    text: &Tensor,
    t: &Tensor,
    b: &Tensor,
    rows: &Tensor,
) -> Tensor {
    let logits = sigmoid_logits(&image.index_select(0, rows), text, t, b);
    sigmoid_nll_block(&logits, rows)
}

/// Streamed block `[C, B]` of the super-batch's NLL matrix, transposed columns: entry `(c, i)` =
/// nll[i, cols[c]] (every image against text cols[c]).
pub fn sigmoid_nll_cols(
    image: &Tensor,
    text: &Tensor,
    t: &Tensor,
    b: &Tensor,
    cols: &Tensor,
) -> Tensor {
    // t·text[k]·image[i] + b is the same logit as t·image[i]·text[k] + b.
    let logits = sigmoid_logits(&text.index_select(0, cols), image, t, b);
    sigmoid_nll_block(&logits, cols)
}
