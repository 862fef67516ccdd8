//! Sampling without replacement with p ∝ exp(x) by Gumbel-top-k (docs/ALGORITHM.md §4, Decision): the top k
//! of x + g, g ~ Gumbel(0, 1) i.i.d., is distributed exactly as k successive draws without
//! replacement from softmax(x) (a Plackett–Luce sample). It works in log space, so the large gains
//! (×100) that overflow the paper's `exp(logits)` are harmless.
//!
//! The noise comes from a seeded ChaCha8 stream on the host, so a seed gives the same selection on
//! CPU and GPU, in every dtype, and for the naive twin.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

pub(crate) struct GumbelNoise {
    rng: ChaCha8Rng,
}

impl GumbelNoise {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// n independent Gumbel(0, 1) draws, `[n]`.
    pub(crate) fn sample(&mut self, n: usize, kind: Kind, device: Device) -> Tensor {
        let noise: Vec<f64> = (0..n)
            .map(|_| {
                let u: f64 = self.rng.gen_range(f64::MIN_POSITIVE..1.0);
                -(-u.ln()).ln()
            })
            .collect();
        Tensor::from_slice(&noise).to_kind(kind).to_device(device)
    }
}

/// The k largest of `gain · logits + noise` (all `[B]`), best first, as int64 `[k]`. Entries of
/// `logits` that are −∞ (already selected) are never taken while k ≤ the finite count.
///
/// The mask is applied after scaling: −∞ · 0 is NaN, which `topk` ranks first, so a gain of 0
/// would otherwise re-draw the selected examples. With gain 0 every key is pure noise: a uniform
/// draw without replacement among the unselected.
pub(crate) fn gumbel_top_k(logits: &Tensor, noise: &Tensor, gain: f64, k: usize) -> Tensor {
    let selected = logits.isneginf();
    let keys = (logits * gain + noise).masked_fill(&selected, f64::NEG_INFINITY);
    keys.topk(k as i64, 0, true, true).1
}

/// [`gumbel_top_k`] with a quota: the keys are `groups` equal consecutive groups and the `k` best
/// of each are taken, `[groups · k]` in group order (best first within a group).
pub(crate) fn gumbel_top_k_grouped(
    logits: &Tensor,
    noise: &Tensor,
    gain: f64,
    k: usize,
    groups: usize,
) -> Tensor {
    let selected = logits.isneginf();
    let keys = (logits * gain + noise).masked_fill(&selected, f64::NEG_INFINITY);
    let per_group = keys.size()[0] / groups as i64;
    let picked = keys
        .reshape([groups as i64, per_group])
        .topk(k as i64, 1, true, true)
        .1;
    let offsets = Tensor::arange(groups as i64, (Kind::Int64, keys.device())) * per_group;
    (picked + offsets.unsqueeze(1)).reshape([-1])
}
