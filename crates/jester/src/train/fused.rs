//! PyTorch's multi-tensor AdamW and norms (`at::_fused_adamw_`, `at::_foreach_norm`) through the
//! C++ shim beside this file: one kernel launch (one dispatch per list on the CPU) instead of a
//! dozen per parameter, which is what a small model's update is made of (BENCHMARKS.md, "The
//! update").
use std::ffi::{c_char, c_void, CStr};

use tch::Tensor;

use crate::error::{Error, Result};

extern "C" {
    fn jester_sum_of_squares(list: *const *const c_void, n: usize, out: *mut f64) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    fn jester_fused_adamw(
        params: *const *const c_void,
        grads: *const *const c_void,
        first: *const *const c_void,
        second: *const *const c_void,
        steps: *const *const c_void,
        n: usize,
        scale: f64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
    ) -> *mut c_char;
    fn jester_free_message(message: *mut c_char);
}

fn pointers(tensors: &[&Tensor]) -> Vec<*const c_void> {
    tensors
        .iter()
        .map(|t| t.as_ptr() as *const c_void)
        .collect()
}

/// The shim's error message, if it returned one.
fn check(op: &'static str, message: *mut c_char) -> Result<()> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string the shim allocated with strdup; it is
    // read once and freed once, by the shim's own allocator.
    let what = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    unsafe { jester_free_message(message) };
    Err(Error::invalid(op, what))
}

/// Σ‖t‖² over `tensors`, in f64 (one synchronisation).
pub(crate) fn sum_of_squares(tensors: &[&Tensor]) -> Result<f64> {
    let list = pointers(tensors);
    let mut out = 0.0;
    // SAFETY: `list` holds `list.len()` pointers to live tensors (borrowed for the call) and
    // `out` is a valid f64 the shim writes once.
    let message = unsafe { jester_sum_of_squares(list.as_ptr(), list.len(), &mut out) };
    check("sum_of_squares", message)?;
    Ok(out)
}

/// The moments and bias-correction state of one fused AdamW call.
pub(crate) struct FusedAdamW<'a> {
    pub params: Vec<&'a Tensor>,
    pub grads: Vec<&'a Tensor>,
    pub first: Vec<&'a Tensor>,
    pub second: Vec<&'a Tensor>,
}

/// The arithmetic of one update.
pub(crate) struct AdamWStep {
    /// The gradients are multiplied by this first (clipping), in place.
    pub scale: f64,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// torch's decay: p ← p·(1 − lr·weight_decay).
    pub weight_decay: f64,
    pub eps: f64,
    /// Updates applied, this one included (Adam's bias correction).
    pub updates: i64,
}

/// One `at::_fused_adamw_` update of `lists` in place (all f32 on one device, the same lengths).
pub(crate) fn fused_adamw(lists: &FusedAdamW, step: &AdamWStep) -> Result<()> {
    let n = lists.params.len();
    assert!(
        lists.grads.len() == n && lists.first.len() == n && lists.second.len() == n,
        "one gradient and two moments per parameter"
    );
    if n == 0 {
        return Ok(());
    }
    let device = lists.params[0].device();
    // The kernel reads (does not increment) one step count per parameter; one tensor serves all.
    let count = Tensor::from(step.updates as f32).to_device(device);
    let counts = vec![&count; n];
    let (p, g, m, v, s) = (
        pointers(&lists.params),
        pointers(&lists.grads),
        pointers(&lists.first),
        pointers(&lists.second),
        pointers(&counts),
    );
    // SAFETY: five arrays of `n` pointers to live tensors, borrowed for the call; the shim
    // updates the tensors in place and keeps no pointer after returning.
    let message = unsafe {
        jester_fused_adamw(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            s.as_ptr(),
            n,
            step.scale,
            step.lr,
            step.beta1,
            step.beta2,
            step.weight_decay,
            step.eps,
        )
    };
    check("fused AdamW", message)
}
