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

/// Whether a binary started with no arguments inside Lambda (the zip's
/// `bootstrap`) should serve invocations: `AWS_LAMBDA_RUNTIME_API` is set.
pub fn lambda_by_default() -> bool {
    std::env::args_os().len() == 1
        && std::env::var_os(crate::lambda::runtime::RUNTIME_API_ENV).is_some_and(|v| !v.is_empty())
}

/// A binary's Lambda mode, from start-up to shutdown. `start` loads and
/// checks the configuration and builds what serving needs; its error is a
/// usage error (returned, for exit code 2), reported to Lambda first as an
/// init error, which shows in the function's log. `serve` then serves
/// invocations until SIGTERM; its error is reported likewise (exit code 1).
pub async fn lambda_main<S, Fut>(
    binary: &str,
    start: impl FnOnce() -> Result<(Config, S), String>,
    serve: impl FnOnce(Config, S, crate::lambda::runtime::RuntimeApi) -> Fut,
) -> Result<std::process::ExitCode, String>
where
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let api = crate::lambda::runtime::RuntimeApi::from_env()?;
    let (config, state) = match start() {
        Ok(started) => started,
        Err(message) => {
            report_init_error(&api, "InvalidConfig", &message).await;
            return Err(message);
        }
    };
    prepare_lambda(&api, &config).await;
    match serve(config, state, api.clone()).await {
        Ok(()) => Ok(std::process::ExitCode::SUCCESS),
        Err(e) => {
            let message = format!("{e:#}");
            report_init_error(&api, "StartupFailed", &message).await;
            eprintln!("{binary}: {message}");
            Ok(std::process::ExitCode::from(1))
        }
    }
}

/// Reports a start-up failure to Lambda (logged, not fatal if that fails
/// too: the process exits with an error either way).
async fn report_init_error(api: &crate::lambda::runtime::RuntimeApi, kind: &str, message: &str) {
    if let Err(e) = api.init_error(kind, message).await {
        tracing::warn!(error = %e, "could not report the start-up error to Lambda");
    }
}

/// What Lambda mode does before its first invocation: with
/// `lambda.graceful_shutdown`, the no-op extension that makes Lambda send
/// SIGTERM (a runtime emulator may not offer the Extensions API: then
/// SIGTERM is only what the emulator sends).
async fn prepare_lambda(api: &crate::lambda::runtime::RuntimeApi, config: &Config) {
    if !config.lambda.graceful_shutdown {
        return;
    }
    let registered = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        api.register_shutdown_extension(),
    )
    .await;
    match registered {
        Ok(Ok(())) => tracing::debug!("registered for SIGTERM at shutdown"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not register for SIGTERM at shutdown; metrics of the last invocation are flushed with its answer anyway")
        }
        Err(_) => {
            tracing::warn!("registering for SIGTERM at shutdown took over 2 s; going on without")
        }
    }
}

/// `router healthcheck`, `loader healthcheck`.
#[derive(clap::Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// The service's --metrics-addr, as seen from inside its container.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub addr: std::net::SocketAddr,
    /// /livez (the process answers: restart it if not) or /healthz
    /// (its queue and warehouse are reachable).
    #[arg(long, default_value = "/livez")]
    pub path: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
}

/// Exit code 0 when the endpoint answers 200, else 1 (with the reason).
pub async fn healthcheck(args: &HealthcheckArgs) -> std::process::ExitCode {
    let timeout = std::time::Duration::from_secs(args.timeout_secs);
    match crate::telemetry::probe(args.addr, &args.path, timeout).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Records when the process started (the first thing `main` does), for the
/// start-up time Lambda mode reports.
pub fn mark_start() {
    STARTED.get_or_init(std::time::Instant::now);
}

/// Time since [`mark_start`] (zero if it was never called).
pub fn since_start() -> std::time::Duration {
    STARTED
        .get()
        .map_or(std::time::Duration::ZERO, |s| s.elapsed())
}
