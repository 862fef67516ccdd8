//! Measurement helpers of the benchmarks: a GEMM rate, device sync, peak resident memory.
use std::time::Instant;

use tch::Device;

/// Best rate over a few timed calls of `f` (after one warm-up).
pub(crate) fn gflops(flop: f64, device: Device, f: impl Fn()) -> f64 {
    f();
    sync(device);
    (0..5)
        .map(|_| {
            let start = Instant::now();
            f();
            sync(device);
            flop / 1e9 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

pub(crate) fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// The process's peak resident memory since `reset`, from Linux's VmHWM (reset through
/// /proc/self/clear_refs), minus what was resident at the reset. malloc's free lists are returned
/// to the system first, so that memory freed earlier cannot hide new use.
pub(crate) struct PeakRss {
    base: u64,
}

impl PeakRss {
    pub(crate) fn reset() -> Self {
        crate::malloc::release_free_memory();
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        Self {
            base: status_bytes("VmRSS"),
        }
    }
    pub(crate) fn extra(&self) -> u64 {
        status_bytes("VmHWM").saturating_sub(self.base)
    }
}

fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
