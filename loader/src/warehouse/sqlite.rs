//! The embedded warehouse: one SQLite file, so the whole pipeline runs on a
//! laptop. rusqlite is synchronous; every call runs on a blocking thread.
//!
//! A load is one `BEGIN IMMEDIATE` transaction: it takes SQLite's single
//! write lock before reading the ledger, so two loaders on one file cannot
//! both decide to load it. Rows go through one prepared INSERT, bound per
//! row: SQLite has no bulk path faster than that inside a transaction.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::reject::REJECTS_TABLE;
use crate::rows::Cell;
use crate::schema::{create_table_sql, qualified, Dialect};
use crate::warehouse::{
    check_count, column_list, for_each_row, rejects_table_sql, LedgerEntry, LoadError, LoadJob,
    LoadOutcome, OpenedFile, RejectSummary, LEDGER_ADDED_COLUMNS, LEDGER_COLUMNS, LEDGER_TABLE,
    MIGRATIONS_TABLE, REJECTS_COLUMNS,
};

pub struct SqliteWarehouse {
    conn: Arc<Mutex<Connection>>,
}

fn db(doing: &str) -> impl Fn(rusqlite::Error) -> LoadError + '_ {
    move |e| LoadError::db(doing, e)
}

impl SqliteWarehouse {
    pub async fn open(path: PathBuf) -> Result<Self, LoadError> {
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, LoadError> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| LoadError::db(&format!("creating {}", dir.display()), e))?;
            }
            let conn = Connection::open(&path)
                .map_err(|e| LoadError::db(&format!("opening sqlite:{}", path.display()), e))?;
            // A second loader waits for the write lock instead of failing.
            conn.busy_timeout(Duration::from_secs(60))
                .map_err(db("setting busy_timeout"))?;
            // WAL lets readers work during a load; the mode is stored in
            // the file, so only the first opener switches it.
            retry_busy(|| {
                conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            })
            .map_err(|e| {
                LoadError::db(&format!("switching sqlite:{} to WAL", path.display()), e)
            })?;
            retry_busy(|| {
                conn.execute_batch(&format!(
                    "PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
                   file TEXT PRIMARY KEY, version TEXT NOT NULL, table_name TEXT NOT NULL,
                   rows INTEGER NOT NULL, manifest TEXT NOT NULL, loaded_at TEXT NOT NULL,
                   routed_at TEXT NOT NULL, rejects INTEGER NOT NULL DEFAULT 0,
                   schema_version TEXT NOT NULL DEFAULT '');
                 CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                   version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
                   applied_at TEXT NOT NULL);
                 {};",
                    rejects_table_sql(Dialect::Sqlite, "")
                ))
            })
            .map_err(|e| LoadError::db(&format!("preparing sqlite:{}", path.display()), e))?;
            // A ledger made by an earlier release lacks the newer columns.
            retry_busy(|| upgrade_ledger(&conn)).map_err(|e| {
                LoadError::db(
                    &format!("upgrading the ledger of sqlite:{}", path.display()),
                    e,
                )
            })?;
            Ok(conn)
        })
        .await
        .expect("sqlite open does not panic")?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, LoadError> + Send + 'static,
    ) -> Result<T, LoadError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| LoadError::Database(format!("sqlite worker failed: {e}")))?
    }

    pub async fn load_file(
        &mut self,
        job: &LoadJob,
        opened: OpenedFile,
    ) -> Result<LoadOutcome, LoadError> {
        let job = job.clone();
        self.with(move |conn| load(conn, &job, opened)).await
    }

    /// Removes a file's rows and its ledger entry, in one transaction.
    pub async fn forget_file(&mut self, uri: &str, table: &str) -> Result<u64, LoadError> {
        let (uri, table) = (uri.to_owned(), table.to_owned());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db("forgetting a file"))?;
            let n = tx
                .execute(
                    &format!("DELETE FROM \"{table}\" WHERE _routed_file = ?1"),
                    [&uri],
                )
                .map_err(db("forgetting a file's rows"))?;
            for t in [LEDGER_TABLE, REJECTS_TABLE] {
                tx.execute(&format!("DELETE FROM {t} WHERE file = ?1"), [&uri])
                    .map_err(db("forgetting a file"))?;
            }
            tx.commit().map_err(db("forgetting a file"))?;
            Ok(n as u64)
        })
        .await
    }

    pub async fn applied_migrations(&mut self) -> Result<Vec<(i64, String, String)>, LoadError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT version, name, checksum FROM {MIGRATIONS_TABLE} ORDER BY version"
                ))
                .map_err(db("reading migrations"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(db("reading migrations"))?;
            rows.collect::<Result<_, _>>()
                .map_err(db("reading migrations"))
        })
        .await
    }

    pub async fn apply_migration(
        &mut self,
        version: i64,
        name: &str,
        checksum: &str,
        sql: &str,
    ) -> Result<(), LoadError> {
        let (name, checksum, sql) = (name.to_owned(), checksum.to_owned(), sql.to_owned());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db("starting migration"))?;
            tx.execute_batch(&sql)
                .map_err(|e| LoadError::db(&format!("migration {name}"), e))?;
            tx.execute(
                &format!("INSERT INTO {MIGRATIONS_TABLE} VALUES (?1, ?2, ?3, datetime('now'))"),
                params![version, name, checksum],
            )
            .map_err(db("recording migration"))?;
            tx.commit().map_err(db("committing migration"))
        })
        .await
    }

    pub async fn query_text(&mut self, sql: &str) -> Result<Vec<Vec<String>>, LoadError> {
        let sql = sql.to_owned();
        self.with(move |conn| {
            let mut stmt = conn.prepare(&sql).map_err(db("query"))?;
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get::<_, SqlValue>(i)? {
                                SqlValue::Null => "NULL".to_owned(),
                                SqlValue::Integer(v) => v.to_string(),
                                SqlValue::Real(v) => v.to_string(),
                                SqlValue::Text(v) => v,
                                SqlValue::Blob(v) => format!("<{} bytes>", v.len()),
                            })
                        })
                        .collect::<Result<Vec<_>, rusqlite::Error>>()
                })
                .map_err(db("query"))?;
            rows.collect::<Result<_, _>>().map_err(db("query"))
        })
        .await
    }
}

