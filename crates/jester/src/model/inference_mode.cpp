// c10::InferenceMode as two C functions for Rust (model/inference.rs). The guard's constructor and
// destructor are inline in the header; they call only exported c10 functions, so this file needs
// the headers and no link flags beyond libtorch's.
#include <c10/core/InferenceMode.h>

extern "C" void* jester_inference_mode_enter(bool enabled) {
  return new c10::InferenceMode(enabled);
}

extern "C" void jester_inference_mode_exit(void* guard) {
  delete static_cast<c10::InferenceMode*>(guard);
}
