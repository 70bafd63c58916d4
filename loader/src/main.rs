//! The `loader` binary: everything lives in the library (see `loader::cli`).

fn main() -> std::process::ExitCode {
    loader::cli::main()
}
