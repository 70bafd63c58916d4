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

use crate::load::Loader;
use crate::migrate::migrate;
use crate::schema::diff::{describe, write_migrations};
use crate::schema::load_dir;
use crate::source::Discovery;
use crate::verify::verify;
use crate::warehouse::{Warehouse, WarehouseUrl};

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

#[derive(Args, Debug, Clone)]
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
    /// Schema changes → new migration files.
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
    let cli = Cli::parse();
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
        Command::Migrate { common, migrations } => migrate_command(&common, migrations).await,
        Command::Verify { common, sources } => verify_command(&common, &sources).await,
        Command::Query { common, sql } => query_command(&common, &sql).await,
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
    let sources = sources
        .iter()
        .map(|s| Location::parse(s).map_err(|e| UsageError(format!("source: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let s3 = if sources.iter().any(|s| matches!(s, Location::S3 { .. })) {
        Some(loader.clients.s3().await)
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
    let mut w = connect(&loader).await?;
    let summary = match loader.load_all(discovery).await {
        Ok(s) => s,
        Err(e) => return Err(UsageError(e.to_string())),
    };
    let (files, rows, already, replaced) = summary.totals();
    let failed: Vec<_> = summary.failed().collect();
    println!(
        "loaded {files} files ({rows} rows), {already} already loaded, {replaced} replaced an earlier version, {} failed",
        failed.len()
    );
    let this_run = summary.rows_by_table();
    match w.table_counts().await {
        Ok(counts) => {
            println!(
                "{:<28} {:>12} {:>12} {:>8}",
                "table", "rows now", "this run", "files"
            );
            for (t, n, f) in counts {
                println!(
                    "{t:<28} {n:>12} {:>12} {f:>8}",
                    this_run.get(t.as_str()).copied().unwrap_or(0)
                );
            }
        }
        Err(e) => eprintln!("loader: counting rows: {e}"),
    }
    if !summary.forgotten.is_empty() {
        println!(
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
        println!("MISMATCH {}: {}", m.file, m.problem);
    }
    for (t, n) in &report.by_table {
        println!("  {t:<28} {n:>12} lines in the manifests");
    }
    println!(
        "verified {} files ({} lines in their manifests): {}",
        report.files,
        report.rows,
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

async fn migrate_command(common: &Common, dir: Option<PathBuf>) -> Result<ExitCode, UsageError> {
    let config = load_config(common, None)?;
    let dir = dir.unwrap_or_else(|| config.load.migrations_dir.clone());
    let mut w = connect(&*loader(common, &config)?).await?;
    match migrate(&mut w, &dir).await {
        Ok(r) => {
            println!(
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
                println!("{}", r.join("\t"));
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
            println!(
                "no changes: the schemas in {} match what the migrations build",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(r) => {
            for c in &r.changes {
                println!("  {}", describe(c));
            }
            if check {
                println!(
                    "{} changes in {} have no migration: run `loader schema diff --name <what_changed>` and review the new files",
                    r.changes.len(),
                    dir.display()
                );
                return Ok(ExitCode::from(1));
            }
            println!("wrote:");
            for f in &r.files {
                println!("  {}", f.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("loader: schema diff refused:\n{e}");
            Ok(ExitCode::from(1))
        }
    }
}
