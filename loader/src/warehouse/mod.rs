//! The warehouses the loader writes to, behind one interface.
//!
//! Each backend keeps its own ledger table in the warehouse itself, so that
//! a file's rows and its ledger row commit in one transaction: after a crash
//! either both exist or neither does, and the next run loads exactly what
//! the ledger lacks. Each load takes a lock on the file first (an advisory
//! lock on PostgreSQL, the write lock on SQLite) and reads the ledger under
//! it, so two loaders racing on one file load it once.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::ops::ControlFlow;
use std::path::PathBuf;

use logrouter::json::{JsonProblem, MAX_JSON_DEPTH};

pub mod postgres;
pub mod redshift;
pub mod sqlite;

use crate::drift::Drift;
use crate::read::{for_each_line, RawLine, MAX_LINE_BYTES};
use crate::reject::{excerpt, Reject, RejectReason};
use crate::rows::{Cell, LineError, RowMaker};
use crate::schema::{Dialect, TableSchema};
use crate::source::RoutedFile;
use logrouter::aws::AwsClients;
use postgres::{PgTarget, PgWarehouse};
use redshift::{RedshiftTarget, RedshiftWarehouse};
use sqlite::SqliteWarehouse;
use std::time::Duration;

/// Table of loaded files: (file, version, table, rows, manifest, loaded_at,
/// routed_at).
pub const LEDGER_TABLE: &str = "_logrouter_ledger";
/// Table of applied migrations: (version, name, checksum, applied_at).
pub const MIGRATIONS_TABLE: &str = "_logrouter_migrations";

/// Columns the ledger gained after its first release, added to an existing
/// ledger when a loader connects: (name, type per dialect: SQLite,
/// PostgreSQL, Redshift).
pub const LEDGER_ADDED_COLUMNS: [(&str, [&str; 3]); 2] = [
    (
        "rejects",
        [
            "INTEGER NOT NULL DEFAULT 0",
            "BIGINT NOT NULL DEFAULT 0",
            "BIGINT NOT NULL DEFAULT 0",
        ],
    ),
    (
        "schema_version",
        [
            "TEXT NOT NULL DEFAULT ''",
            "TEXT NOT NULL DEFAULT ''",
            "VARCHAR(64) NOT NULL DEFAULT ''",
        ],
    ),
];

/// The ledger's columns, in the order the loader writes them.
pub const LEDGER_COLUMNS: &str =
    "file, version, table_name, rows, manifest, loaded_at, routed_at, rejects, schema_version";

/// The rejects table's columns, in the order the loader writes them.
pub const REJECTS_COLUMNS: &str =
    "file, version, line, table_name, column_name, reason, message, excerpt, rejected_at";

/// `CREATE TABLE IF NOT EXISTS` of the rejects table in `dialect`.
pub fn rejects_table_sql(dialect: Dialect, db_schema: &str) -> String {
    let name = crate::schema::qualified(crate::reject::REJECTS_TABLE, dialect, db_schema);
    let (text, big, ts, key) = match dialect {
        Dialect::Sqlite => ("TEXT", "INTEGER", "TEXT", ", PRIMARY KEY (file, line)"),
        Dialect::Postgres => ("TEXT", "BIGINT", "TIMESTAMP", ", PRIMARY KEY (file, line)"),
        // Lengths in bytes; an excerpt is at most 256 characters (+ '…').
        Dialect::Redshift => ("VARCHAR(1040)", "BIGINT", "TIMESTAMP", ""),
    };
    let (file, short) = match dialect {
        Dialect::Redshift => ("VARCHAR(4096)", "VARCHAR(256)"),
        _ => (text, text),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (file {file} NOT NULL, version {short} NOT NULL, line {big} NOT NULL, table_name {short} NOT NULL, column_name {short}, reason {short} NOT NULL, message {text} NOT NULL, excerpt {text} NOT NULL, rejected_at {ts} NOT NULL{key})"
    )
}

/// A `--warehouse` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseUrl {
    /// `sqlite:PATH`: the embedded default.
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/db` (or `postgresql://`, or a
    /// `host=… dbname=…` string after `postgres:`), with libpq's `sslmode`
    /// and `sslrootcert`.
    Postgres(Box<PgTarget>),
    /// `redshift://CLUSTER/DB?db_user=…&iam_role=…` or
    /// `redshift-serverless://WORKGROUP/DB?iam_role=…`, through the Data API.
    Redshift(RedshiftTarget),
}

