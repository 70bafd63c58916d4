//! The `loader` command line. Exit codes: 0 success, 1 a file failed to load
//! (or, for `run --drain`, a message failed; for `migrate`, a migration
//! failed or changed), 2 a usage or configuration error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use logrouter::aws::AwsClients;
use logrouter::config::Config;
use logrouter::location::Location;
use logrouter::process::shutdown_signal;
use logrouter::queue::RunStats;

use crate::load::{Loader, Mode};
use crate::migrate::migrate;
use crate::reject::{recover_command, REJECTS_TABLE};
use crate::schema::diff::{describe, write_migrations};
use crate::schema::load_dir;
use crate::schema::{infer, qualified};
use crate::source::Discovery;
use crate::verify::verify;
use crate::warehouse::{Warehouse, WarehouseUrl};
use logrouter::layout::{key_time, parse_time};
use logrouter::normalize::validate_name;

#[derive(Parser, Debug)]
#[command(
    name = "loader",
    version,
    about = "Load the router's per-type files into one warehouse table per event type, exactly once"
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
    /// sqlite:PATH or postgres://user@host:port/db (default: load.warehouse).
    #[arg(long, global = true)]
    pub warehouse: Option<String>,
    /// Folder of <event_type>.json schemas (default: load.schemas_dir).
    #[arg(long, global = true)]
    pub schemas: Option<PathBuf>,
    /// Log lines as `text` (default) or `json` (one object per line).
    #[arg(long, global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load every routed file under the sources that the ledger lacks.
    Load {
        #[command(flatten)]
        common: Common,
        /// Router output roots (a folder or s3://bucket/prefix), manifests,
        /// or single routed files.
        #[arg(required = true)]
        sources: Vec<String>,
    },
    /// Long-poll SQS for notifications of routed files and load each.
    Run {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        queue_url: String,
        /// Exit once a long poll found the queue empty and nothing is in flight.
        #[arg(long)]
        drain: bool,
        /// Serve /metrics, /healthz and /livez on IP:PORT (default: off).
        #[arg(long)]
        metrics_addr: Option<String>,
    },
    /// Serve AWS Lambda invocations from an SQS event source mapping (the
    /// default when AWS_LAMBDA_RUNTIME_API is set and no command is given);
    /// the warehouse comes from load.warehouse (LOGROUTER_LOAD__WAREHOUSE).
    Lambda {
        #[command(flatten)]
        common: Common,
    },
    /// Exit 0 if the endpoint of a running `loader run --metrics-addr`
    /// answers 200 (a container health check), else 1.
    Healthcheck(logrouter::process::HealthcheckArgs),
    /// Check that the rows of every routed file under the sources match its
    /// manifest (ledger and table); exit 1 on any mismatch.
    Verify {
        #[command(flatten)]
        common: Common,
        #[arg(required = true)]
        sources: Vec<String>,
    },
    /// Apply pending migrations from <migrations>/<dialect>/ in order.
    Migrate {
        #[command(flatten)]
        common: Common,
        /// Migrations folder (default: load.migrations_dir).
        #[arg(long)]
        migrations: Option<PathBuf>,
    },
    /// Reload files of one table loaded under an earlier version of its
    /// schema (after a migration added columns): each file's rows and
    /// rejects are replaced in one transaction, so its rejects are retried.
    Reload {
        #[command(flatten)]
        common: Common,
        /// The table (normalised event type) to reload.
        #[arg(long)]
        table: String,
        /// Only files of hours from this time on (2015-01-20T13, 2015-01-20
        /// or RFC 3339, UTC), by their dt=/hour= folders.
        #[arg(long)]
        from: Option<String>,
        /// Only files of hours before this time.
        #[arg(long)]
        to: Option<String>,
        /// Router output roots, manifests or routed files, as for `load`.
        #[arg(required = true)]
        sources: Vec<String>,
    },
    /// List rejected lines (those kept in _logrouter_rejects instead of
    /// their table), each with the command that prints it from its routed
    /// file, byte for byte.
    Rejects {
        #[command(flatten)]
        common: Common,
        /// Only this table's rejects.
        #[arg(long)]
        table: Option<String>,
        /// At most this many (the totals count them all).
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Schema work: infer schemas from routed data, changes → migrations.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Run one SQL query and print its rows, tab-separated.
    Query {
        #[command(flatten)]
        common: Common,
        sql: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SchemaCommand {
    /// Write schemas/<type>.json for each type of the routed files that has
    /// none (types, formats, required fields, nested objects), never
    /// overwriting one; --update adds the fields the data has and an
    /// existing schema lacks, as optional properties.
    Infer {
        #[command(flatten)]
        common: Common,
        /// Only these (normalised) types, comma-separated.
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// Lines read per type (0: every line).
        #[arg(long, default_value_t = 100_000)]
        sample_lines: u64,
        /// Also add newly seen fields to existing schemas (additive only).
        #[arg(long)]
        update: bool,
        /// Print what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Router output roots, manifests or routed files, as for `load`.
        #[arg(required = true)]
        sources: Vec<String>,
    },
    /// Compare schemas/ with what the migrations built
    /// (migrations/schemas.lock.json) and write the additive changes as new
    /// migrations for every dialect; breaking changes are refused.
    Diff {
        #[command(flatten)]
        common: Common,
        /// Migrations folder (default: load.migrations_dir).
        #[arg(long)]
        migrations: Option<PathBuf>,
        /// Description in the new files' names (NNNN_<name>.sql).
        #[arg(long, default_value = "schema_changes")]
        name: String,
        /// Write nothing; exit 1 if schemas/ has changes without migrations.
        #[arg(long)]
        check: bool,
    },
}

struct UsageError(String);

pub fn main() -> ExitCode {
    logrouter::process::mark_start();
    let cli = if logrouter::process::lambda_by_default() {
        Cli {
            command: Command::Lambda {
                common: Common::default(),
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
        Command::Load { common, sources } => load_command(&common, &sources).await,
        Command::Run {
            common,
            queue_url,
            drain,
            metrics_addr,
        } => run_command(&common, queue_url, drain, metrics_addr.as_deref()).await,
        Command::Lambda { common } => lambda_command(&common).await,
        Command::Healthcheck(args) => Ok(logrouter::process::healthcheck(&args).await),
        Command::Migrate { common, migrations } => migrate_command(&common, migrations).await,
        Command::Verify { common, sources } => verify_command(&common, &sources).await,
        Command::Query { common, sql } => query_command(&common, &sql).await,
        Command::Reload {
            common,
            table,
            from,
            to,
            sources,
        } => reload_command(&common, &table, from.as_deref(), to.as_deref(), &sources).await,
        Command::Rejects {
            common,
            table,
            limit,
        } => rejects_command(&common, table.as_deref(), limit).await,
        Command::Schema(SchemaCommand::Infer {
            common,
            types,
            sample_lines,
            update,
            dry_run,
            sources,
        }) => schema_infer_command(&common, &types, sample_lines, update, dry_run, &sources).await,
        Command::Schema(SchemaCommand::Diff {
            common,
            migrations,
            name,
            check,
        }) => schema_diff_command(&common, migrations, &name, check),
    };
    match result {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("loader: {message}");
            ExitCode::from(2)
        }
    }
}

/// Loads and validates the configuration, flags over file and environment,
/// then starts logging in the format it asks for.
fn load_config(common: &Common, metrics_addr: Option<&str>) -> Result<Config, UsageError> {
    let mut config =
        Config::load(common.config.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    logrouter::process::finish_config(&mut config, common.log_format.as_deref(), metrics_addr)
        .map_err(UsageError)?;
    Ok(config)
}

fn warehouse_url(common: &Common, config: &Config) -> Result<WarehouseUrl, UsageError> {
    let text = common
        .warehouse
        .clone()
        .or_else(|| config.load.warehouse.clone())
        .ok_or_else(|| {
            UsageError("no warehouse: pass --warehouse sqlite:PATH (or postgres://…), or set load.warehouse in the config".into())
        })?;
    WarehouseUrl::parse(&text).map_err(|e| UsageError(format!("--warehouse: {e}")))
}

fn loader(common: &Common, config: &Config) -> Result<Arc<Loader>, UsageError> {
    let url = warehouse_url(common, config)?;
    let dir = common
        .schemas
        .clone()
        .unwrap_or_else(|| config.load.schemas_dir.clone());
    let schemas = if dir.is_dir() {
        load_dir(&dir).map_err(|e| UsageError(e.to_string()))?
    } else if common.schemas.is_some() {
        return Err(UsageError(format!(
            "--schemas {}: no such folder",
            dir.display()
        )));
    } else {
        tracing::warn!(dir = %dir.display(), "no schemas folder: every type loads into one JSON column");
        Default::default()
    };
    Ok(Arc::new(Loader {
        url,
        db_schema: config.load.db_schema.clone(),
        schemas,
        clients: Arc::new(AwsClients::new(config.aws.clone())),
        files_in_flight: config.load.files_in_flight,
        statement_timeout: std::time::Duration::from_secs(config.load.statement_timeout_secs),
        max_rejects_per_file: config.load.max_rejects_per_file,
        redshift_files_per_batch: config.load.redshift_files_per_batch,
        redshift_concurrency: config.load.redshift_concurrency,
    }))
}

async fn connect(loader: &Loader) -> Result<Warehouse, UsageError> {
    loader
        .connect()
        .await
        .map_err(|e| UsageError(e.to_string()))
}

/// The routed files the command-line sources name (`Err(exit code)` after
/// reporting a failure).
async fn discover(
    loader: &Loader,
    sources: &[String],
) -> Result<Result<Discovery, ExitCode>, UsageError> {
    discover_with(&loader.clients, sources).await
}

async fn discover_with(
    clients: &AwsClients,
    sources: &[String],
) -> Result<Result<Discovery, ExitCode>, UsageError> {
    let sources = sources
        .iter()
        .map(|s| Location::parse(s).map_err(|e| UsageError(format!("source: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let s3 = if sources.iter().any(|s| matches!(s, Location::S3 { .. })) {
        Some(clients.s3().await)
    } else {
        None
    };
    Ok(match crate::source::discover(&sources, s3.as_ref()).await {
        Ok(f) => Ok(f),
        Err(e) => {
            eprintln!("loader: {e}");
            Err(ExitCode::from(1))
        }
    })
}

async fn load_command(common: &Common, sources: &[String]) -> Result<ExitCode, UsageError> {
    let config = load_config(common, None)?;
    let loader = loader(common, &config)?;
    let discovery = match discover(&loader, sources).await? {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    load_and_report(&loader, discovery, Mode::Load).await
}

/// Loads (or reloads) what `discovery` found and prints the summary.
async fn load_and_report(
    loader: &Arc<Loader>,
    discovery: Discovery,
    mode: Mode,
) -> Result<ExitCode, UsageError> {
    let mut w = connect(loader).await?;
    let summary = match loader.load_all(discovery, mode).await {
        Ok(s) => s,
        Err(e) => return Err(UsageError(e.to_string())),
    };
    let t = summary.totals();
    let failed: Vec<_> = summary.failed().collect();
    logrouter::say!(
        "{} {} files ({} rows), {} already loaded, {} replaced an earlier version, {} failed, {} lines rejected",
        if mode == Mode::Reload { "reloaded" } else { "loaded" },
        t.files,
        t.rows,
        t.already,
        t.replaced,
        failed.len(),
        t.rejects
    );
    let this_run = summary.rows_by_table();
    match w.table_counts(&loader.db_schema).await {
        Ok(counts) => {
            logrouter::say!(
                "{:<28} {:>12} {:>12} {:>10} {:>8}",
                "table",
                "rows now",
                "this run",
                "rejected",
                "files"
            );
            for c in counts {
                logrouter::say!(
                    "{:<28} {:>12} {:>12} {:>10} {:>8}",
                    c.table,
                    c.rows,
                    this_run.get(c.table.as_str()).copied().unwrap_or(0),
                    c.rejects,
                    c.files
                );
            }
        }
        Err(e) => eprintln!("loader: counting rows: {e}"),
    }
    let rejects = summary.rejects_by_table();
    if !rejects.is_empty() {
        logrouter::say!("lines rejected by this run (kept in {REJECTS_TABLE}; `loader rejects --table T` lists each with the command that recovers it):");
        for (table, r) in &rejects {
            let reasons: Vec<String> = r
                .by_reason
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            logrouter::say!("  {table}: {} ({})", r.total, reasons.join(", "));
            if let Some(first) = &r.first {
                logrouter::say!("    first: {first}");
            }
        }
    }
    let drift = summary.drift_by_table();
    if !drift.is_empty() {
        logrouter::say!("fields in the data that the schemas do not have (not loaded; `loader schema infer --update` adds them):");
        for (table, d) in &drift {
            logrouter::say!("  {table}: {}", d.describe());
        }
    }
    if !summary.forgotten.is_empty() {
        logrouter::say!(
            "removed the rows of {} files of earlier routes that their manifests no longer name ({} rows)",
            summary.forgotten.len(),
            summary.forgotten.iter().map(|(_, n)| n).sum::<u64>()
        );
    }
    for f in &failed {
        if let Err(e) = &f.outcome {
            eprintln!("loader: not loaded: {e}");
        }
    }
    for e in &summary.errors {
        eprintln!("loader: {e}");
    }
    Ok(if summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn reload_command(
    common: &Common,
    table: &str,
    from: Option<&str>,
    to: Option<&str>,
    sources: &[String],
) -> Result<ExitCode, UsageError> {
    validate_name(table).map_err(|e| UsageError(format!("--table {table:?} {}", e.rule)))?;
    let time = |flag: &str, t: Option<&str>| {
        t.map(|t| parse_time(t).map_err(|e| UsageError(format!("{flag}: {e}"))))
            .transpose()
    };
    let (from, to) = (time("--from", from)?, time("--to", to)?);
    let config = load_config(common, None)?;
    let loader = loader(common, &config)?;
    let mut discovery = match discover(&loader, sources).await? {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let hour_patterns = ["dt=%Y-%m-%d/hour=%H".to_owned()];
    discovery.files.retain(|f| {
        if f.table != table {
            return false;
        }
        if from.is_none() && to.is_none() {
            return true;
        }
        // Undated files have no hour: outside any window.
        key_time(&f.uri, &hour_patterns)
            .is_some_and(|t| from.is_none_or(|a| t >= a) && to.is_none_or(|b| t < b))
    });
    // Only these files: rows of other files are not the reload's business.
    discovery.complete.clear();
    if discovery.files.is_empty() {
        logrouter::say!("no routed files of table {table} under the sources in that window");
        return Ok(ExitCode::SUCCESS);
    }
    load_and_report(&loader, discovery, Mode::Reload).await
}

async fn rejects_command(
    common: &Common,
    table: Option<&str>,
    limit: u64,
) -> Result<ExitCode, UsageError> {
    if let Some(t) = table {
        validate_name(t).map_err(|e| UsageError(format!("--table {t:?} {}", e.rule)))?;
    }
    let config = load_config(common, None)?;
    let loader = loader(common, &config)?;
    let mut w = connect(&loader).await?;
    let name = qualified(REJECTS_TABLE, w.dialect(), &loader.db_schema);
    let filter = table
        .map(|t| format!(" WHERE table_name = '{t}'"))
        .unwrap_or_default();
    let listed = w
        .query_text(&format!(
            "SELECT table_name, file, line, column_name, reason, message, excerpt FROM {name}{filter} ORDER BY table_name, file, line LIMIT {limit}"
        ))
        .await;
    let totals = w
        .query_text(&format!(
            "SELECT table_name, reason, count(*) FROM {name}{filter} GROUP BY table_name, reason ORDER BY table_name, reason"
        ))
        .await;
    let (listed, totals) = match (listed, totals) {
        (Ok(l), Ok(t)) => (l, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("loader: reading {REJECTS_TABLE}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for r in &listed {
        let line: u64 = r[2].parse().unwrap_or(0);
        let column = match r[3].as_str() {
            "NULL" | "" => String::new(),
            c => format!(" column {}", c.trim()),
        };
        logrouter::say!(
            "{} {} line {line}{column}: {} ({})",
            r[0],
            r[1],
            r[5].trim(),
            r[4].trim()
        );
        logrouter::say!("  excerpt: {}", r[6]);
        logrouter::say!("  recover: {}", recover_command(&r[1], line));
    }
    let total: u64 = totals
        .iter()
        .map(|r| r[2].parse::<u64>().unwrap_or(0))
        .sum();
    if total == 0 {
        logrouter::say!(
            "no rejected lines{}",
            table.map(|t| format!(" in {t}")).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    logrouter::say!("{total} rejected lines ({} listed):", listed.len());
    for r in &totals {
        logrouter::say!("  {:<28} {:<18} {:>10}", r[0], r[1], r[2]);
    }
    logrouter::say!("A reject is retried by `loader reload --table T SOURCE…` once a schema change lets it fit.");
    Ok(ExitCode::SUCCESS)
}

async fn schema_infer_command(
    common: &Common,
    types: &[String],
    sample_lines: u64,
    update: bool,
    dry_run: bool,
    sources: &[String],
) -> Result<ExitCode, UsageError> {
    for t in types {
        validate_name(t).map_err(|e| UsageError(format!("--types: {t:?} {}", e.rule)))?;
    }
    let config = load_config(common, None)?;
    let dir = common
        .schemas
        .clone()
        .unwrap_or_else(|| config.load.schemas_dir.clone());
    // Discovery needs no warehouse: only the sources and AWS clients.
    let clients = Arc::new(AwsClients::new(config.aws.clone()));
    let discovery = match discover_with(&clients, sources).await? {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    for e in &discovery.errors {
        eprintln!("loader: {e}");
    }
    let existing = |t: &str| dir.join(format!("{t}.json")).exists();
    let wanted =
        |t: &str| (types.is_empty() || types.iter().any(|x| x == t)) && (update || !existing(t));
    let started = std::time::Instant::now();
    let sample = infer::sample(&discovery.files, wanted, sample_lines, &clients).await;
    let secs = started.elapsed().as_secs_f64();
    let mut failed = !discovery.errors.is_empty();
    for (file, e) in &sample.errors {
        eprintln!("loader: {file}: {e}");
        failed = true;
    }
    let mut kept: Vec<String> = Vec::new();
    for t in discovery
        .files
        .iter()
        .map(|f| f.table.as_str())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if existing(t) && !update && (types.is_empty() || types.iter().any(|x| x == t)) {
            kept.push(t.to_owned());
        }
    }
    let verb = if dry_run { "would write" } else { "wrote" };
    for outcome in infer::write_schemas(&dir, &sample, update, dry_run) {
        match outcome {
            infer::Outcome::Written {
                path,
                inferred,
                lines,
                files,
            } => {
                logrouter::say!(
                    "{verb} {} ({} columns, from {lines} lines of {files} files):",
                    path.display(),
                    inferred.schema.columns.len()
                );
                for c in &inferred.schema.columns {
                    logrouter::say!(
                        "  {:<40} {:<12} {}",
                        c.name,
                        c.ty.token(),
                        if c.nullable { "" } else { "required" }
                    );
                }
                for l in &inferred.left_out {
                    logrouter::say!("  left out {}: {}", l.pointer, l.why);
                }
            }
            infer::Outcome::Updated {
                path,
                added,
                left_out,
            } => {
                logrouter::say!(
                    "{} {}: {} new optional properties",
                    if dry_run { "would update" } else { "updated" },
                    path.display(),
                    added.len()
                );
                for a in &added {
                    logrouter::say!("  + {:<38} {}", a.pointer, a.columns.join(", "));
                }
                for l in &left_out {
                    logrouter::say!("  left out {}: {}", l.pointer, l.why);
                }
            }
            infer::Outcome::Kept { path, why } => logrouter::say!("kept {}: {why}", path.display()),
            infer::Outcome::Failed { table, error } => {
                eprintln!("loader: {table}: {error}");
                failed = true;
            }
        }
    }
    for t in kept {
        logrouter::say!(
            "kept {}: exists (`--update` adds the fields the data has and it lacks)",
            dir.join(format!("{t}.json")).display()
        );
    }
    let mb = sample.bytes as f64 / 1e6;
    logrouter::say!(
        "read {mb:.1} MB of routed lines in {secs:.1} s ({:.0} MB/s); next: review the files, then `loader schema diff --name <what_changed>` and `loader migrate`",
        if secs > 0.0 { mb / secs } else { 0.0 }
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn verify_command(common: &Common, sources: &[String]) -> Result<ExitCode, UsageError> {
    let config = load_config(common, None)?;
    let loader = loader(common, &config)?;
    let discovery = match discover(&loader, sources).await? {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    for e in &discovery.errors {
        eprintln!("loader: {e}");
    }
    let mut w = connect(&loader).await?;
    let report = async {
        let versions = loader.current_versions(&discovery.files).await?;
        verify(&mut w, &loader.db_schema, &discovery, &versions).await
    }
    .await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loader: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for m in &report.mismatches {
        logrouter::say!("MISMATCH {}: {}", m.file, m.problem);
    }
    for (t, n) in &report.by_table {
        logrouter::say!("  {t:<28} {n:>12} lines in the manifests");
    }
    logrouter::say!(
        "verified {} files ({} lines in their manifests = {} rows + {} rejects): {}",
        report.files,
        report.lines,
        report.rows,
        report.rejects,
        if report.mismatches.is_empty() {
            "every file's rows match its manifest".to_owned()
        } else {
            format!("{} files do not match", report.mismatches.len())
        }
    );
    Ok(
        if report.mismatches.is_empty() && discovery.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

async fn run_command(
    common: &Common,
    queue_url: String,
    drain: bool,
    metrics_addr: Option<&str>,
) -> Result<ExitCode, UsageError> {
    let config = load_config(common, metrics_addr)?;
    let loader = loader(common, &config)?;
    match crate::service::run(&config, loader, queue_url, drain, shutdown_signal()).await {
        Ok(stats) => {
            let failed = RunStats::get(&stats.messages_failed);
            tracing::info!(
                received = RunStats::get(&stats.messages_received),
                deleted = RunStats::get(&stats.messages_deleted),
                failed,
                unknown = RunStats::get(&stats.messages_unknown),
                objects = RunStats::get(&stats.objects_done),
                "loader stopped"
            );
            Ok(if drain && failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(e) => {
            eprintln!("loader: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `loader lambda`: see [`logrouter::process::lambda_main`]. The
/// warehouse is connected to on the first invocation, not at start-up: an
/// outage then fails (and retries) messages, not the sandbox.
async fn lambda_command(common: &Common) -> Result<ExitCode, UsageError> {
    logrouter::process::lambda_main(
        "loader",
        || {
            let config = load_config(common, None).map_err(|UsageError(m)| m)?;
            let loader = loader(common, &config).map_err(|UsageError(m)| m)?;
            Ok((config, loader))
        },
        |config, loader, api| async move {
            crate::service::lambda(&config, loader, api, shutdown_signal()).await
        },
    )
    .await
    .map_err(UsageError)
}

async fn migrate_command(common: &Common, dir: Option<PathBuf>) -> Result<ExitCode, UsageError> {
    let config = load_config(common, None)?;
    let dir = dir.unwrap_or_else(|| config.load.migrations_dir.clone());
    let mut w = connect(&*loader(common, &config)?).await?;
    match migrate(&mut w, &dir).await {
        Ok(r) => {
            logrouter::say!(
                "{} migrations applied{}, {} were already applied",
                r.applied.len(),
                if r.applied.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.applied.join(", "))
                },
                r.already
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("loader: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn query_command(common: &Common, sql: &str) -> Result<ExitCode, UsageError> {
    let config = load_config(common, None)?;
    let mut w = connect(&*loader(common, &config)?).await?;
    match w.query_text(sql).await {
        Ok(rows) => {
            for r in rows {
                logrouter::say!("{}", r.join("\t"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("loader: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn schema_diff_command(
    common: &Common,
    migrations: Option<PathBuf>,
    name: &str,
    check: bool,
) -> Result<ExitCode, UsageError> {
    let config = load_config(common, None)?;
    let dir = common
        .schemas
        .clone()
        .unwrap_or_else(|| config.load.schemas_dir.clone());
    let schemas = load_dir(&dir).map_err(|e| UsageError(e.to_string()))?;
    let migrations = migrations.unwrap_or_else(|| config.load.migrations_dir.clone());
    match write_migrations(&schemas, &migrations, name, check) {
        Ok(r) if r.changes.is_empty() => {
            logrouter::say!(
                "no changes: the schemas in {} match what the migrations build",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(r) => {
            for c in &r.changes {
                logrouter::say!("  {}", describe(c));
            }
            if check {
                logrouter::say!(
                    "{} changes in {} have no migration: run `loader schema diff --name <what_changed>` and review the new files",
                    r.changes.len(),
                    dir.display()
                );
                return Ok(ExitCode::from(1));
            }
            logrouter::say!("wrote:");
            for f in &r.files {
                logrouter::say!("  {}", f.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("loader: schema diff refused:\n{e}");
            Ok(ExitCode::from(1))
        }
    }
}
