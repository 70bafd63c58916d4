//! The warehouses the loader writes to, behind one interface.
//!
//! Each backend keeps its own ledger table in the warehouse itself, so that
//! a file's rows and its ledger row commit in one transaction: after a crash
//! either both exist or neither does, and the next run loads exactly what
//! the ledger lacks. Each load takes a lock on the file first (an advisory
//! lock on PostgreSQL, the write lock on SQLite) and reads the ledger under
//! it, so two loaders racing on one file load it once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use serde_json::Value;

pub mod postgres;
pub mod redshift;
pub mod sqlite;

use crate::rows::{Cell, RowMaker};
use crate::schema::{Dialect, TableSchema};
use crate::source::{decoder, RoutedFile};
use logrouter::aws::AwsClients;
use postgres::PgWarehouse;
use redshift::{RedshiftTarget, RedshiftWarehouse};
use sqlite::SqliteWarehouse;
use std::time::Duration;

/// Table of loaded files: (file, version, table, rows, manifest, loaded_at,
/// routed_at).
pub const LEDGER_TABLE: &str = "_logrouter_ledger";
/// Table of applied migrations: (version, name, checksum, applied_at).
pub const MIGRATIONS_TABLE: &str = "_logrouter_migrations";

/// A `--warehouse` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseUrl {
    /// `sqlite:PATH`: the embedded default.
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/db` (or `postgresql://`, or a
    /// `host=… dbname=…` string after `postgres:`).
    Postgres(String),
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
            return Ok(WarehouseUrl::Postgres(text.to_owned()));
        }
        if let Some(conninfo) = text.strip_prefix("postgres:") {
            return Ok(WarehouseUrl::Postgres(conninfo.to_owned()));
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
    },
    /// The ledger already has this version of the file.
    AlreadyLoaded,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A line does not fit its table: the file is not loaded until the data
    /// or the schema is fixed.
    #[error("{file} line {line}: {message}")]
    Row {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{file}: loaded {loaded} rows but its manifest says {expected} lines (the file changed under the loader, or it is not the file the manifest describes); nothing was committed")]
    Count {
        file: String,
        expected: u64,
        loaded: u64,
    },
    #[error("{file}: reading failed: {message}")]
    Read { file: String, message: String },
    #[error("{0}")]
    Database(String),
}

impl LoadError {
    /// Every value of [`LoadError::reason`].
    /// (`manifest`: `loader run` could not read a manifest yet.)
    pub const REASONS: [&'static str; 5] =
        ["bad_line", "count_mismatch", "read", "database", "manifest"];

    /// The metric label of the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            LoadError::Row { .. } => "bad_line",
            LoadError::Count { .. } => "count_mismatch",
            LoadError::Read { .. } => "read",
            LoadError::Database(_) => "database",
        }
    }

    /// Whether retrying cannot help: the data or the schema must change.
    pub fn needs_operator(&self) -> bool {
        matches!(self, LoadError::Row { .. } | LoadError::Count { .. })
    }

    /// A database error with what was being done.
    pub fn db(doing: &str, e: impl std::fmt::Display) -> Self {
        LoadError::Database(format!("{doing}: {e}"))
    }
}

/// A connection to one warehouse.
pub enum Warehouse {
    Sqlite(SqliteWarehouse),
    Postgres(Box<PgWarehouse>),
    Redshift(Box<RedshiftWarehouse>),
}

/// A file opened for loading: its version and its stored bytes.
pub struct OpenedFile {
    /// The S3 ETag, or a SHA-256 of a local file's bytes: a new version
    /// (a re-route) replaces the rows of the old one.
    pub version: String,
    /// The stored (compressed) bytes. Reading blocks: it must happen on a
    /// blocking thread, decompression included (a gzip decoder reads its
    /// header as soon as it is made).
    pub raw: Box<dyn Read + Send>,
}