impl WarehouseUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("sqlite: needs a file path, e.g. sqlite:logrouter.db".into());
            }
            return Ok(WarehouseUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return PgTarget::parse(text).map(|t| WarehouseUrl::Postgres(Box::new(t)));
        }
        if let Some(conninfo) = text.strip_prefix("postgres:") {
            return PgTarget::parse(conninfo).map(|t| WarehouseUrl::Postgres(Box::new(t)));
        }
        if text.starts_with("redshift") {
            return RedshiftTarget::parse(text).map(WarehouseUrl::Redshift);
        }
        Err(format!(
            "{text:?} is not a warehouse URL: write sqlite:PATH, postgres://user@host:port/db or redshift://CLUSTER/DB?db_user=USER&iam_role=ARN"
        ))
    }

    /// Whether files can be loaded in parallel (SQLite has one writer).
    pub fn parallel(&self) -> bool {
        !matches!(self, WarehouseUrl::Sqlite(_))
    }
}

/// What loading one file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded {
        rows: u64,
        /// Rows of an earlier version of the file that were replaced.
        replaced: Option<u64>,
        /// Lines recorded in the rejects table instead of the table.
        rejects: RejectSummary,
        /// Fields in the lines that the schema has no column for (not
        /// counted on Redshift, whose COPY reads the file itself).
        drift: Drift,
    },
    /// The ledger already has this version of the file (and, for a reload,
    /// loaded under the current schema).
    AlreadyLoaded,
}

/// A file's rejected lines, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectSummary {
    pub total: u64,
    pub by_reason: BTreeMap<RejectReason, u64>,
    /// The first reject, described (line, column, message, reason).
    pub first: Option<String>,
}

impl RejectSummary {
    pub fn of(rejects: &[Reject]) -> Self {
        let mut s = RejectSummary {
            total: rejects.len() as u64,
            first: rejects.first().map(|r| r.to_string()),
            ..Default::default()
        };
        for r in rejects {
            *s.by_reason.entry(r.reason).or_default() += 1;
        }
        s
    }
}

/// One file to load, and how.
#[derive(Debug, Clone)]
pub struct LoadJob {
    pub file: RoutedFile,
    pub table: TableSchema,
    /// [`TableSchema::version`] of `table`, recorded in the ledger.
    pub schema_version: String,
    /// Also replace the rows of this very version when the ledger has it
    /// loaded under another schema version (`loader reload`).
    pub reload: bool,
    /// More rejects than this fail the file (`load.max_rejects_per_file`).
    pub max_rejects: u64,
}

impl LoadJob {
    /// Whether the ledger's row for the file (`version`, `routed_at`,
    /// `schema_version`) means there is nothing to do.
    pub fn done(&self, version: &str, prev: &LedgerEntry) -> bool {
        // Rows of a newer route are never replaced by an older one.
        if prev.routed_at.as_str() > self.file.routed_at.as_str() {
            return true;
        }
        prev.version == version && (!self.reload || prev.schema_version == self.schema_version)
    }
}

/// What the ledger records of a loaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub version: String,
    pub routed_at: String,
    pub schema_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// More lines than `load.max_rejects_per_file` do not fit the table:
    /// the file is not loaded until the schema changes (or the limit).
    #[error("{file}: more than {limit} lines do not fit table {table} (load.max_rejects_per_file); nothing of the file was committed; first: {first}. Fix the schema (`loader schema infer --update`, `loader schema diff`, `loader migrate`) or raise the limit, then load again")]
    TooManyRejects {
        file: String,
        table: String,
        limit: u64,
        first: String,
    },
    #[error("{file}: loaded {loaded} rows and {rejects} rejects but its manifest says {expected} lines (the file changed under the loader, or it is not the file the manifest describes); nothing was committed")]
    Count {
        file: String,
        expected: u64,
        loaded: u64,
        rejects: u64,
    },
    #[error("{file}: reading failed: {message}")]
    Read { file: String, message: String },
    #[error("{0}")]
    Database(String),
}

impl From<crate::source::SourceError> for LoadError {
    fn from(e: crate::source::SourceError) -> Self {
        match e {
            crate::source::SourceError::Read { file, message } => LoadError::Read { file, message },
            crate::source::SourceError::Message(message) => LoadError::Read {
                file: String::new(),
                message,
            },
        }
    }
}

impl LoadError {
    /// Every value of [`LoadError::reason`].
    /// (`manifest`: `loader run` could not read a manifest yet.)
    pub const REASONS: [&'static str; 5] = [
        "too_many_rejects",
        "count_mismatch",
        "read",
        "database",
        "manifest",
    ];

