//! The `gen-events` command: see the library's documentation (`lib.rs`).

fn main() {
    gen_events::main();
}
