//! The `router` command line. Exit codes: 0 success, 1 a source could not be
//! read or was damaged (or, for `run --drain`, a message failed), 2 a usage
//! or configuration error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use logrouter::aws::AwsClients;
use logrouter::config::{Config, LineFormat};
use logrouter::location::Location;
use logrouter::manifest::Manifest;
use logrouter::process::shutdown_signal;
use logrouter::queue::RunStats;
use serde_json::json;

use crate::route::{RouteOutcome, Router};
use crate::summary::summary_line;

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

#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// TOML configuration file (see logrouter.example.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// JSON pointer to the event type in each line (default /event_type);
    /// with --format other than json, into the object each line becomes
    /// (e.g. /operation for S3 access logs).
    #[arg(long, global = true)]
    pub type_field: Option<String>,
    /// Line format of the sources: json (default), cloudfront, s3_access,
    /// alb, or auto (cloudfront when an object starts with `#Version:`).
    #[arg(long, global = true, value_parser = LineFormat::ALL.map(|(name, _)| name))]
    pub format: Option<String>,
    /// Regular expression applied to the type field's value: its first
    /// capture group is the event type.
    #[arg(long, global = true)]
    pub type_pattern: Option<String>,
    /// One fixed event type for every line of the sources.
    #[arg(long = "type", global = true)]
    pub fixed_type: Option<String>,
    /// Log lines as `text` (default) or `json` (one object per line).
    #[arg(long, global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
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
    /// Reprocess a time window of an S3 archive: route it here, or enqueue
    /// one notification per object for the `router run` fleet.
    Backfill(BackfillArgs),
    /// Long-poll SQS for S3 notifications and route each new object.
    Run {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        queue_url: String,
        /// Destination: a local folder or s3://bucket/prefix (default:
        /// route.out of the configuration).
        #[arg(long)]
        out: Option<String>,
        /// Exit once a long poll found the queue empty and nothing is in flight.
        #[arg(long)]
        drain: bool,
        /// Serve /metrics, /healthz and /livez on IP:PORT (default: off).
        #[arg(long)]
        metrics_addr: Option<String>,
    },
    /// Serve AWS Lambda invocations from an SQS event source mapping (the
    /// default when AWS_LAMBDA_RUNTIME_API is set and no command is given).
    Lambda {
        #[command(flatten)]
        common: Common,
        /// Destination (default: route.out, e.g. LOGROUTER_ROUTE__OUT).
        #[arg(long)]
        out: Option<String>,
    },
    /// Exit 0 if the endpoint of a running `router run --metrics-addr`
    /// answers 200 (a container health check), else 1.
    Healthcheck(logrouter::process::HealthcheckArgs),
}

#[derive(Args, Debug)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub common: Common,
    /// The archive: s3://bucket/prefix.
    #[arg(long)]
    pub source: String,
    /// Start of the window, inclusive: 2015-01-20T00 (UTC hour), 2015-01-20, or RFC 3339.
    #[arg(long)]
    pub from: String,
    /// End of the window, exclusive.
    #[arg(long)]
    pub to: String,
    /// Route here: a local folder or s3://bucket/prefix; `-` writes the
    /// selected lines (routed JSON lines, in key-time order) to stdout, with
    /// no parts, quarantine or manifest, and the summary on stderr.
    #[arg(long, required_unless_present_any = ["enqueue", "dry_run"])]
    pub out: Option<String>,
    /// Instead of routing here, send one S3 event message per object to this
    /// queue (the router fleet's), so every `router run` worker shares the work.
    #[arg(long, conflicts_with = "out")]
    pub enqueue: Option<String>,
    /// Objects routed at once (with `--out -`, one at a time, in order).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Route objects again even when their manifest records the same ETag
    /// (with --enqueue, the messages ask the workers to).
    #[arg(long)]
    pub force: bool,
    /// List what would be routed, then stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Selective replay: only these (normalised) event types, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub types: Option<Vec<String>>,
    /// Selective replay: only lines containing this text.
    #[arg(long = "match")]
    pub match_text: Option<String>,
    /// Selective replay: only lines matching this regular expression.
    #[arg(long, conflicts_with = "match_text")]
    pub match_regex: Option<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A usage or configuration error: exit code 2.
#[derive(Debug)]
struct UsageError(String);

