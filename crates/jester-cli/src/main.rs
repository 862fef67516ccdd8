//! The `jester` binary: the command line of [`jester_cli`], in one process.
fn main() -> std::process::ExitCode {
    jester_cli::main(std::env::args_os())
}
