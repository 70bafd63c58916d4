//! The `router` command line. Exit codes: 0 success, 1 a source could not be
//! read or was damaged (or, for `run --drain`, a message failed), 2 a usage
//! or configuration error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use logrouter::aws::AwsClients;
use logrouter::config::Config;
use logrouter::location::Location;
use logrouter::manifest::Manifest;
use logrouter::queue::RunStats;
use serde_json::json;

use crate::lines::FirstError;
use crate::route::{RouteOutcome, Router};

#[derive(Parser, Debug)]
#[command(
    name = "router",
    version,
    about = "Split S3 log objects into per-event-type files"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// TOML configuration file (see logrouter.example.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// JSON pointer to the event type in each line (default /event_type).
    #[arg(long, global = true)]
    pub type_field: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Route sources (local paths, s3://bucket/key, or - for stdin) and exit.
    Route {
        #[command(flatten)]
        common: Common,
        /// Destination: a local folder or s3://bucket/prefix.
        #[arg(long)]
        out: String,
        /// Print a machine-readable JSON summary on stdout.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        sources: Vec<String>,
    },
    /// Long-poll SQS for S3 notifications and route each new object.
    Run {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        queue_url: String,
        /// Destination: a local folder or s3://bucket/prefix.
        #[arg(long)]
        out: String,
        /// Exit once a long poll found the queue empty and nothing is in flight.
        #[arg(long)]
        drain: bool,
    },
}

/// A usage or configuration error: exit code 2.
#[derive(Debug)]
struct UsageError(String);

fn load_config(common: &Common) -> Result<Config, UsageError> {
    let mut config =
        Config::load(common.config.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    if let Some(t) = &common.type_field {
        config.route.type_field = t.clone();
    }
    config.validate().map_err(|e| UsageError(e.to_string()))?;
    Ok(config)
}

fn location(text: &str, what: &str) -> Result<Location, UsageError> {
    Location::parse(text).map_err(|e| UsageError(format!("{what}: {e}")))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(execute(cli))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .ok();
}

/// Runs a parsed command line and returns the exit code.
pub async fn execute(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Route {
            common,
            out,
            json,
            sources,
        } => route_command(&common, &out, json, &sources).await,
        Command::Run {
            common,
            queue_url,
            out,
            drain,
        } => run_command(&common, queue_url, &out, drain).await,
    };
    match result {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("router: {message}");
            ExitCode::from(2)
        }
    }
}

async fn route_command(
    common: &Common,
    out: &str,
    json: bool,
    sources: &[String],
) -> Result<ExitCode, UsageError> {
    let config = load_config(common)?;
    let dest = location(out, "--out")?;
    let sources = sources
        .iter()
        .map(|s| location(s, "source"))
        .collect::<Result<Vec<_>, _>>()?;
    let clients = Arc::new(AwsClients::new(config.aws.clone()));
    let router = Router::new(&config, &dest, clients)
        .await
        .map_err(UsageError)?;
    let mut failed = false;
    let mut reports = Vec::new();
    for source in &sources {
        match router.route_object(source, false).await {
            Ok(RouteOutcome::Routed {
                manifest,
                manifest_key,
                first_errors,
            }) => {
                failed |= manifest.damage.is_some();
                if json {
                    reports.push(json_report(&manifest, &manifest_key));
                } else {
                    println!("{}", summary_line(&manifest, &manifest_key, &first_errors));
                }
            }
            Ok(RouteOutcome::AlreadyRouted { uri, manifest_key }) => {
                if !json {
                    println!("{uri}: already routed ({manifest_key})");
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("router: {e}");
                if json {
                    reports.push(json!({"source": source.to_string(), "status": "failed", "error": e.to_string()}));
                }
            }
        }
    }
    if json {
        let doc = json!({"dest": router.dest().uri(), "ok": !failed, "sources": reports});
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn run_command(
    common: &Common,
    queue_url: String,
    out: &str,
    drain: bool,
) -> Result<ExitCode, UsageError> {
    let config = load_config(common)?;
    let dest = location(out, "--out")?;
    match crate::service::run(&config, queue_url, &dest, drain, shutdown_signal()).await {
        Ok(stats) => {
            let failed = RunStats::get(&stats.messages_failed);
            tracing::info!(
                received = RunStats::get(&stats.messages_received),
                deleted = RunStats::get(&stats.messages_deleted),
                failed,
                unknown = RunStats::get(&stats.messages_unknown),
                objects = RunStats::get(&stats.objects_done),
                "router stopped"
            );
            Ok(if drain && failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(e) => {
            eprintln!("router: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
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

/// One line per source for people: counts, types, reasons, the manifest.
pub fn summary_line(
    m: &Manifest,
    manifest_key: &str,
    first_errors: &BTreeMap<String, FirstError>,
) -> String {
    let l = m.lines;
    let mut s = format!(
        "{}: {} lines: {} routed to {} types, {} quarantined, {} blank",
        m.source.uri,
        l.read,
        l.routed,
        m.types.len(),
        l.quarantined,
        l.blank
    );
    if !m.quarantine.by_reason.is_empty() {
        let reasons: Vec<String> = m
            .quarantine
            .by_reason
            .iter()
            .map(|(r, n)| match first_errors.get(r) {
                Some(f) => format!("{r} {n} (first at line {}: {})", f.line, f.error),
                None => format!("{r} {n}"),
            })
            .collect();
        s.push_str(&format!(" [{}]", reasons.join("; ")));
    }
    if let Some(d) = &m.damage {
        s.push_str(&format!(
            "; DAMAGED at byte {} of the object (line {}): {}; lines before it were routed",
            d.raw_offset, d.line, d.error
        ));
    }
    s.push_str(&format!("; manifest {manifest_key}"));
    s
}

fn json_report(m: &Manifest, manifest_key: &str) -> serde_json::Value {
    let routed: BTreeMap<&str, u64> = m.types.iter().map(|(t, o)| (t.as_str(), o.lines)).collect();
    let outputs: Vec<&str> = m.output_keys().collect();
    json!({
        "source": m.source.uri,
        "status": if m.damage.is_some() { "damaged" } else { "routed" },
        "lines_read": m.lines.read,
        "lines_routed": m.lines.routed,
        "lines_quarantined": m.lines.quarantined,
        "lines_blank": m.lines.blank,
        "routed": routed,
        "quarantined": m.quarantine.by_reason,
        "outputs": outputs,
        "manifest": manifest_key,
        "damage": m.damage,
    })
}