/// Loads and validates the configuration, flags over file and environment,
/// then starts logging in the format it asks for.
fn load_config(common: &Common, metrics_addr: Option<&str>) -> Result<Config, UsageError> {
    let mut config =
        Config::load(common.config.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    if let Some(t) = &common.type_field {
        config.route.type_field = t.clone();
    }
    if let Some(f) = &common.format {
        config.route.format = logrouter::config::LineFormat::parse(f).map_err(UsageError)?;
    }
    // A flag stands for the file's whole way of typing: `--type` over a
    // file's `type_pattern` (or the reverse) replaces it rather than making
    // a conflict the user did not write. Both flags at once still conflict.
    if let Some(p) = &common.type_pattern {
        config.route.type_pattern = Some(p.clone());
        if common.fixed_type.is_none() {
            config.route.fixed_type = None;
        }
    }
    if let Some(t) = &common.fixed_type {
        config.route.fixed_type = Some(t.clone());
        if common.type_pattern.is_none() {
            config.route.type_pattern = None;
        }
    }
    logrouter::process::finish_config(&mut config, common.log_format.as_deref(), metrics_addr)
        .map_err(UsageError)?;
    Ok(config)
}

fn location(text: &str, what: &str) -> Result<Location, UsageError> {
    Location::parse(text).map_err(|e| UsageError(format!("{what}: {e}")))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    logrouter::process::mark_start();
    let cli = if logrouter::process::lambda_by_default() {
        Cli {
            command: Command::Lambda {
                common: Common::default(),
                out: None,
            },
        }
    } else {
        Cli::parse()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(execute(cli))
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
            metrics_addr,
        } => {
            run_command(
                &common,
                queue_url,
                out.as_deref(),
                drain,
                metrics_addr.as_deref(),
            )
            .await
        }
        Command::Lambda { common, out } => lambda_command(&common, out.as_deref()).await,
        Command::Healthcheck(args) => Ok(logrouter::process::healthcheck(&args).await),
        Command::Backfill(args) => backfill_command(args).await,
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
    let config = load_config(common, None)?;
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
                    logrouter::say!("{}", summary_line(&manifest, &manifest_key, &first_errors));
                }
            }
            Ok(RouteOutcome::AlreadyRouted {
                uri, manifest_key, ..
            }) => {
                if !json {
                    logrouter::say!("{uri}: already routed ({manifest_key})");
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
        logrouter::say!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The destination: `--out`, else `route.out`.
fn destination(out: Option<&str>, config: &Config) -> Result<Location, UsageError> {
    match out.or(config.route.out.as_deref()) {
        Some(out) => location(out, "--out (route.out)"),
        None => Err(UsageError(
            "no destination: give --out DEST, or route.out in the configuration (LOGROUTER_ROUTE__OUT=s3://bucket/prefix)".into(),
        )),
    }
}

async fn run_command(
    common: &Common,
    queue_url: String,
    out: Option<&str>,
    drain: bool,
    metrics_addr: Option<&str>,
) -> Result<ExitCode, UsageError> {
    let config = load_config(common, metrics_addr)?;
    let dest = destination(out, &config)?;
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

/// `router lambda`: see [`logrouter::process::lambda_main`].
async fn lambda_command(common: &Common, out: Option<&str>) -> Result<ExitCode, UsageError> {
    logrouter::process::lambda_main(
        "router",
        || {
            let config = load_config(common, None).map_err(|UsageError(m)| m)?;
            let dest = destination(out, &config).map_err(|UsageError(m)| m)?;
            Ok((config, dest))
        },
        |config, dest, api| async move {
            crate::service::lambda(&config, &dest, api, shutdown_signal()).await
        },
    )
    .await
    .map_err(UsageError)
}

async fn backfill_command(a: BackfillArgs) -> Result<ExitCode, UsageError> {
    use crate::backfill::{self, BackfillSummary};
    let config = load_config(&a.common, None)?;
    let from = backfill::parse_time(&a.from).map_err(|e| UsageError(format!("--from: {e}")))?;
    let to = backfill::parse_time(&a.to).map_err(|e| UsageError(format!("--to: {e}")))?;
    if from >= to {
        return Err(UsageError(format!(
            "--from {from} must be before --to {to}"
        )));
    }
    let Location::S3 {
        bucket,
        key: prefix,
    } = location(&a.source, "--source")?
    else {
        return Err(UsageError("--source must be s3://bucket/prefix".into()));
    };
    // One selection, one name: `--types b,a,a` is the same replay as `a,b`.
    let types = a.types.clone().map(|mut t| {
        t.sort();
        t.dedup();
        t
    });
    let filter = logrouter::manifest::RouteFilter {
        types,
        match_text: a.match_text.clone(),
        match_regex: a.match_regex.clone(),
    };
    let filtered = filter != logrouter::manifest::RouteFilter::default();
    if filtered && a.enqueue.is_some() {
        return Err(UsageError(
            "--types/--match/--match-regex select lines while routing here; --enqueue hands whole objects to the router fleet, which routes them in full".into(),
        ));
    }
    let clients = Arc::new(AwsClients::new(config.aws.clone()));
    let s3 = clients.s3().await;
    let started = std::time::Instant::now();
    let selection = match backfill::select(
        &s3,
        &bucket,
        &prefix,
        from,
        to,
        &config.route.key_time_patterns,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("router: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut summary = BackfillSummary {
        listed: selection.listed,
        selected: selection.selected.len() as u64,
        selected_bytes: selection.total_bytes(),
        time_from_last_modified: selection.time_from_last_modified,
        ..Default::default()
    };
    let first = selection.selected.first().map_or("-", |c| c.key.as_str());
    let last = selection.selected.last().map_or("-", |c| c.key.as_str());
    let header = format!(
        "{} [{from}, {to}): {} of {} objects selected, {} bytes ({} dated by LastModified); first {first}, last {last}",
        a.source, summary.selected, summary.listed, summary.selected_bytes, summary.time_from_last_modified
    );
    if a.dry_run {
        if a.json {
            let doc = json!({"dry_run": true, "summary": summary, "objects": selection.selected});
            logrouter::say!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        } else {
            logrouter::say!("{header}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !a.json {
        eprintln!("router: {header}");
    }
    if let Some(queue_url) = &a.enqueue {
        backfill::enqueue_all(
            &clients,
            queue_url,
            &bucket,
            &selection,
            a.force,
            &mut summary,
        )
        .await;
    } else if a.out.as_deref() == Some("-") {
        let piper =
            crate::pipe::Piper::new(&config, clients.clone(), &filter).map_err(UsageError)?;
        if let Err(e) = backfill::pipe_all(piper, &bucket, &selection, &mut summary).await {
            if e.is_closed_pipe() {
                // `… --out - | head`: the reader has what it wanted.
                eprintln!(
                    "router: standard output was closed by its reader after {} objects; stopping",
                    summary.routed
                );
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("router: --out -: {e}; stopping");
            return Ok(ExitCode::from(1));
        }
    } else {
        let dest = location(a.out.as_deref().expect("clap requires --out"), "--out")?;
        let router = Router::new(&config, &dest, clients.clone())
            .await
            .map_err(UsageError)?
            .with_filter(filter)
            .map_err(UsageError)?;
        backfill::route_all(
            router,
            &bucket,
            &selection,
            a.concurrency,
            a.force,
            &mut summary,
        )
        .await;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    // With `--out -`, standard output is the replay's: the summary goes to stderr.
    let print = |line: &str| {
        if a.out.as_deref() == Some("-") {
            eprintln!("{line}");
        } else {
            logrouter::say!("{line}");
        }
    };
    if a.json {
        print(&serde_json::to_string_pretty(&summary).expect("json"));
    } else {
        for line in backfill_summary(&summary, a.enqueue.is_some()) {
            print(&line);
        }
    }
    Ok(if summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn backfill_summary(s: &crate::backfill::BackfillSummary, enqueued: bool) -> Vec<String> {
    let mut out = Vec::new();
    if enqueued {
        out.push(format!(
            "enqueued {} messages for {} objects in {:.1} s",
            s.messages_sent, s.selected, s.seconds
        ));
    } else {
        out.push(format!(
            "routed {}, skipped {} (already routed), damaged {}, failed {} of {} objects ({} dated by LastModified) in {:.1} s",
            s.routed,
            s.skipped,
            s.damaged.len(),
            s.failed.len(),
            s.selected,
            s.time_from_last_modified,
            s.seconds
        ));
        let types: Vec<String> = s
            .lines_by_type
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let reasons: Vec<String> = s
            .quarantined_by_reason
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        out.push(format!(
            "lines read {}, filtered {}; per type: {}; quarantined: {}",
            s.lines_read,
            s.lines_filtered,
            if types.is_empty() {
                "-".to_owned()
            } else {
                types.join(", ")
            },
            if reasons.is_empty() {
                "-".to_owned()
            } else {
                reasons.join(", ")
            }
        ));
    }
    for f in s.damaged.iter().chain(&s.failed) {
        out.push(format!("FAILED {}: {}", f.key, f.error));
    }
    out
}

fn json_report(m: &Manifest, manifest_key: &str) -> serde_json::Value {
    let routed: BTreeMap<&str, u64> = m.types.iter().map(|(t, o)| (t.as_str(), o.lines)).collect();
    let outputs: Vec<&str> = m.output_keys().collect();
    json!({
        "source": m.source.object.uri,
        "status": if m.damage.is_some() { "damaged" } else { "routed" },
        "lines_read": m.lines.read,
        "lines_routed": m.lines.routed,
        "lines_quarantined": m.lines.quarantined,
        "lines_blank": m.lines.blank,
        "lines_filtered": m.lines.filtered,
        "routed": routed,
        "quarantined": m.quarantine.by_reason,
        "outputs": outputs,
        "manifest": manifest_key,
        "damage": m.damage,
    })
}
