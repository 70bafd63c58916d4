//! What both binaries do the same way at the process edge: logging set-up,
//! standard output, and the shutdown signal.

use crate::config::{Config, LogFormat};

/// The last step of both binaries' start-up: applies the flags they share
/// (`--log-format`, `--metrics-addr`) over file and environment, validates
/// the whole configuration once, then starts logging in the format it asks
/// for. The error is a usage error: it names the key and the fix.
pub fn finish_config(
    config: &mut Config,
    log_format: Option<&str>,
    metrics_addr: Option<&str>,
) -> Result<(), String> {
    if let Some(f) = log_format {
        config.log.format = LogFormat::parse(f)?;
    }
    if let Some(addr) = metrics_addr {
        config.metrics.addr = Some(addr.to_owned());
    }
    config.validate().map_err(|e| e.to_string())?;
    init_logging(config.log.format);
    Ok(())
}

/// Logs to stderr at `RUST_LOG` (default `info`): readable lines (coloured
/// on a terminal), or one JSON object per line for a log pipeline. Only the
/// first call in a process takes effect.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // Fields at the top level, where log queries look for them.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("signal received: stopping");
}

/// Prints one line of a command's output on stdout. A reader that closed
/// the pipe (`loader rejects | head`) wants no more output: the process then
/// exits 0 at once, like ripgrep, instead of panicking as `println!` does.
/// Whatever the command did before is already done (committed, written).
pub fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        panic!("writing to standard output: {e}");
    }
}

/// `println!` for command output: see [`print_line`].
#[macro_export]
macro_rules! say {
    () => {
        $crate::process::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::process::print_line(format_args!($($arg)*))
    };
}
