//! libtorch's link flags (scripts/torch_link.rs, shared with jester-cli), then the C++ shim that
//! exposes `c10::InferenceMode` (an inline C++ guard that neither libtorch's C API nor tch binds):
//! src/model/inference_mode.cpp, compiled against the headers next to the libtorch torch-sys
//! linked (`DEP_TCH_LIBTORCH_LIB` is `.../torch/lib`; the headers are in `.../torch/include`).
#[path = "../../scripts/torch_link.rs"]
mod torch_link;

use std::path::PathBuf;

fn main() {
    torch_link::main();
    let shim = "src/model/inference_mode.cpp";
    println!("cargo:rerun-if-changed={shim}");
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
        .file(shim)
        .warnings(false)
        .compile("jester_inference_mode");
}
