//! The `router` binary: everything lives in the library (see `router::cli`).

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    router::cli::main()
}

/// Each source is routed on a different blocking thread, and glibc gives
/// threads arenas of their own that keep freed memory: a 24-object backfill
/// peaked at 192 MB with the default (8 arenas per core), 55 MB with two, at
/// the same speed (measured with bench/backfill; mimalloc was faster but held
/// 118 MB). An explicit `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator tunable; it is called once,
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
