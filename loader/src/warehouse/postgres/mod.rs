//! PostgreSQL through tokio-postgres. Rows stream in with `COPY … FROM
//! STDIN`, in the binary format when every column's type allows it
//! ([`binary`]: about half the server's work of text) and as text
//! otherwise: a blocking thread decompresses and converts lines into 256 KiB
//! chunks, and the connection sends them as they come, so a file is never
//! held in memory and there is never one INSERT per row.
//!
//! A load is one transaction that first takes an advisory lock on the file
//! (`pg_advisory_xact_lock`), then reads the ledger: a second loader on the
//! same file waits, then sees the ledger row and skips.

use std::collections::HashSet;
use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use tokio_postgres::{Client, SimpleQueryMessage};

mod binary;
mod target;
mod tls;

pub use target::{redact, PgTarget, RootCerts, SslMode};

use crate::reject::REJECTS_TABLE;
use crate::rows::Cell;
use crate::schema::{create_table_sql, qualified, Dialect, TableSchema};
use crate::warehouse::{
    check_count, column_list, for_each_row, rejects_table_sql, LedgerEntry, LoadError, LoadJob,
    LoadOutcome, OpenedFile, RejectSummary, LEDGER_ADDED_COLUMNS, LEDGER_COLUMNS, LEDGER_TABLE,
    MIGRATIONS_TABLE, REJECTS_COLUMNS,
};

pub struct PgWarehouse {
    client: Client,
    schema: String,
    /// Tables this connection has made sure exist.
    created: HashSet<String>,
}

const CHUNK: usize = 256 * 1024;

fn db(doing: &str) -> impl Fn(tokio_postgres::Error) -> LoadError + '_ {
    move |e| LoadError::db(doing, describe(&e))
}

/// The server's message (with its detail) rather than "db error".
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut s = format!("{}: {}", d.severity(), d.message());
            if let Some(detail) = d.detail() {
                let _ = write!(s, " ({detail})");
            }
            if let Some(w) = d.where_() {
                let _ = write!(s, " [{w}]");
            }
            s
        }
        // tokio-postgres's own text is only its kind ("error performing
        // TLS handshake"): the cause says what actually failed.
        None => {
            let mut s = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let _ = write!(s, ": {c}");
                cause = c.source();
            }
            s
        }
    }
}

