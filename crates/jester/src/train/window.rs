//! The metrics line's per-window accumulators: seconds by phase and ground-truth noise counts.
use std::collections::BTreeMap;

/// Per-window accumulators of the metrics line.
#[derive(Default)]
pub(super) struct Window {
    pub(super) steps: usize,
    pub(super) seconds: BTreeMap<String, f64>,
    pub(super) pending_seconds: BTreeMap<String, f64>,
    pub(super) noise_drawn: BTreeMap<String, u64>,
    pub(super) noise_selected: BTreeMap<String, u64>,
}

impl Window {
    pub(super) fn add(&mut self, name: &str, value: f64) {
        *self.seconds.entry(name.into()).or_default() += value;
        *self.pending_seconds.entry(name.into()).or_default() += value;
    }
    pub(super) fn mean_seconds(&self) -> BTreeMap<String, f64> {
        let n = self.steps.max(1) as f64;
        self.seconds
            .iter()
            .map(|(k, v)| (k.clone(), v / n))
            .collect()
    }
}

pub(super) fn count_noise(
    noise: &[Option<String>],
    rows: impl Iterator<Item = usize>,
    window: &mut BTreeMap<String, u64>,
    total: &mut BTreeMap<String, u64>,
) {
    for row in rows {
        if let Some(kind) = &noise[row] {
            *window.entry(kind.clone()).or_default() += 1;
            *total.entry(kind.clone()).or_default() += 1;
        }
    }
}

pub(super) fn fractions(counts: &BTreeMap<String, u64>) -> Option<BTreeMap<String, f64>> {
    let total: u64 = counts.values().sum();
    (total > 0).then(|| {
        counts
            .iter()
            .map(|(k, &v)| (k.clone(), v as f64 / total as f64))
            .collect()
    })
}
