//! Build script shared by the crates that link libtorch (see `build =` in their Cargo.toml).
//!
//! torch-sys reports libtorch's folder (`DEP_TCH_LIBTORCH_LIB`, because it `links = "tch"` and this
//! crate depends on it directly). We bake that folder into the binaries' rpath so they run without
//! LD_LIBRARY_PATH, and force-link libtorch_cuda: with `--as-needed` the linker drops it (no symbol
//! of ours refers to it), and then CUDA is silently unavailable on GPU machines.
use std::path::Path;

/// Also called by crates/jester/build.rs, which adds its C++ shim.
pub fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