impl PgWarehouse {
    pub async fn connect(target: &PgTarget, schema: &str) -> Result<Self, LoadError> {
        let connecting = target.config.connect(target.tls.clone());
        // tokio-postgres bounds only the socket's connect: a server that
        // accepts and then never answers the start-up (or TLS) would hang
        // here for good. Twice the connect timeout covers both.
        let connected = match target.config.get_connect_timeout() {
            Some(&limit) => match tokio::time::timeout(limit * 2, connecting).await {
                Ok(connected) => connected,
                Err(_) => {
                    return Err(LoadError::db(
                        &format!("connecting to PostgreSQL ({})", target.shown),
                        format!(
                            "no answer within {} s (twice connect_timeout): is it a PostgreSQL server, and is it up?",
                            (limit * 2).as_secs()
                        ),
                    ))
                }
            },
            None => connecting.await,
        };
        let (client, conn) = connected.map_err(|e| {
            let mut why = describe(&e);
            if why.starts_with("error performing TLS handshake") {
                let _ = write!(why, " ({})", target.tls_hint());
            }
            LoadError::db(
                &format!(
                    "connecting to PostgreSQL ({}, sslmode={})",
                    target.shown,
                    target.mode.name()
                ),
                why,
            )
        })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "PostgreSQL connection closed");
            }
        });
        let w = Self {
            client,
            schema: schema.to_owned(),
            created: HashSet::new(),
        };
        // Two loaders starting at once may both create the meta tables:
        // serialise that with an advisory lock.
        w.client
            .batch_execute(&format!(
                "BEGIN;
                 SELECT pg_advisory_xact_lock(hashtextextended('logrouter.meta', 0));
                 CREATE SCHEMA IF NOT EXISTS \"{schema}\";
                 CREATE TABLE IF NOT EXISTS \"{schema}\".{LEDGER_TABLE} (
                   file TEXT PRIMARY KEY, version TEXT NOT NULL, table_name TEXT NOT NULL,
                   rows BIGINT NOT NULL, manifest TEXT NOT NULL, loaded_at TIMESTAMP NOT NULL,
                   routed_at TEXT NOT NULL);
                 {upgrade};
                 CREATE TABLE IF NOT EXISTS \"{schema}\".{MIGRATIONS_TABLE} (
                   version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
                   applied_at TIMESTAMP NOT NULL DEFAULT now());
                 {rejects};
                 COMMIT;",
                // A ledger made by an earlier release lacks the newer columns.
                upgrade = LEDGER_ADDED_COLUMNS
                    .iter()
                    .map(|(name, types)| format!(
                        "ALTER TABLE \"{schema}\".{LEDGER_TABLE} ADD COLUMN IF NOT EXISTS {name} {}",
                        types[1]
                    ))
                    .collect::<Vec<_>>()
                    .join(";\n"),
                rejects = rejects_table_sql(Dialect::Postgres, schema),
            ))
            .await
            .map_err(db("preparing the ledger"))?;
        Ok(w)
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn ledger(&self) -> String {
        format!("\"{}\".{LEDGER_TABLE}", self.schema)
    }

    /// Creates `table` once per connection, serialised across loaders.
    async fn ensure_table(&mut self, table: &TableSchema) -> Result<(), LoadError> {
        if self.created.contains(&table.table) {
            return Ok(());
        }
        let tx = self
            .client
            .transaction()
            .await
            .map_err(db("creating a table"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('logrouter.create.' || $1, 0))",
            &[&table.table],
        )
        .await
        .map_err(db("locking to create a table"))?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
                &[&self.schema, &table.table],
            )
            .await
            .map_err(db("looking up a table"))?
            .is_some();
        if !exists {
            for stmt in create_table_sql(table, Dialect::Postgres, &self.schema) {
                tx.batch_execute(&stmt).await.map_err(|e| {
                    LoadError::db(&format!("creating {}", table.table), describe(&e))
                })?;
            }
        }
        tx.commit().await.map_err(db("creating a table"))?;
        self.created.insert(table.table.clone());
        Ok(())
    }

    pub async fn load_file(
        &mut self,
        job: &LoadJob,
        opened: OpenedFile,
    ) -> Result<LoadOutcome, LoadError> {
        let (file, table) = (&job.file, &job.table);
        self.ensure_table(table).await?;
        let ledger = self.ledger();
        let rejects_table = qualified(REJECTS_TABLE, Dialect::Postgres, &self.schema);
        let name = qualified(&table.table, Dialect::Postgres, &self.schema);
        let doing = |what: &str| format!("{what} {} into {name}", file.uri);
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| LoadError::db(&doing("starting to load"), describe(&e)))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&file.uri],
        )
        .await
        .map_err(|e| LoadError::db(&doing("locking"), describe(&e)))?;
        let prev: Option<LedgerEntry> = tx
            .query_opt(
                &format!("SELECT version, routed_at, schema_version FROM {ledger} WHERE file = $1"),
                &[&file.uri],
            )
            .await
            .map_err(|e| LoadError::db(&doing("reading the ledger for"), describe(&e)))?
            .map(|r| LedgerEntry {
                version: r.get(0),
                routed_at: r.get(1),
                schema_version: r.get(2),
            });
        if prev.as_ref().is_some_and(|p| job.done(&opened.version, p)) {
            return Ok(LoadOutcome::AlreadyLoaded);
        }
        let replaced = match prev {
            Some(_) => {
                tx.execute(
                    &format!("DELETE FROM {rejects_table} WHERE file = $1"),
                    &[&file.uri],
                )
                .await
                .map_err(|e| {
                    LoadError::db(&doing("replacing the earlier rejects of"), describe(&e))
                })?;
                Some(
                    tx.execute(
                        &format!("DELETE FROM {name} WHERE _routed_file = $1"),
                        &[&file.uri],
                    )
                    .await
                    .map_err(|e| {
                        LoadError::db(&doing("replacing the earlier rows of"), describe(&e))
                    })?,
                )
            }
            None => None,
        };
        let loaded_at = chrono::Utc::now().naive_utc();
        let stamp = loaded_at.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        // The columns as the database has them now, in this transaction.
        let db_types: Vec<(String, String)> = tx
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_attribute a
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&name],
            )
            .await
            .map_err(|e| LoadError::db(&doing("reading the columns of"), describe(&e)))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let plan = binary::plan(table, &db_types);
        let format = if plan.is_some() {
            " (FORMAT binary)"
        } else {
            ""
        };
        let sink = tx
            .copy_in::<_, Bytes>(&format!(
                "COPY {name} ({}) FROM STDIN{format}",
                column_list(table)
            ))
            .await
            .map_err(|e| {
                LoadError::db(
                    &doing(
                        "starting COPY of (does the table match its schema? see `loader migrate`)",
                    ),
                    describe(&e),
                )
            })?;
        let mut sink = std::pin::pin!(sink);

        // Convert on a blocking thread; the channel bounds what is in memory.
        let (tx_chunks, mut rx_chunks) = tokio::sync::mpsc::channel::<Bytes>(4);
        let producer = {
            let job = job.clone();
            let stamp = stamp.clone();
            tokio::task::spawn_blocking(move || -> Result<_, LoadError> {
                let mut buf = BytesMut::with_capacity(CHUNK + 64 * 1024);
                let mut itoa = itoa_buf();
                // The same on every row: encoded once.
                let mut uri = BytesMut::new();
                let mut stamp_field = BytesMut::new();
                match &plan {
                    Some(_) => {
                        binary::header(&mut buf);
                        binary::cell(
                            &mut uri,
                            &Cell::Text(job.file.uri.as_str().into()),
                            binary::Field::Text,
                        )
                        .map_err(LoadError::Database)?;
                        binary::timestamp(&mut stamp_field, &loaded_at);
                    }
                    None => {
                        escape(&mut uri, &job.file.uri);
                        stamp_field.put_slice(stamp.as_bytes());
                    }
                }
                let read = for_each_row(&job, opened.raw, |line, cells| {
                    if let Some(fields) = &plan {
                        binary::row(&mut buf, fields.len());
                        for (c, f) in cells.iter().zip(fields) {
                            binary::cell(&mut buf, c, *f)?;
                        }
                        buf.put_slice(&uri);
                        buf.put_i32(8);
                        buf.put_i64(line as i64);
                        buf.put_slice(&stamp_field);
                    } else {
                        for c in cells {
                            encode(&mut buf, c, &mut itoa);
                            buf.put_u8(b'\t');
                        }
                        buf.put_slice(&uri);
                        buf.put_u8(b'\t');
                        buf.put_slice(itoa_fmt(&mut itoa, line as i64));
                        buf.put_u8(b'\t');
                        buf.put_slice(&stamp_field);
                        buf.put_u8(b'\n');
                    }
                    if buf.len() >= CHUNK {
                        let chunk = buf.split().freeze();
                        tx_chunks
                            .blocking_send(chunk)
                            .map_err(|_| "the COPY was abandoned".to_owned())?;
                    }
                    Ok(())
                })?;
                if plan.is_some() {
                    binary::trailer(&mut buf);
                }
                if !buf.is_empty() {
                    let _ = tx_chunks.blocking_send(buf.freeze());
                }
                Ok(read)
            })
        };
        let mut send_error = None;
        while let Some(chunk) = rx_chunks.recv().await {
            if let Err(e) = sink.send(chunk).await {
                send_error = Some(e);
                break;
            }
        }
        drop(rx_chunks);
        let produced = producer
            .await
            .map_err(|e| LoadError::Database(format!("converting {} failed: {e}", file.uri)))?;
        if let Some(e) = send_error {
            // The server refused the data: its message names the problem.
            return Err(LoadError::db(&doing("COPY of"), describe(&e)));
        }
        // Too many rejects end the COPY without committing anything (the
        // sink is dropped unfinished, which aborts it, then the transaction
        // rolls back).
        let read = produced?;
        let copied = sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| LoadError::db(&doing("COPY of"), describe(&e)))?;
        let rejects = read.rejects.len() as u64;
        check_count(file, copied, rejects)?;
        if copied != read.rows {
            return Err(LoadError::Database(format!(
                "{}: COPY stored {copied} rows of {} sent",
                file.uri, read.rows
            )));
        }
        if !read.rejects.is_empty() {
            // The rejects go in with one more COPY, in the same transaction.
            let mut buf = BytesMut::new();
            let mut itoa = itoa_buf();
            for r in &read.rejects {
                for (i, field) in [
                    Some(file.uri.as_str()),
                    Some(opened.version.as_str()),
                    None,
                    Some(table.table.as_str()),
                    r.column.as_deref(),
                    Some(r.reason.as_str()),
                    Some(r.message.as_str()),
                    Some(r.excerpt.as_str()),
                    Some(stamp.as_str()),
                ]
                .into_iter()
                .enumerate()
                {
                    if i > 0 {
                        buf.put_u8(b'\t');
                    }
                    match (i, field) {
                        (2, _) => buf.put_slice(itoa_fmt(&mut itoa, r.line as i64)),
                        (_, Some(v)) => escape(&mut buf, v),
                        (_, None) => buf.put_slice(b"\\N"),
                    }
                }
                buf.put_u8(b'\n');
            }
            let sink = tx
                .copy_in::<_, Bytes>(&format!(
                    "COPY {rejects_table} ({REJECTS_COLUMNS}) FROM STDIN"
                ))
                .await
                .map_err(|e| LoadError::db(&doing("recording the rejects of"), describe(&e)))?;
            let mut sink = std::pin::pin!(sink);
            sink.send(buf.freeze())
                .await
                .map_err(|e| LoadError::db(&doing("recording the rejects of"), describe(&e)))?;
            sink.as_mut()
                .finish()
                .await
                .map_err(|e| LoadError::db(&doing("recording the rejects of"), describe(&e)))?;
        }
        tx.execute(
            &format!(
                "INSERT INTO {ledger} ({LEDGER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (file) DO UPDATE SET version = excluded.version,
                   table_name = excluded.table_name, rows = excluded.rows,
                   manifest = excluded.manifest, loaded_at = excluded.loaded_at,
                   routed_at = excluded.routed_at, rejects = excluded.rejects,
                   schema_version = excluded.schema_version"
            ),
            &[
                &file.uri,
                &opened.version,
                &table.table,
                &(copied as i64),
                &file.manifest,
                &loaded_at,
                &file.routed_at,
                &(rejects as i64),
                &job.schema_version,
            ],
        )
        .await
        .map_err(|e| LoadError::db(&doing("recording in the ledger"), describe(&e)))?;
        tx.commit()
            .await
            .map_err(|e| LoadError::db(&doing("committing"), describe(&e)))?;
        Ok(LoadOutcome::Loaded {
            rows: copied,
            replaced,
            rejects: RejectSummary::of(&read.rejects),
            drift: read.drift,
        })
    }

    /// Removes a file's rows and its ledger entry, in one transaction.
    pub async fn forget_file(&mut self, uri: &str, table: &str) -> Result<u64, LoadError> {
        let ledger = self.ledger();
        let name = qualified(table, Dialect::Postgres, &self.schema);
        let tx = self
            .client
            .transaction()
            .await
            .map_err(db("forgetting a file"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&uri],
        )
        .await
        .map_err(db("locking to forget a file"))?;
        let n = tx
            .execute(
                &format!("DELETE FROM {name} WHERE _routed_file = $1"),
                &[&uri],
            )
            .await
            .map_err(db("forgetting a file's rows"))?;
        for t in [
            ledger,
            qualified(REJECTS_TABLE, Dialect::Postgres, &self.schema),
        ] {
            tx.execute(&format!("DELETE FROM {t} WHERE file = $1"), &[&uri])
                .await
                .map_err(db("forgetting a file"))?;
        }
        tx.commit().await.map_err(db("forgetting a file"))?;
        Ok(n)
    }

    pub async fn applied_migrations(&mut self) -> Result<Vec<(i64, String, String)>, LoadError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT version, name, checksum FROM \"{}\".{MIGRATIONS_TABLE} ORDER BY version",
                    self.schema
                ),
                &[],
            )
            .await
            .map_err(db("reading migrations"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    pub async fn apply_migration(
        &mut self,
        version: i64,
        name: &str,
        checksum: &str,
        sql: &str,
    ) -> Result<(), LoadError> {
        let schema = self.schema.clone();
        let tx = self
            .client
            .transaction()
            .await
            .map_err(db("starting migration"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('logrouter.meta', 0))",
            &[],
        )
        .await
        .map_err(db("locking to migrate"))?;
        let done = tx
            .query_opt(
                &format!("SELECT 1 FROM \"{schema}\".{MIGRATIONS_TABLE} WHERE version = $1"),
                &[&version],
            )
            .await
            .map_err(db("reading migrations"))?;
        if done.is_some() {
            // Another loader applied it while this one waited for the lock.
            return Ok(());
        }
        tx.batch_execute(&format!("SET LOCAL search_path TO \"{schema}\""))
            .await
            .map_err(db("setting search_path"))?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| LoadError::db(&format!("migration {name}"), describe(&e)))?;
        tx.execute(
            &format!("INSERT INTO \"{schema}\".{MIGRATIONS_TABLE} (version, name, checksum) VALUES ($1, $2, $3)"),
            &[&version, &name, &checksum],
        )
        .await
        .map_err(db("recording migration"))?;
        tx.commit().await.map_err(db("committing migration"))
    }

    pub async fn query_text(&mut self, sql: &str) -> Result<Vec<Vec<String>>, LoadError> {
        let msgs = self.client.simple_query(sql).await.map_err(db("query"))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_owned())
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }
}