    /// The metric label of the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            LoadError::TooManyRejects { .. } => "too_many_rejects",
            LoadError::Count { .. } => "count_mismatch",
            LoadError::Read { .. } => "read",
            LoadError::Database(_) => "database",
        }
    }

    /// Whether retrying cannot help: the data or the schema must change.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            LoadError::TooManyRejects { .. } | LoadError::Count { .. }
        )
    }

    /// A database error with what was being done.
    pub fn db(doing: &str, e: impl std::fmt::Display) -> Self {
        LoadError::Database(format!("{doing}: {e}"))
    }
}

/// One table's counts: rows in the table, files and rejects in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
    pub files: i64,
    pub rejects: i64,
}

/// A connection to one warehouse.
pub enum Warehouse {
    Sqlite(SqliteWarehouse),
    Postgres(Box<PgWarehouse>),
    Redshift(Box<RedshiftWarehouse>),
}

pub use crate::source::OpenedFile;

impl Warehouse {
    /// Connects and makes sure the ledger and migration tables exist.
    pub async fn connect(
        url: &WarehouseUrl,
        db_schema: &str,
        clients: &AwsClients,
        statement_timeout: Duration,
        redshift_files_per_batch: usize,
    ) -> Result<Self, LoadError> {
        let w = match url {
            WarehouseUrl::Redshift(target) => Warehouse::Redshift(Box::new(
                RedshiftWarehouse::connect(
                    target,
                    db_schema,
                    clients.sdk().await,
                    clients.s3().await,
                    statement_timeout,
                    redshift_files_per_batch,
                )
                .await?,
            )),
            WarehouseUrl::Sqlite(path) => {
                Warehouse::Sqlite(SqliteWarehouse::open(path.clone()).await?)
            }
            WarehouseUrl::Postgres(target) => {
                Warehouse::Postgres(Box::new(PgWarehouse::connect(target, db_schema).await?))
            }
        };
        Ok(w)
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Warehouse::Sqlite(_) => Dialect::Sqlite,
            Warehouse::Postgres(_) => Dialect::Postgres,
            Warehouse::Redshift(_) => Dialect::Redshift,
        }
    }

    /// Whether the connection is gone (a pooled one is then replaced).
    pub fn is_closed(&self) -> bool {
        match self {
            Warehouse::Sqlite(_) | Warehouse::Redshift(_) => false,
            Warehouse::Postgres(w) => w.is_closed(),
        }
    }

    /// Loads one file into `table` in one transaction with its ledger row,
    /// unless the ledger already has this version.
    pub async fn load_file(
        &mut self,
        job: &LoadJob,
        opened: OpenedFile,
    ) -> Result<LoadOutcome, LoadError> {
        match self {
            Warehouse::Sqlite(w) => w.load_file(job, opened).await,
            Warehouse::Postgres(w) => w.load_file(job, opened).await,
            // Redshift reads the file from S3 itself: only its version is
            // needed, and the stream is dropped unread.
            Warehouse::Redshift(w) => w
                .load_files(&[(job.clone(), opened.version)])
                .await
                .pop()
                .expect("one outcome per file"),
        }
    }

    /// Removes the rows and ledger entry of a file (one its manifest no
    /// longer names), in one transaction; returns the rows removed.
    pub async fn forget_file(&mut self, uri: &str, table: &str) -> Result<u64, LoadError> {
        match self {
            Warehouse::Sqlite(w) => w.forget_file(uri, table).await,
            Warehouse::Postgres(w) => w.forget_file(uri, table).await,
            Warehouse::Redshift(w) => w.forget_file(uri, table).await,
        }
    }

    /// Files the ledger records under each of `manifests` that the manifest
    /// no longer names (`keep`), read with one query: (file, table).
    pub async fn orphans_of(
        &mut self,
        db_schema: &str,
        manifests: &[(String, Vec<String>)],
    ) -> Result<Vec<(String, String)>, LoadError> {
        if manifests.is_empty() {
            return Ok(Vec::new());
        }
        let ledger = crate::schema::qualified(LEDGER_TABLE, self.dialect(), db_schema);
        let mut recorded: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in self
            .query_text(&format!("SELECT manifest, file, table_name FROM {ledger}"))
            .await?
        {
            recorded
                .entry(r[0].clone())
                .or_default()
                .push((r[1].clone(), r[2].clone()));
        }
        let mut out = Vec::new();
        for (manifest, keep) in manifests {
            for (file, table) in recorded.remove(manifest).unwrap_or_default() {
                if !keep.contains(&file) {
                    out.push((file, table));
                }
            }
        }
        Ok(out)
    }

    /// Applied migrations: (version, name, checksum), in order.
    pub async fn applied_migrations(&mut self) -> Result<Vec<(i64, String, String)>, LoadError> {
        match self {
            Warehouse::Sqlite(w) => w.applied_migrations().await,
            Warehouse::Postgres(w) => w.applied_migrations().await,
            Warehouse::Redshift(w) => w.applied_migrations().await,
        }
    }

    /// Runs a migration's SQL and records it, in one transaction.
    pub async fn apply_migration(
        &mut self,
        version: i64,
        name: &str,
        checksum: &str,
        sql: &str,
    ) -> Result<(), LoadError> {
        match self {
            Warehouse::Sqlite(w) => w.apply_migration(version, name, checksum, sql).await,
            Warehouse::Postgres(w) => w.apply_migration(version, name, checksum, sql).await,
            Warehouse::Redshift(w) => w.apply_migration(version, name, checksum, sql).await,
        }
    }

    /// Rows per table as counted in the tables (not the ledger), with the
    /// ledger's files and rejects, for the summary.
    pub async fn table_counts(&mut self, db_schema: &str) -> Result<Vec<TableCount>, LoadError> {
        let dialect = self.dialect();
        let ledger = crate::schema::qualified(LEDGER_TABLE, dialect, db_schema);
        let tables = self
            .query_text(&format!(
                "SELECT table_name, count(*), sum(rejects) FROM {ledger} GROUP BY table_name ORDER BY table_name"
            ))
            .await?;
        let mut out = Vec::new();
        for r in tables {
            let name = crate::schema::qualified(&r[0], dialect, db_schema);
            let rows = self
                .query_text(&format!("SELECT count(*) FROM {name}"))
                .await?;
            let number = |s: &str| s.parse().unwrap_or(0);
            out.push(TableCount {
                rows: rows.first().map_or(0, |x| number(&x[0])),
                files: number(&r[1]),
                rejects: number(&r[2]),
                table: r[0].clone(),
            });
        }
        Ok(out)
    }

    /// Runs one read-only query and returns its rows as text, for the
    /// summary's example query.
    pub async fn query_text(&mut self, sql: &str) -> Result<Vec<Vec<String>>, LoadError> {
        match self {
            Warehouse::Sqlite(w) => w.query_text(sql).await,
            Warehouse::Postgres(w) => w.query_text(sql).await,
            Warehouse::Redshift(w) => w.query_text(sql).await,
        }
    }
}