/// Runs `f` again while SQLite answers "busy" without having waited (it
/// does so for some lock upgrades, such as switching to WAL, whatever the
/// busy timeout), for up to a minute. Found when three loaders opened a new
/// database file at the same moment in CI.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Adds the ledger columns of later releases to a ledger that lacks them.
fn upgrade_ledger(conn: &Connection) -> rusqlite::Result<()> {
    let have: Vec<String> = conn
        .prepare(&format!(
            "SELECT name FROM pragma_table_info('{LEDGER_TABLE}')"
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, types) in LEDGER_ADDED_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!(
                "ALTER TABLE {LEDGER_TABLE} ADD COLUMN {name} {}",
                types[0]
            ))?;
        }
    }
    Ok(())
}

fn load(
    conn: &mut Connection,
    job: &LoadJob,
    opened: OpenedFile,
) -> Result<LoadOutcome, LoadError> {
    let (file, table) = (&job.file, &job.table);
    let doing = |what: &str| format!("{what} {} into {}", file.uri, table.table);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| LoadError::db(&doing("locking to load"), e))?;
    let prev: Option<LedgerEntry> = tx
        .query_row(
            &format!(
                "SELECT version, routed_at, schema_version FROM {LEDGER_TABLE} WHERE file = ?1"
            ),
            [&file.uri],
            |r| {
                Ok(LedgerEntry {
                    version: r.get(0)?,
                    routed_at: r.get(1)?,
                    schema_version: r.get(2)?,
                })
            },
        )
        .optional()
        .map_err(|e| LoadError::db(&doing("reading the ledger for"), e))?;
    if prev.as_ref().is_some_and(|p| job.done(&opened.version, p)) {
        return Ok(LoadOutcome::AlreadyLoaded);
    }
    for stmt in create_table_sql(table, Dialect::Sqlite, "") {
        tx.execute(&stmt, [])
            .map_err(|e| LoadError::db(&doing("creating the table for"), e))?;
    }
    let name = qualified(&table.table, Dialect::Sqlite, "");
    let replaced = match prev {
        Some(_) => {
            tx.execute(
                &format!("DELETE FROM {REJECTS_TABLE} WHERE file = ?1"),
                [&file.uri],
            )
            .map_err(|e| LoadError::db(&doing("replacing the earlier rejects of"), e))?;
            Some(
                tx.execute(
                    &format!("DELETE FROM {name} WHERE _routed_file = ?1"),
                    [&file.uri],
                )
                .map_err(|e| LoadError::db(&doing("replacing the earlier rows of"), e))?
                    as u64,
            )
        }
        None => None,
    };
    let loaded_at = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string();
    let read = {
        let n = table.columns.len() + 3;
        let marks = (1..=n)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut insert = tx
            .prepare(&format!(
                "INSERT INTO {name} ({}) VALUES ({marks})",
                column_list(table)
            ))
            .map_err(|e| {
                LoadError::db(
                    &doing(
                        "preparing to load (does the table match its schema? see `loader migrate`)",
                    ),
                    e,
                )
            })?;
        for_each_row(job, opened.raw, |line, cells| {
            for (i, c) in cells.iter().enumerate() {
                let r = match c {
                    Cell::Null => insert.raw_bind_parameter(i + 1, rusqlite::types::Null),
                    Cell::Bool(b) => insert.raw_bind_parameter(i + 1, *b),
                    Cell::Int(v) => insert.raw_bind_parameter(i + 1, *v),
                    Cell::Float(v) => insert.raw_bind_parameter(i + 1, *v),
                    Cell::Text(s) => insert.raw_bind_parameter(i + 1, s.as_ref()),
                };
                r.map_err(|e| e.to_string())?;
            }
            let k = cells.len();
            insert
                .raw_bind_parameter(k + 1, file.uri.as_str())
                .and_then(|_| insert.raw_bind_parameter(k + 2, line as i64))
                .and_then(|_| insert.raw_bind_parameter(k + 3, loaded_at.as_str()))
                .map_err(|e| e.to_string())?;
            insert.raw_execute().map_err(|e| e.to_string())?;
            Ok(())
        })?
    };
    let rejects = read.rejects.len() as u64;
    check_count(file, read.rows, rejects)?;
    {
        let mut insert = tx
            .prepare(&format!(
                "INSERT INTO {REJECTS_TABLE} ({REJECTS_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))
            .map_err(|e| LoadError::db(&doing("preparing the rejects of"), e))?;
        for r in &read.rejects {
            insert
                .execute(params![
                    file.uri,
                    opened.version,
                    r.line as i64,
                    table.table,
                    r.column,
                    r.reason.as_str(),
                    r.message,
                    r.excerpt,
                    loaded_at
                ])
                .map_err(|e| LoadError::db(&doing("recording the rejects of"), e))?;
        }
    }
    tx.execute(
        &format!(
            "INSERT INTO {LEDGER_TABLE} ({LEDGER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (file) DO UPDATE SET version = excluded.version,
               table_name = excluded.table_name, rows = excluded.rows,
               manifest = excluded.manifest, loaded_at = excluded.loaded_at,
               routed_at = excluded.routed_at, rejects = excluded.rejects,
               schema_version = excluded.schema_version"
        ),
        params![
            file.uri,
            opened.version,
            table.table,
            read.rows as i64,
            file.manifest,
            loaded_at,
            file.routed_at,
            rejects as i64,
            job.schema_version
        ],
    )
    .map_err(|e| LoadError::db(&doing("recording in the ledger"), e))?;
    tx.commit()
        .map_err(|e| LoadError::db(&doing("committing"), e))?;
    Ok(LoadOutcome::Loaded {
        rows: read.rows,
        replaced,
        rejects: RejectSummary::of(&read.rejects),
        drift: read.drift,
    })
}
