//! PyTorch's inference mode for the forward passes whose outputs never meet autograd (scoring,
//! embedding, evaluation). Beyond what `no_grad` skips (the graph), inference mode also skips the
//! version counters and view bookkeeping of every tensor made inside it; its outputs are
//! "inference tensors", which autograd refuses and which cannot be updated in place outside the
//! mode — fine for embeddings that are only read afterwards. Measured effect: BENCHMARKS.md
//! ("Scoring a super-batch").
use std::marker::PhantomData;

extern "C" {
    fn jester_inference_mode_enter(enabled: bool) -> *mut std::ffi::c_void;
    fn jester_inference_mode_exit(guard: *mut std::ffi::c_void);
}

/// Inference mode on this thread while the guard lives (nests; the previous state comes back on
/// drop). Not `Send`: libtorch keeps the mode per thread.
pub struct InferenceMode {
    guard: *mut std::ffi::c_void,
    _thread: PhantomData<*const ()>,
}

impl InferenceMode {
    pub fn enter() -> Self {
        Self::set(true)
    }

    /// Normal mode while the guard lives, inside an inference-mode region — grad mode included,
    /// so pair it with `tch::no_grad_guard()` — for state that is made there but kept for later
    /// training steps (a cached tensor made in inference mode would be an inference tensor, which
    /// autograd refuses to save for backward).
    pub fn suspend() -> Self {
        Self::set(false)
    }

    fn set(enabled: bool) -> Self {
        // SAFETY: the shim allocates a c10::InferenceMode, whose constructor only sets this
        // thread's autograd state; it is freed once, on this thread, by Drop.
        let guard = unsafe { jester_inference_mode_enter(enabled) };
        Self {
            guard,
            _thread: PhantomData,
        }
    }
}

impl Drop for InferenceMode {
    fn drop(&mut self) {
        // SAFETY: `guard` came from `jester_inference_mode_enter` on this thread (the type is not
        // Send) and is freed only here.
        unsafe { jester_inference_mode_exit(self.guard) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn outputs_are_inference_tensors_and_the_mode_ends_with_the_guard() {
        let w = Tensor::ones([3], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let inside = {
            let _mode = InferenceMode::enter();
            assert!(!tch::Tensor::ones([1], (Kind::Float, tch::Device::Cpu)).requires_grad());
            &w * 2.0
        };
        // No graph was recorded, and the output is an inference tensor (which an in-place update
        // outside the mode would be refused for: what tells inference mode from no_grad).
        assert!(!inside.requires_grad());
        assert!(inside.is_inference());
        assert!(!(&w * 2.0).detach().is_inference());
        let mut normal = Tensor::zeros([3], (Kind::Float, tch::Device::Cpu));
        assert!(
            normal.f_copy_(&inside).is_ok(),
            "inference tensors can be read"
        );
        // After the guard, autograd records again.
        assert!((&w * 2.0).requires_grad());
        // Suspended inside the mode, tensors are normal (what a cache kept for training needs).
        let _mode = InferenceMode::enter();
        let kept = {
            let _normal = InferenceMode::suspend();
            let _no_grad = tch::no_grad_guard();
            Tensor::ones([2], (Kind::Float, tch::Device::Cpu)) * 3.0
        };
        assert!(!kept.is_inference());
        assert!(Tensor::ones([2], (Kind::Float, tch::Device::Cpu)).is_inference());
    }
}