/// What reading one file for its table found.
#[derive(Debug, Default)]
pub struct FileRows {
    /// Rows handed to the backend.
    pub rows: u64,
    pub rejects: Vec<Reject>,
    pub drift: Drift,
}

/// Reads every line of `raw`, turns it into cells and hands them to `row`
/// with the line number; a line that cannot become a row is a [`Reject`]
/// instead. Fails the file with [`LoadError::TooManyRejects`] past
/// `job.max_rejects`, and when `row` fails (the backend could not take it).
pub fn for_each_row(
    job: &LoadJob,
    raw: Box<dyn Read + Send>,
    mut row: impl FnMut(u64, &[Cell<'_>]) -> Result<(), String>,
) -> Result<FileRows, LoadError> {
    let (file, table) = (&job.file, &job.table);
    let maker = RowMaker::new(table);
    let width = table.columns.len();
    let whole_line = maker.whole_line();
    // Reused from line to line (the values borrow from each line, so they
    // are the line's own, like its cells).
    let mut unknown = Vec::new();
    let mut out = FileRows::default();
    let mut failure: Option<LoadError> = None;
    let read = for_each_line(&file.uri, raw, |line_no, line| {
        let reject = |reason: RejectReason, column: Option<String>, message: String, bytes: &[u8]| Reject {
            line: line_no,
            column,
            reason,
            message,
            excerpt: excerpt(bytes),
        };
        let bytes = match line {
            RawLine::Line(b) => b,
            RawLine::TooLong(head) => {
                out.rejects.push(reject(
                    RejectReason::LineTooLong,
                    None,
                    format!("longer than {MAX_LINE_BYTES} bytes, more than the loader reads as one line (the router quarantines lines over route.max_line_bytes, so it did not write this one)"),
                    head,
                ));
                return over_limit(job, &out, &mut failure);
            }
        };
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                out.rejects.push(reject(
                    RejectReason::InvalidUtf8,
                    None,
                    format!("not UTF-8 ({e}); the router only routes UTF-8 lines, so the file is not what it wrote"),
                    bytes,
                ));
                return over_limit(job, &out, &mut failure);
            }
        };
        let not_an_object = || (RejectReason::NotAnObject, "is not a JSON object".to_owned());
        let mut values = Vec::new();
        let parsed: Result<(), (RejectReason, String)> = if whole_line {
            // The line is stored as it is: check it is one JSON object the
            // way the router did, without building it.
            match logrouter::json::check_json(text) {
                Ok(()) if text.trim_start().starts_with('{') => Ok(()),
                Ok(()) => Err(not_an_object()),
                Err(p) => Err(json_reject(p)),
            }
        } else {
            maker
                .read(text, &mut values, &mut unknown)
                .map_err(|e| match e {
                    LineError::Json(e) => json_reject(e.into()),
                    LineError::NotAnObject => not_an_object(),
                })
        };
        if let Err((reason, message)) = parsed {
            out.rejects.push(reject(reason, None, message, bytes));
            return over_limit(job, &out, &mut failure);
        }
        // Cells borrow from this line, so the vector is the line's own.
        let mut cells = Vec::with_capacity(width);
        if let Err(e) = maker.cells(text, &values, &mut cells) {
            out.rejects.push(reject(e.reason, Some(e.column), e.message, bytes));
            return over_limit(job, &out, &mut failure);
        }
        for path in &unknown {
            out.drift.count(path);
        }
        if let Err(e) = row(line_no, &cells) {
            failure = Some(LoadError::Database(format!(
                "{} line {line_no}: {e}",
                file.uri
            )));
            return ControlFlow::Break(());
        }
        out.rows += 1;
        ControlFlow::Continue(())
    })
    .map_err(|e| LoadError::Read {
        file: file.uri.clone(),
        message: format!("{e} (the file is damaged or was replaced while reading; route its source again)"),
    });
    if let Some(f) = failure {
        return Err(f);
    }
    read?;
    Ok(out)
}

