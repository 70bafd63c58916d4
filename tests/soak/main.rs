//! The fault soak of issue #13 (soak.rs), as a test binary of its own with
//! its own `main` (`harness = false`): the soak needs a router *process* to
//! SIGKILL, built from the same code as the test, and a binary of the
//! loader package cannot name the router's (`CARGO_BIN_EXE_router` exists
//! only in the router package). So this binary is also that router: started
//! with `SOAK_ROUTER_ARGS` (a JSON list of arguments), it runs the router's
//! CLI and exits with its code; otherwise it runs the soak.
//!
//! `cargo test` runs it with the other tests; a name filter that does not
//! match the soak's (`cargo test -- NAME`) skips it, as libtest would.

use std::process::ExitCode;

mod soak;
// The loader tests' helpers; the soak uses some of them.
#[allow(dead_code)]
#[path = "../loader/support.rs"]
mod support;

const NAME: &str = "soak::issue13_fault_soak_loses_and_duplicates_nothing";

fn main() -> ExitCode {
    if let Ok(args) = std::env::var("SOAK_ROUTER_ARGS") {
        return router_process(&args);
    }
    // libtest's flags (`--nocapture`, `--test-threads N`, `-q`…) mean
    // nothing here; a bare argument is a name filter.
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--list" => {
                println!("{NAME}: test");
                return ExitCode::SUCCESS;
            }
            "--test-threads" | "--skip" | "--format" | "--color" | "-Z" => {
                let value = args.next();
                if a == "--skip" && value.as_deref().is_some_and(|v| NAME.contains(v)) {
                    return skipped();
                }
            }
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter.to_owned()),
        }
    }
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        return skipped();
    }
    println!("\nrunning 1 test");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(soak::issue13_fault_soak_loses_and_duplicates_nothing());
    // A failed check panics: the process exits 101, as a failed libtest run.
    println!("test {NAME} ... ok\n\ntest result: ok. 1 passed; 0 failed\n");
    ExitCode::SUCCESS
}

fn skipped() -> ExitCode {
    println!("\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 1 filtered out\n");
    ExitCode::SUCCESS
}

/// The router's CLI with `args`, exiting with its exit code.
fn router_process(args: &str) -> ExitCode {
    use clap::Parser;
    let args: Vec<String> = serde_json::from_str(args).expect("SOAK_ROUTER_ARGS: a JSON list");
    let cli = router::cli::Cli::parse_from(std::iter::once("router".to_owned()).chain(args));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(router::cli::execute(cli))
}
