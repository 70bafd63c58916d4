//! The shared support (`tests/support.rs`) plus what needs the router binary.

#[path = "../support.rs"]
mod shared;
pub use shared::*;

/// The `router` binary pointed at moto, logging warnings only.
pub fn router_at_moto() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_router"));
    cmd.env("AWS_ENDPOINT_URL", moto()).env("RUST_LOG", "warn");
    cmd
}
