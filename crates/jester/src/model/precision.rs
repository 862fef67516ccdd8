//! Mixed precision: the towers' forward passes under libtorch autocast in bfloat16, with
//! parameters, optimiser state, embeddings, losses and selection kept in f32.
//!
//! tch exposes autocast only as a CUDA on/off switch in libtorch's default dtype (fp16, which would
//! need loss scaling). bf16 needs `at::autocast::set_autocast_dtype`, which the C API of torch-sys
//! does not wrap, so the two functions are bound here by their (Itanium-mangled) C++ names. They are
//! exported by `libtorch_cpu` in every 2.x release; if one ever goes, the build fails to link rather
//! than running silently in f32. `c10::DeviceType` and `c10::ScalarType` are `enum class : int8_t`.
use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

/// The arithmetic of the forward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Matrix products and convolutions in bfloat16 under autocast (libtorch's per-op lists keep
    /// reductions, norms and softmax in f32); the rest in f32. Fast on GPUs with bf16 tensor cores
    /// and on CPUs with AVX-512 BF16 / AMX; *slower* than f32 on plain AVX2 CPUs.
    Bf16,
}

impl Precision {
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// The element type of the matrix products under this precision.
    pub fn kind(self) -> Kind {
        match self {
            Precision::F32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

mod ffi {
    extern "C" {
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device_type: i8) -> bool;
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device_type: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device_type: i8) -> i8;
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device_type: i8, dtype: i8);
    }
}

/// `c10::DeviceType` values.
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
/// `c10::ScalarType::BFloat16`.
const SCALAR_BFLOAT16: i8 = 15;

/// Runs `f` with autocast on `device` in `precision` (a plain call for f32). Nests; the previous
/// autocast state is restored when `f` returns or panics.
pub fn autocast<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    match precision {
        Precision::F32 => f(),
        Precision::Bf16 => {
            let _guard = AutocastGuard::enter(device);
            f()
        }
    }
}

struct AutocastGuard {
    device_type: i8,
    was_enabled: bool,
    old_dtype: i8,
}

impl AutocastGuard {
    fn enter(device: Device) -> Self {
        let device_type = match device {
            Device::Cuda(_) => DEVICE_CUDA,
            _ => DEVICE_CPU,
        };
        // SAFETY: plain setters/getters of libtorch's thread-local autocast state; the argument
        // types are one-byte enums passed by value (see the module docs).
        unsafe {
            let guard = Self {
                device_type,
                was_enabled: ffi::is_autocast_enabled(device_type),
                old_dtype: ffi::get_autocast_dtype(device_type),
            };
            ffi::set_autocast_dtype(device_type, SCALAR_BFLOAT16);
            ffi::set_autocast_enabled(device_type, true);
            torch_sys::at_autocast_increment_nesting();
            guard
        }
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // SAFETY: as in `enter`. The cast cache holds bf16 copies of the weights; it is dropped
        // when the outermost region ends, as `torch.autocast` does.
        unsafe {
            if torch_sys::at_autocast_decrement_nesting() == 0 {
                torch_sys::at_autocast_clear_cache();
            }
            ffi::set_autocast_enabled(self.device_type, self.was_enabled);
            ffi::set_autocast_dtype(self.device_type, self.old_dtype);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn matrix_products_run_in_bf16_inside_and_f32_after() {
        let a = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
        let inside = autocast(Precision::Bf16, Device::Cpu, || a.matmul(&b));
        assert_eq!(inside.kind(), Kind::BFloat16);
        let nested = autocast(Precision::Bf16, Device::Cpu, || {
            autocast(Precision::Bf16, Device::Cpu, || ());
            a.matmul(&b)
        });
        assert_eq!(
            nested.kind(),
            Kind::BFloat16,
            "a nested region ended the outer one"
        );
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        assert_eq!(
            autocast(Precision::F32, Device::Cpu, || a.matmul(&b)).kind(),
            Kind::Float
        );
        let exact = a.matmul(&b);
        let error = (inside.to_kind(Kind::Float) - &exact).abs().max();
        let error = error.double_value(&[]);
        assert!(error > 0.0 && error < 0.1, "bf16 error {error}");
    }

    #[test]
    fn the_previous_state_is_restored_after_a_panic() {
        let a = Tensor::randn([4, 4], (Kind::Float, Device::Cpu));
        let caught = std::panic::catch_unwind(|| {
            autocast(Precision::Bf16, Device::Cpu, || panic!("inside"));
        });
        assert!(caught.is_err());
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
    }
}
