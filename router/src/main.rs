//! The `router` binary: everything lives in the library (see `router::cli`).
fn main() -> std::process::ExitCode {
    router::cli::main()
}
