// PyTorch's multi-tensor kernels that tch does not bind (its generator leaves out `_foreach_*` and
// `_fused_adam*`), as C functions for Rust (train/fused.rs). A tch tensor is a pointer to an
// at::Tensor (torch-sys's C API), so the lists are built from those pointers without copying data.
// Errors come back as a malloc'd message (freed by the caller), never as a C++ exception.
#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace {

std::vector<at::Tensor> tensors(at::Tensor* const* list, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(*list[i]);
  return out;
}

char* message(const std::exception& e) { return strdup(e.what()); }

}  // namespace

// Σ over the tensors of their squared L2 norms, in double, with one device synchronisation.
extern "C" char* jester_sum_of_squares(at::Tensor* const* list, size_t n, double* out) {
  try {
    if (n == 0) {
      *out = 0.0;
      return nullptr;
    }
    auto norms = at::_foreach_norm(tensors(list, n), 2);
    *out = at::stack(norms).to(at::kDouble).square().sum().item<double>();
    return nullptr;
  } catch (const std::exception& e) {
    return message(e);
  }
}

// One AdamW update of every parameter in place: the gradients are first multiplied by `scale`
// (gradient clipping, in place), then `at::_fused_adamw_` updates the moments and the
// parameters, with bias corrections from `steps` (one f32 scalar per parameter, the update count
// including this update). The decay `weight_decay` is torch's: p ← p·(1 − lr·weight_decay).
extern "C" char* jester_fused_adamw(at::Tensor* const* params, at::Tensor* const* grads,
                                    at::Tensor* const* first, at::Tensor* const* second,
                                    at::Tensor* const* steps, size_t n, double scale, double lr,
                                    double beta1, double beta2, double weight_decay, double eps) {
  try {
    if (n == 0) return nullptr;
    auto g = tensors(grads, n);
    if (scale != 1.0) at::_foreach_mul_(g, at::Scalar(scale));
    at::_fused_adamw_(tensors(params, n), g, tensors(first, n), tensors(second, n), {},
                      tensors(steps, n), lr, beta1, beta2, weight_decay, eps,
                      /*amsgrad=*/false, /*maximize=*/false);
    return nullptr;
  } catch (const std::exception& e) {
    return message(e);
  }
}

extern "C" void jester_free_message(char* message) { free(message); }
