//! The extension finds libtorch in the installed torch package beside it
//! (`site-packages/jester/_jester.so` → `site-packages/torch/lib`), so nothing is set at run time.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
}