/// The reject reason and message of a line that is not JSON the loader
/// accepts.
fn json_reject(p: JsonProblem) -> (RejectReason, String) {
    match p {
        JsonProblem::TooDeep(m) => (
            RejectReason::TooDeep,
            format!("nested deeper than {MAX_JSON_DEPTH} levels ({m}): the router quarantines such lines as too_deep, so it did not write this one"),
        ),
        JsonProblem::Invalid(m) => (
            RejectReason::InvalidJson,
            format!("not valid JSON ({m}): the router quarantines such lines, so it did not write this one"),
        ),
    }
}

/// Stops reading once the rejects pass the file's limit.
fn over_limit(job: &LoadJob, out: &FileRows, failure: &mut Option<LoadError>) -> ControlFlow<()> {
    if out.rejects.len() as u64 <= job.max_rejects {
        return ControlFlow::Continue(());
    }
    *failure = Some(LoadError::TooManyRejects {
        file: job.file.uri.clone(),
        table: job.table.table.clone(),
        limit: job.max_rejects,
        first: out
            .rejects
            .first()
            .map(|r| r.to_string())
            .unwrap_or_default(),
    });
    ControlFlow::Break(())
}

/// Checks rows and rejects against the manifest.
pub fn check_count(file: &RoutedFile, loaded: u64, rejects: u64) -> Result<(), LoadError> {
    if loaded + rejects != file.lines {
        return Err(LoadError::Count {
            file: file.uri.clone(),
            expected: file.lines,
            loaded,
            rejects,
        });
    }
    Ok(())
}

/// Column names of `table` in row order: its own, then the standard ones.
pub fn column_list(table: &TableSchema) -> String {
    table
        .columns
        .iter()
        .cloned()
        .chain(crate::schema::standard_columns(Dialect::Postgres))
        .map(|c| format!("\"{}\"", c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            WarehouseUrl::parse("sqlite:out/x.db").unwrap(),
            WarehouseUrl::Sqlite("out/x.db".into())
        );
        assert_eq!(
            WarehouseUrl::parse("sqlite:///tmp/x.db").unwrap(),
            WarehouseUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            WarehouseUrl::parse("postgres://u@localhost:5432/db").unwrap(),
            WarehouseUrl::Postgres(_)
        ));
        for bad in ["sqlite:", "mysql://x", "x.db", "redshift://c/db"] {
            assert!(WarehouseUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            WarehouseUrl::parse("redshift://c/db?db_user=u&iam_role=arn:aws:iam::1:role/r")
                .unwrap(),
            WarehouseUrl::Redshift(_)
        ));
    }
}