impl Warehouse {
    /// Connects and makes sure the ledger and migration tables exist.
    pub async fn connect(
        url: &WarehouseUrl,
        db_schema: &str,
        clients: &AwsClients,
        statement_timeout: Duration,
    ) -> Result<Self, LoadError> {
        let w = match url {
            WarehouseUrl::Redshift(target) => Warehouse::Redshift(Box::new(
                RedshiftWarehouse::connect(
                    target,
                    db_schema,
                    clients.sdk().await,
                    clients.s3().await,
                    statement_timeout,
                )
                .await?,
            )),
            WarehouseUrl::Sqlite(path) => {
                Warehouse::Sqlite(SqliteWarehouse::open(path.clone()).await?)
            }
            WarehouseUrl::Postgres(conninfo) => {
                Warehouse::Postgres(Box::new(PgWarehouse::connect(conninfo, db_schema).await?))
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
        file: &RoutedFile,
        table: &TableSchema,
        opened: OpenedFile,
    ) -> Result<LoadOutcome, LoadError> {
        match self {
            Warehouse::Sqlite(w) => w.load_file(file, table, opened).await,
            Warehouse::Postgres(w) => w.load_file(file, table, opened).await,
            // Redshift reads the file from S3 itself: only its version is
            // needed, and the stream is dropped unread.
            Warehouse::Redshift(w) => w.load_file(file, table, &opened.version).await,
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

    /// Rows per table as counted in the tables (not the ledger), for the
    /// summary: `(table, rows, files in the ledger)`.
    pub async fn table_counts(&mut self) -> Result<Vec<(String, i64, i64)>, LoadError> {
        match self {
            Warehouse::Sqlite(w) => w.table_counts().await,
            Warehouse::Postgres(w) => w.table_counts().await,
            Warehouse::Redshift(w) => w.table_counts().await,
        }
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

/// Lines longer than this are refused, so a hostile file cannot exhaust
/// memory (the router quarantines lines over `route.max_line_bytes`,
/// 4 MiB by default).
pub const MAX_LINE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads every line of `reader`, turns it into cells and hands them to
/// `row` with the line number; returns the number of rows. Errors name the
/// file and line.
pub fn for_each_row(
    file: &RoutedFile,
    table: &TableSchema,
    raw: Box<dyn Read + Send>,
    mut row: impl FnMut(u64, &[Cell<'_>]) -> Result<(), String>,
) -> Result<u64, LoadError> {
    let maker = RowMaker::new(table);
    let reader = decoder(&file.uri, raw).map_err(|e| LoadError::Read {
        file: file.uri.clone(),
        message: e.to_string(),
    })?;
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut buf = Vec::with_capacity(4096);
    let width = table.columns.len();
    let whole_line = table.columns.iter().all(|c| c.path.is_empty());
    let mut line_no = 0u64;
    let row_err = |line, message: String| LoadError::Row {
        file: file.uri.clone(),
        line,
        message,
    };
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| LoadError::Read {
                file: file.uri.clone(),
                message: format!("{e} (the file is damaged or was replaced while reading; route its source again)"),
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if buf.len() as u64 > MAX_LINE_BYTES {
            return Err(row_err(
                line_no,
                format!("longer than {MAX_LINE_BYTES} bytes: the router never writes such lines, so the file is not what it wrote"),
            ));
        }
        let text = std::str::from_utf8(&buf)
            .map_err(|e| row_err(line_no, format!("not UTF-8 ({e}); the router only routes UTF-8 lines, so the file is not what it wrote")))?;
        // Cells borrow from this line, so the vector is the line's own.
        let mut cells = Vec::with_capacity(width);
        let value: Value = if whole_line {
            // The line is stored as it is: check it is one JSON object
            // without building it.
            serde_json::from_str::<serde::de::IgnoredAny>(text)
                .ok()
                .filter(|_| text.trim_start().starts_with('{'))
                .ok_or_else(|| row_err(line_no, "not a JSON object".into()))?;
            Value::Null
        } else {
            serde_json::from_str(text)
                .map_err(|e| row_err(line_no, format!("not a JSON object ({e})")))?
        };
        maker
            .cells(text, &value, &mut cells)
            .map_err(|e| row_err(line_no, e.to_string()))?;
        row(line_no, &cells).map_err(|e| row_err(line_no, e))?;
    }
    Ok(line_no)
}

/// Checks rows loaded against the manifest.
pub fn check_count(file: &RoutedFile, loaded: u64) -> Result<(), LoadError> {
    if loaded != file.lines {
        return Err(LoadError::Count {
            file: file.uri.clone(),
            expected: file.lines,
            loaded,
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