/// Integers as text through `itoa` (already in the build through
/// serde_json): `fmt`'s machinery showed in profiles of every row.
type ItoaBuf = itoa::Buffer;

fn itoa_buf() -> ItoaBuf {
    itoa::Buffer::new()
}

fn itoa_fmt(buf: &mut ItoaBuf, v: i64) -> &[u8] {
    buf.format(v).as_bytes()
}

/// One cell in COPY text format.
fn encode(buf: &mut BytesMut, c: &Cell<'_>, itoa: &mut ItoaBuf) {
    match c {
        Cell::Null => buf.put_slice(b"\\N"),
        Cell::Bool(true) => buf.put_u8(b't'),
        Cell::Bool(false) => buf.put_u8(b'f'),
        Cell::Int(v) => buf.put_slice(itoa_fmt(itoa, *v)),
        // ryu: the shortest text that reads back as the same double (what
        // `Display` gives, in other words, without `fmt`'s machinery).
        Cell::Float(v) => buf.put_slice(ryu::Buffer::new().format_finite(*v).as_bytes()),
        Cell::Text(s) => escape(buf, s),
    }
}

/// Text with COPY's escapes: backslash, tab, newline and carriage return,
/// copied in runs between them ([`logrouter::scan`]).
fn escape(buf: &mut BytesMut, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        let i = start + logrouter::scan::COPY_TEXT.find(&bytes[start..]);
        buf.put_slice(&bytes[start..i]);
        let Some(&b) = bytes.get(i) else { return };
        buf.put_slice(match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => b"\\r",
        });
        start = i + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A server that accepts the connection and never answers its start-up
    /// fails the connect within twice `connect_timeout`, naming the server,
    /// instead of hanging the loader for good.
    #[tokio::test]
    async fn a_server_that_never_answers_fails_the_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                held.push(conn);
            }
        });
        let url =
            format!("postgres://u:secret@127.0.0.1:{port}/db?connect_timeout=1&sslmode=disable");
        let target = PgTarget::parse(&url).unwrap();
        let started = std::time::Instant::now();
        let e = match PgWarehouse::connect(&target, "events").await {
            Ok(_) => panic!("a silent server connected"),
            Err(e) => e.to_string(),
        };
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(e.contains("no answer within 2 s"), "{e}");
        assert!(
            e.contains(&format!("127.0.0.1:{port}")) && !e.contains("secret"),
            "{e}"
        );
    }

    #[test]
    fn copy_text_escapes() {
        let mut buf = BytesMut::new();
        let mut itoa = itoa_buf();
        for c in [
            Cell::Null,
            Cell::Bool(true),
            Cell::Int(-42),
            Cell::Float(1.5),
            Cell::Text(Cow::Borrowed("a\tb\\c\nd\re")),
        ] {
            encode(&mut buf, &c, &mut itoa);
            buf.put_u8(b'|');
        }
        assert_eq!(&buf[..], b"\\N|t|-42|1.5|a\\tb\\\\c\\nd\\re|".as_slice());
    }
}
