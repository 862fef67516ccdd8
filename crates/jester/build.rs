//! libtorch's link flags (scripts/torch_link.rs, shared with jester-cli), then the C++ shims for what
//! neither libtorch's C API nor tch binds: `c10::InferenceMode` (an inline C++ guard,
//! src/model/inference_mode.cpp) and the multi-tensor AdamW and norms (src/train/fused_adamw.cpp),
//! compiled against the headers next to the libtorch torch-sys
//! linked (`DEP_TCH_LIBTORCH_LIB` is `.../torch/lib`; the headers are in `.../torch/include`).
#[path = "../../scripts/torch_link.rs"]
mod torch_link;

use std::path::PathBuf;

fn main() {
    torch_link::main();
    let shims = ["src/model/inference_mode.cpp", "src/train/fused_adamw.cpp"];
    for shim in shims {
        println!("cargo:rerun-if-changed={shim}");
    }
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys reports libtorch's folder (DEP_TCH_LIBTORCH_LIB)");
    let include = PathBuf::from(lib)
        .parent()
        .expect("libtorch's lib folder has a parent")
        .join("include");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include(&include)
        .files(shims)
        .warnings(false)
        .compile("jester_shims");
}
