//! Distillation from the reference on the trained batch (docs/ALGORITHM.md §9; ACED, Udandarao et
//! al. 2024, arXiv:2411.18674): the learner's pairwise logits are pulled towards the reference's on
//! the same b × b pairs. JEST already holds the reference's embeddings of every trained example
//! (cached or scored online), so the target costs no forward pass, only its b × b logits.
//!
//! - softmax (the CLIP loss's; ACED's "softmax KD"): for each image the reference's softmax over
//!   the batch's texts is the target of the learner's, and for each text over the images;
//!   ½ (mean_i KL(p_i· ‖ q_i·) + mean_j KL(p·j ‖ q·j)), each model at its own temperature.
//! - sigmoid (the SigLIP loss's, our definition): the sigmoid loss is b² independent binary
//!   problems, "is (i, j) a pair?", so each pair's reference probability σ(t_R·r_ij + b_R) is the
//!   target of the learner's σ(t·s_ij + b) — a binary KL per pair, summed over the b² pairs and
//!   divided by b, the sigmoid loss's own normalisation. It matches every logit the sigmoid loss
//!   trains (a softmax target would ignore the bias and the absolute scale of each pair).
//!
//! Both are written with stable log-sigmoids / log-softmaxes; the reference side is a constant.
use tch::Tensor;

use super::LossKind;

/// The distillation loss (0-dim) of the learner's `image [b, D]`, `text [b, D]` with its `t`, `b`
/// (0-dim tensors: training differentiates through them) towards the reference's `ref_image`,
/// `ref_text` `[b, D]` with its `ref_t`, `ref_b`, row i of each the same example.
#[allow(clippy::too_many_arguments)]
pub fn distill_loss(
    kind: LossKind,
    image: &Tensor,
    text: &Tensor,
    t: &Tensor,
    b: &Tensor,
    ref_image: &Tensor,
    ref_text: &Tensor,
    ref_t: f64,
    ref_b: f64,
) -> Tensor {
    let n = image.size()[0] as f64;
    let dtype = image.kind();
    let learner = image.matmul(&text.tr()) * t;
    let reference = ref_image.matmul(&ref_text.tr()).detach() * ref_t;
    match kind {
        LossKind::Softmax => {
            let kl = |dim: i64| {
                let target = reference.log_softmax(dim, dtype);
                let own = learner.log_softmax(dim, dtype);
                (target.exp() * (&target - own)).sum(dtype) / n
            };
            (kl(1) + kl(0)) * 0.5
        }
        LossKind::Sigmoid => {
            let x = learner + b;
            let y = reference + ref_b;
            // KL(Bern(p) ‖ Bern(q)) with p = σ(y), q = σ(x):
            // p (log p − log q) + (1 − p)(log(1 − p) − log(1 − q)), log σ(z) = −softplus(−z).
            let p = y.sigmoid();
            let positive = x.neg().softplus() - y.neg().softplus();
            let negative = x.softplus() - y.softplus();
            (&p * positive + (p.neg() + 1.0) * negative).sum(dtype) / n
        }
    }
}

/// FLOPs of [`distill_loss`] on a b-example batch of width `dim`, as a training step executes it:
/// the reference's logits (forward only) and the learner's (forward and backward).
pub fn distill_flops(batch: usize, dim: usize) -> f64 {
    let logits = 2.0 * (batch * batch * dim) as f64;
    logits + 3.0 * logits
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn unit(n: i64, d: i64, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let x = Tensor::randn([n, d], (Kind::Float, Device::Cpu));
        &x / x.norm_scalaropt_dim(2, [1i64].as_slice(), true)
    }

    #[test]
    fn a_learner_equal_to_its_reference_has_nothing_to_learn() {
        let (image, text) = (unit(6, 4, 1), unit(6, 4, 2));
        let (t, b) = (Tensor::from(7.0f32), Tensor::from(-3.0f32));
        for kind in [LossKind::Softmax, LossKind::Sigmoid] {
            let loss = distill_loss(kind, &image, &text, &t, &b, &image, &text, 7.0, -3.0);
            assert!(loss.double_value(&[]).abs() < 1e-6, "{kind:?}");
            // Another reference gives a positive divergence.
            let other = distill_loss(kind, &image, &text, &t, &b, &text, &image, 2.0, 1.0);
            assert!(other.double_value(&[]) > 1e-3, "{kind:?}");
        }
    }

    #[test]
    fn the_sigmoid_divergence_is_stable_for_large_logits() {
        let (image, text) = (unit(5, 3, 3), unit(5, 3, 4));
        let t = Tensor::from(1e4f32).set_requires_grad(true);
        let b = Tensor::from(-50.0f32);
        let loss = distill_loss(
            LossKind::Sigmoid,
            &image,
            &text,
            &t,
            &b,
            &text,
            &image,
            1e4,
            0.0,
        );
        loss.backward();
        assert!(loss.double_value(&[]).is_finite());
        assert!(t.grad().double_value(&[]).is_finite());
    }
}
