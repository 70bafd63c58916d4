//! Amazon Redshift through the Data API (`aws-sdk-redshiftdata`).
//!
//! Redshift loads from S3 itself, so the loader never streams rows here: a
//! file is one `BatchExecuteStatement` (the Data API runs a batch as one
//! transaction):
//!
//! ```text
//! LOCK ledger                                  -- loaders take turns
//! guard: ledger has not this (file, version)   -- else: already loaded
//! CREATE TEMP TABLE logrouter_stage (own columns)
//! COPY logrouter_stage FROM 's3://…part.json.gz' IAM_ROLE '…'
//!      FORMAT AS JSON 's3://…jsonpaths' GZIP TIMEFORMAT 'auto'
//! guard: count(*) of the stage = the manifest's lines
//! DELETE FROM t WHERE _routed_file = file      -- an earlier version's rows
//! INSERT INTO t SELECT stage, file, NULL, GETDATE()
//! DELETE + INSERT the ledger row
//! ```
//!
//! Columns are mapped by a jsonpaths file generated from the schema and
//! uploaded once per table and schema version beside the routed files
//! (`ROOT/_jsonpaths/`, readable by the COPY role, which needs nothing
//! else); a type without a schema is copied whole (`'noshred'`) into its
//! SUPER column. The staging table has the table's own columns and NOT NULL
//! constraints (so COPY itself reports a bad line, with its number, in
//! `sys_load_error_detail`), gives the standard columns their values, and
//! lets the row count be checked before anything is committed. A guard
//! is a `SELECT` that fails with a recognisable cast error when its
//! condition does not hold: a batch has no other way to stop.
//!
//! Every statement carries a ClientToken (the SDK retries with it, so a retry
//! never runs a batch twice), is polled with DescribeStatement with backoff
//! up to `load.statement_timeout_secs` (then cancelled), and a FAILED one is
//! reported with its error; a failed COPY also with the rows of
//! `sys_load_error_detail` (file, line, column, error).
//! `_routed_line` is NULL on Redshift: COPY does not number lines.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::types::{Field, StatusString};
use aws_sdk_redshiftdata::Client;
use logrouter::aws::describe;
use logrouter::location::Location;

pub mod batch;

use batch::{BatchFile, Blame};

use crate::drift::Drift;
use crate::reject::{RejectReason, REJECTS_TABLE};
use crate::schema::{create_table_sql, qualified, Dialect, TableSchema};
use crate::source::RoutedFile;
use crate::warehouse::{
    rejects_table_sql, LedgerEntry, LoadError, LoadJob, LoadOutcome, RejectSummary,
    LEDGER_ADDED_COLUMNS, LEDGER_TABLE, MIGRATIONS_TABLE,
};

/// Where and as whom statements run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedshiftTarget {
    /// Provisioned cluster id, or `None` for Serverless.
    pub cluster: Option<String>,
    /// Serverless workgroup.
    pub workgroup: Option<String>,
    pub database: String,
    pub db_user: Option<String>,
    pub secret_arn: Option<String>,
    /// The role COPY assumes to read the routed files.
    pub iam_role: String,
    pub region: Option<String>,
}

impl RedshiftTarget {
    /// `redshift://CLUSTER/DB?db_user=U&iam_role=ARN[&region=R]`,
    /// `redshift://CLUSTER/DB?secret_arn=ARN&iam_role=ARN`, or
    /// `redshift-serverless://WORKGROUP/DB?iam_role=ARN[&secret_arn=ARN]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let form = "write redshift://CLUSTER_ID/DATABASE?db_user=USER&iam_role=ARN (or secret_arn=ARN instead of db_user), or redshift-serverless://WORKGROUP/DATABASE?iam_role=ARN";
        let (serverless, rest) = if let Some(r) = text.strip_prefix("redshift-serverless://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("redshift://") {
            (false, r)
        } else {
            return Err(form.into());
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (id, database) = path
            .split_once('/')
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| format!("{text:?}: no cluster/workgroup or database; {form}"))?;
        let mut params: HashMap<String, String> = HashMap::new();
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            params.insert(
                k.to_owned(),
                logrouter::percent::decode(v, false)
                    .map_or_else(|| v.to_owned(), |d| d.into_owned()),
            );
        }
        for k in params.keys() {
            if !["db_user", "secret_arn", "iam_role", "region"].contains(&k.as_str()) {
                return Err(format!(
                    "{text:?}: unknown parameter {k:?} (known: db_user, secret_arn, iam_role, region)"
                ));
            }
        }
        let t = RedshiftTarget {
            cluster: (!serverless).then(|| id.to_owned()),
            workgroup: serverless.then(|| id.to_owned()),
            database: database.to_owned(),
            db_user: params.remove("db_user"),
            secret_arn: params.remove("secret_arn"),
            iam_role: params
                .remove("iam_role")
                .ok_or_else(|| format!("{text:?}: iam_role=ARN is required (the role COPY assumes to read the routed files)"))?,
            region: params.remove("region"),
        };
        if !t.iam_role.starts_with("arn:aws") || !t.iam_role.contains(":role/") {
            return Err(format!(
                "{text:?}: iam_role {:?} is not a role ARN (arn:aws:iam::123456789012:role/name)",
                t.iam_role
            ));
        }
        if !serverless && t.db_user.is_none() && t.secret_arn.is_none() {
            return Err(format!("{text:?}: a provisioned cluster needs db_user=USER (temporary credentials) or secret_arn=ARN"));
        }
        Ok(t)
    }
}

/// A SQL string literal. Backslashes are refused (Redshift and PostgreSQL
/// disagree on them); everything the loader quotes is a URI, a version or a
/// name it made.
pub(super) fn lit(s: &str) -> Result<String, LoadError> {
    if s.contains('\\') {
        return Err(LoadError::Database(format!(
            "{s:?}: a backslash cannot be quoted for Redshift; rename the source"
        )));
    }
    Ok(crate::schema::sql_string(s))
}

/// Guards fail with `invalid input syntax for … "<marker>…"`.
const ALREADY: &str = "logrouter: already loaded";

/// Sends an ExecuteStatement or BatchExecuteStatement request (their
/// builders share these setters but no trait) to the target, with a fresh
/// ClientToken, and waits for the statement.
macro_rules! submit {
    ($w:expr, $request:expr, $op:literal) => {{
        let t = &$w.target;
        let out = $request
            .database(&t.database)
            .set_cluster_identifier(t.cluster.clone())
            .set_workgroup_name(t.workgroup.clone())
            .set_db_user(t.db_user.clone())
            .set_secret_arn(t.secret_arn.clone())
            .client_token(client_token())
            .send()
            .await
            .map_err(|e| Failure::from(format!(concat!($op, ": {}"), describe(&e))))?;
        let id = out
            .id()
            .ok_or_else(|| Failure::from("the Data API returned no statement id".to_owned()))?
            .to_owned();
        $w.wait(&id).await
    }};
}

pub struct RedshiftWarehouse {
    client: Client,
    s3: aws_sdk_s3::Client,
    target: RedshiftTarget,
    schema: String,
    timeout: Duration,
    /// jsonpaths files written by this process: (table, root) → S3 URI.
    jsonpaths: HashMap<(String, String), String>,
    /// Tables this process has made sure exist, shared by its connections
    /// (each check is a transaction, and a commit, on Redshift).
    created: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Files loaded in one transaction (`load.redshift_files_per_batch`).
    files_per_batch: usize,
}

/// The longest DescribeStatement waits for a statement (the Data API's
/// maximum is 30 s).
const LONG_POLL_SECS: u64 = 20;

/// Times a batch that failed for a reason of no file's (a serializable
/// isolation violation, a deadlock, throttling) is run again as it is.
const RETRIES: u32 = 5;

static TOKENS: AtomicU64 = AtomicU64::new(0);

/// The process's set of tables known to exist, keyed by
/// [`RedshiftWarehouse::created_key`].
fn created_tables() -> std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>> {
    static CREATED: std::sync::OnceLock<
        std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    > = std::sync::OnceLock::new();
    CREATED.get_or_init(Default::default).clone()
}

fn client_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "logrouter-{}-{nanos}-{}",
        std::process::id(),
        TOKENS.fetch_add(1, Ordering::Relaxed)
    )
}

/// Why a statement did not finish; a failed COPY carries what finds its
/// rows of `sys_load_error_detail`.
struct Failure {
    message: String,
    copy: Option<FailedCopy>,
    /// The index of the batch's statement that failed.
    failed_at: Option<usize>,
}

/// Why a batch failed: the message (a failed COPY's with its rows of
/// `sys_load_error_detail`), and which of its statements failed.
#[derive(Debug)]
pub struct BatchFailure {
    pub message: String,
    pub failed_at: Option<usize>,
}

impl std::fmt::Display for BatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A COPY that failed: its query id, and its session (the batch's process
/// id) and start, since the SYS views' query ids may differ from the ids the
/// Data API reports (AWS: "Improving query identifier tracking using the SYS
/// monitoring views").
struct FailedCopy {
    query_id: i64,
    pid: i64,
    since_epoch_secs: i64,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            copy: None,
            failed_at: None,
        }
    }
}

/// A finished statement: its id (for results) and sub-statement query ids.
struct Done {
    id: String,
    has_result: bool,
    /// Rows each statement of a batch returned or affected (`ResultRows`).
    sub_rows: Vec<i64>,
}

impl RedshiftWarehouse {
    pub async fn connect(
        target: &RedshiftTarget,
        schema: &str,
        sdk: &aws_config::SdkConfig,
        s3: aws_sdk_s3::Client,
        timeout: Duration,
        files_per_batch: usize,
    ) -> Result<Self, LoadError> {
        let mut conf = aws_sdk_redshiftdata::config::Builder::from(sdk);
        if let Some(r) = &target.region {
            conf = conf.region(aws_sdk_redshiftdata::config::Region::new(r.clone()));
        }
        let w = Self {
            client: Client::from_conf(conf.build()),
            s3,
            target: target.clone(),
            schema: schema.to_owned(),
            timeout,
            jsonpaths: Default::default(),
            created: created_tables(),
            files_per_batch,
        };
        let s = &w.schema;
        let prepare = [
            format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""),
            format!(
                "CREATE TABLE IF NOT EXISTS \"{s}\".{LEDGER_TABLE} (file VARCHAR(4096) NOT NULL, version VARCHAR(256) NOT NULL, table_name VARCHAR(64) NOT NULL, rows BIGINT NOT NULL, manifest VARCHAR(4096) NOT NULL, loaded_at TIMESTAMP NOT NULL, routed_at VARCHAR(32) NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS \"{s}\".{MIGRATIONS_TABLE} (version BIGINT NOT NULL, name VARCHAR(256) NOT NULL, checksum VARCHAR(64) NOT NULL, applied_at TIMESTAMP NOT NULL)"
            ),
            rejects_table_sql(Dialect::Redshift, s),
        ];
        // Two loaders starting at once both run CREATE SCHEMA/TABLE IF NOT
        // EXISTS; one may fail on the other's new entry (issue #13's known
        // defect): once it exists, the statements pass.
        let mut tries = 0;
        let prepared = loop {
            match w.batch(&prepare).await {
                Err(e)
                    if tries < 3
                        && (e.message.contains("already exists")
                            || e.message.contains("duplicate key")) =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                other => break other,
            }
        };
        prepared.map_err(|e| LoadError::db("preparing the ledger on Redshift", e))?;
        w.upgrade_ledger()
            .await
            .map_err(|e| LoadError::db("upgrading the ledger on Redshift", e))?;
        Ok(w)
    }

    /// Adds the ledger columns of later releases to a ledger that lacks them
    /// (Redshift has no `ADD COLUMN IF NOT EXISTS`; each ALTER runs alone).
    async fn upgrade_ledger(&self) -> Result<(), String> {
        let have = self
            .query(&format!(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = {} AND table_name = '{LEDGER_TABLE}'",
                crate::schema::sql_string(&self.schema)
            ))
            .await?;
        for (name, types) in LEDGER_ADDED_COLUMNS {
            if !have.iter().any(|r| r[0] == name) {
                let sql = format!(
                    "ALTER TABLE {} ADD COLUMN {name} {}",
                    self.ledger(),
                    types[2]
                );
                if let Err(f) = self.execute_raw(&sql).await {
                    // Another loader may have added it meanwhile.
                    if !f.message.contains("already exists") {
                        return Err(f.message);
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs one statement and waits for it.
    async fn execute_raw(&self, sql: &str) -> Result<Done, Failure> {
        let request = self.client.execute_statement().sql(sql);
        submit!(self, request, "ExecuteStatement")
    }

    /// Runs statements as one transaction and waits for them; a failed COPY
    /// is reported with its rows of `sys_load_error_detail`.
    async fn batch(&self, sqls: &[String]) -> Result<Done, BatchFailure> {
        match self.batch_raw(sqls).await {
            Ok(d) => Ok(d),
            Err(f) => {
                let failed_at = f.failed_at;
                Err(BatchFailure {
                    message: self.explain(f).await,
                    failed_at,
                })
            }
        }
    }

    async fn explain(&self, f: Failure) -> String {
        match &f.copy {
            Some(c) => format!("{}{}", f.message, self.load_errors(c).await),
            None => f.message,
        }
    }

    async fn batch_raw(&self, sqls: &[String]) -> Result<Done, Failure> {
        let request = self
            .client
            .batch_execute_statement()
            .set_sqls(Some(sqls.to_vec()));
        submit!(self, request, "BatchExecuteStatement")
    }

    /// Polls DescribeStatement with backoff until the statement ends or the
    /// timeout passes (then cancels it).
    async fn wait(&self, id: &str) -> Result<Done, Failure> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        // DescribeStatement waits (up to 30 s) for the statement to end:
        // no polling delay and fewer calls. When too many requests wait
        // at once the Data API refuses (ActiveWaitingRequestsExceeded):
        // then this connection polls with backoff instead.
        let mut long_poll = true;
        loop {
            let wait = if long_poll {
                self.timeout
                    .saturating_sub(start.elapsed())
                    .as_secs()
                    .min(LONG_POLL_SECS) as i32
            } else {
                0
            };
            let d = match self
                .client
                .describe_statement()
                .id(id)
                .set_wait_time_seconds((wait > 0).then_some(wait))
                .send()
                .await
            {
                Ok(d) => d,
                Err(e) if long_poll && describe(&e).contains("ActiveWaitingRequestsExceeded") => {
                    long_poll = false;
                    continue;
                }
                Err(e) => {
                    return Err(Failure::from(format!(
                        "DescribeStatement {id}: {}",
                        describe(&e)
                    )))
                }
            };
            match d.status() {
                Some(StatusString::Finished) => {
                    return Ok(Done {
                        id: id.to_owned(),
                        has_result: d.has_result_set().unwrap_or(false),
                        sub_rows: d.sub_statements().iter().map(|s| s.result_rows()).collect(),
                    })
                }
                Some(StatusString::Failed) => {
                    let mut msg = d.error().unwrap_or("(no error given)").to_owned();
                    let mut copy_query_id = None;
                    let pid = d.redshift_pid();
                    let since_epoch_secs = d.created_at().map_or(0, |t| t.secs());
                    let failed_at = d.sub_statements().iter().position(|s| {
                        s.status()
                            .is_some_and(|st| st.as_str() == "FAILED")
                    });
                    let failed = failed_at.map(|i| &d.sub_statements()[i]);
                    if let Some(s) = failed {
                        if let Some(e) = s.error() {
                            msg = e.to_owned();
                        }
                        let q = s.query_string().unwrap_or_default();
                        msg = format!("{msg} (in: {})", excerpt(q));
                        let is_copy = |q: &str| q.trim_start().to_ascii_uppercase().starts_with("COPY");
                        if is_copy(q) {
                            copy_query_id = Some(s.redshift_query_id());
                        } else if msg.contains(batch::TOO_MANY) {
                            // The COPY passed; its load errors say why the
                            // limit guard stopped the batch.
                            copy_query_id = d
                                .sub_statements()
                                .iter()
                                .find(|s| s.query_string().is_some_and(is_copy))
                                .map(|s| s.redshift_query_id());
                        }
                    } else if d
                        .query_string()
                        .is_some_and(|q| q.trim_start().to_ascii_uppercase().starts_with("COPY"))
                    {
                        copy_query_id = Some(d.redshift_query_id());
                    }
                    return Err(Failure {
                        message: msg,
                        copy: copy_query_id.map(|query_id| FailedCopy {
                            query_id,
                            pid,
                            since_epoch_secs,
                        }),
                        failed_at,
                    });
                }
                Some(StatusString::Aborted) => {
                    return Err(Failure::from(format!(
                        "statement {id} was aborted ({}): cancelled by an operator or by Redshift; retry",
                        d.error().unwrap_or("no reason given")
                    )))
                }
                _ => {}
            }
            if start.elapsed() > self.timeout {
                let _ = self.client.cancel_statement().id(id).send().await;
                return Err(Failure::from(format!(
                    "statement {id} did not finish within {} s (load.statement_timeout_secs); it was cancelled",
                    self.timeout.as_secs()
                )));
            }
            if wait == 0 {
                tokio::time::sleep(pause).await;
                pause = (pause * 3 / 2).min(Duration::from_secs(2));
            }
        }
    }

    /// The first rows of `sys_load_error_detail` for a failed COPY.
    async fn load_errors(&self, copy: &FailedCopy) -> String {
        let FailedCopy {
            query_id,
            pid,
            since_epoch_secs,
        } = copy;
        let sql = format!(
            "SELECT file_name, line_number, column_name, error_message FROM sys_load_error_detail WHERE query_id = {query_id} OR (session_id = {pid} AND start_time >= TIMESTAMP 'epoch' + {since_epoch_secs} * INTERVAL '1 second') ORDER BY line_number LIMIT 5"
        );
        match self.query(&sql).await {
            Ok(rows) if !rows.is_empty() => rows
                .iter()
                .map(|r| {
                    format!(
                        "\n  {} line {} column {}: {}",
                        r[0].trim(),
                        r[1],
                        r[2].trim(),
                        r[3].trim()
                    )
                })
                .collect(),
            Ok(_) => " (sys_load_error_detail has no rows for it)".to_owned(),
            Err(e) => format!(" (reading sys_load_error_detail failed: {e})"),
        }
    }

    /// Runs a query and returns its rows as text (NULL as "NULL").
    async fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, String> {
        let done = self.execute_raw(sql).await.map_err(|f| f.message)?;
        if !done.has_result {
            return Ok(Vec::new());
        }
        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_statement_result()
                .id(&done.id)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| format!("GetStatementResult: {}", describe(&e)))?;
            for r in page.records() {
                rows.push(
                    r.iter()
                        .map(|f| match f {
                            Field::StringValue(s) => s.clone(),
                            Field::LongValue(v) => v.to_string(),
                            Field::DoubleValue(v) => v.to_string(),
                            Field::BooleanValue(v) => v.to_string(),
                            Field::IsNull(_) => "NULL".to_owned(),
                            _ => "?".to_owned(),
                        })
                        .collect(),
                );
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(rows);
            }
        }
    }

    /// A table's key in [`created_tables`]: where it is, and its name.
    fn created_key(&self, table: &str) -> String {
        let t = &self.target;
        format!(
            "{}/{}/{}/{}/{table}",
            t.cluster.as_deref().unwrap_or(""),
            t.workgroup.as_deref().unwrap_or(""),
            t.database,
            self.schema
        )
    }

    fn ledger(&self) -> String {
        format!("\"{}\".{LEDGER_TABLE}", self.schema)
    }

    async fn ensure_table(&mut self, table: &TableSchema) -> Result<(), LoadError> {
        let key = self.created_key(&table.table);
        if self.created.lock().unwrap().contains(&key) {
            return Ok(());
        }
        self.batch(&create_table_sql(table, Dialect::Redshift, &self.schema))
            .await
            .map_err(|e| LoadError::db(&format!("creating {}", table.table), e))?;
        self.created.lock().unwrap().insert(key);
        Ok(())
    }

    /// The jsonpaths file of `table` beside the routed files, uploaded once
    /// per schema version (its name carries a hash of its content).
    async fn jsonpaths(
        &mut self,
        file: &RoutedFile,
        table: &TableSchema,
    ) -> Result<String, LoadError> {
        let Location::S3 { bucket, key } = &file.location else {
            return Err(LoadError::Database("Redshift loads from S3 only".into()));
        };
        let root = crate::source::manifest_of(key)
            .map(|(r, _)| r)
            .unwrap_or_default();
        let cache_key = (table.table.clone(), format!("{bucket}/{root}"));
        if let Some(uri) = self.jsonpaths.get(&cache_key) {
            return Ok(uri.clone());
        }
        let paths: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let segs: String = c
                    .path
                    .iter()
                    .map(|s| format!("['{}']", s.replace('\\', "\\\\").replace('\'', "\\'")))
                    .collect();
                format!("${segs}")
            })
            .collect();
        let body = serde_json::to_vec_pretty(&serde_json::json!({ "jsonpaths": paths }))
            .expect("jsonpaths serialise");
        use sha2::Digest;
        let hash: String = sha2::Sha256::digest(&body)
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        let jkey = if root.is_empty() {
            format!("_jsonpaths/{}-{hash}.json", table.table)
        } else {
            format!("{root}/_jsonpaths/{}-{hash}.json", table.table)
        };
        let uri = format!("s3://{bucket}/{jkey}");
        self.s3
            .put_object()
            .bucket(bucket)
            .key(&jkey)
            .body(body.into())
            .send()
            .await
            .map_err(|e| LoadError::db(&format!("writing {uri}"), describe(&e)))?;
        self.jsonpaths.insert(cache_key, uri.clone());
        Ok(uri)
    }

    /// Loads `jobs` (files of one table, each with the version COPY will
    /// read) in as few transactions as the Data API allows (see
    /// [`batch`]); one outcome per job, in order. A failed batch is loaded
    /// again without the file it names, retried as it is after a
    /// serializable isolation violation, or else split in two, so one bad
    /// file fails alone.
    pub async fn load_files(
        &mut self,
        jobs: &[(LoadJob, String)],
    ) -> Vec<Result<LoadOutcome, LoadError>> {
        let mut out: Vec<Option<Result<LoadOutcome, LoadError>>> =
            (0..jobs.len()).map(|_| None).collect();
        let Some((first, _)) = jobs.first() else {
            return Vec::new();
        };
        let table = first.table.clone();
        let fail_all = |e: &LoadError| LoadError::Database(e.to_string());
        let prepared = async {
            self.ensure_table(&table).await?;
            let schemaless = table.columns.len() == 1 && table.columns[0].path.is_empty();
            if schemaless {
                Ok(None)
            } else {
                self.jsonpaths(&first.file, &table).await.map(Some)
            }
        }
        .await;
        let jsonpaths = match prepared {
            Ok(j) => j,
            Err(e) => return jobs.iter().map(|_| Err(fail_all(&e))).collect(),
        };
        // What the ledger has of them, read before (outside) the batch: the
        // files already loaded are not sent, the others report what they
        // replaced. The batch checks again under the ledger's lock.
        let prev = match self.ledger_entries(jobs).await {
            Ok(p) => p,
            Err(e) => return jobs.iter().map(|_| Err(fail_all(&e))).collect(),
        };
        let mut pending = Vec::new();
        for (i, (job, version)) in jobs.iter().enumerate() {
            if !matches!(job.file.location, Location::S3 { .. }) {
                out[i] = Some(Err(LoadError::Database(format!(
                    "{}: Redshift COPY reads from S3; route to s3://… (or load local files into sqlite:/postgres://)",
                    job.file.uri
                ))));
            } else if let Err(e) = lit(&job.file.uri) {
                out[i] = Some(Err(e));
            } else if prev
                .get(&job.file.uri)
                .is_some_and(|(entry, _)| job.done(version, entry))
            {
                out[i] = Some(Ok(LoadOutcome::AlreadyLoaded));
            } else {
                pending.push(i);
            }
        }
        // Batches of at most files_per_batch files, each loaded until every
        // file of it has an outcome.
        // Never one file twice in a batch (its rows would go in twice): a
        // repeat goes to a later batch, and finds itself loaded. Nor two
        // files whose load errors could not be told apart (the same first
        // 256 bytes: sys_load_error_detail.file_name).
        let per = self.files_per_batch.clamp(1, batch::MAX_FILES);
        let mut queue: std::collections::VecDeque<Vec<usize>> = Default::default();
        for i in pending {
            let key = batch::file_key(&jobs[i].0.file.uri);
            let slot = queue.iter_mut().find(|g| {
                g.len() < per
                    && g.iter()
                        .all(|&j| batch::file_key(&jobs[j].0.file.uri) != key)
            });
            match slot {
                Some(g) => g.push(i),
                None => queue.push_back(vec![i]),
            }
        }
        while let Some(group) = queue.pop_front() {
            let mut group = group;
            let mut tries = 0u32;
            while !group.is_empty() {
                let files: Vec<BatchFile<'_>> = group
                    .iter()
                    .map(|&i| BatchFile {
                        job: &jobs[i].0,
                        version: &jobs[i].1,
                    })
                    .collect();
                let sql = match batch::batch_sql(
                    &files,
                    &self.schema,
                    &self.target.iam_role,
                    jsonpaths.as_deref(),
                ) {
                    Ok(s) => s,
                    Err(e) if group.len() > 1 => {
                        // Too big a statement: halve the batch.
                        let half = group.split_off(group.len() / 2);
                        queue.push_front(half);
                        let _ = e;
                        continue;
                    }
                    Err(e) => {
                        out[group[0]] = Some(Err(e));
                        break;
                    }
                };
                match self.batch(&sql.sqls).await {
                    Ok(done) => {
                        let rejected = done
                            .sub_rows
                            .get(sql.rejects_insert_at)
                            .copied()
                            .unwrap_or(0)
                            .max(0);
                        let summaries = if rejected > 0 {
                            self.reject_summaries(&files).await
                        } else {
                            Default::default()
                        };
                        for &i in &group {
                            let (job, _) = &jobs[i];
                            let rejects: RejectSummary =
                                summaries.get(&job.file.uri).cloned().unwrap_or_default();
                            out[i] = Some(Ok(LoadOutcome::Loaded {
                                rows: job.file.lines - rejects.total.min(job.file.lines),
                                replaced: prev.get(&job.file.uri).map(|(_, rows)| *rows),
                                rejects,
                                drift: Drift::default(),
                            }));
                        }
                        group.clear();
                    }
                    Err(f) => {
                        let blame = batch::attribute(&f.message, f.failed_at, &sql);
                        let file_error = |n: usize| -> (usize, Result<LoadOutcome, LoadError>) {
                            let (job, _) = &jobs[group[n]];
                            let file = job.file.uri.clone();
                            let e = match &blame {
                                Blame::Already(_) => return (n, Ok(LoadOutcome::AlreadyLoaded)),
                                Blame::Count { rows, rejects, .. } => LoadError::Count {
                                    file,
                                    expected: job.file.lines,
                                    loaded: *rows,
                                    rejects: *rejects,
                                },
                                Blame::TooMany(_) => LoadError::TooManyRejects {
                                    file,
                                    table: job.table.table.clone(),
                                    limit: job.max_rejects,
                                    first: f.message.clone(),
                                },
                                Blame::Copy(_) if f.message.contains("Load into table") => {
                                    LoadError::TooManyRejects {
                                        file,
                                        table: job.table.table.clone(),
                                        limit: job.max_rejects,
                                        first: f.message.clone(),
                                    }
                                }
                                _ => LoadError::Database(format!(
                                    "{file}: loading into {} failed: {}",
                                    job.table.table, f.message
                                )),
                            };
                            (n, Err(e))
                        };
                        match blame {
                            Blame::Already(n)
                            | Blame::Count { n, .. }
                            | Blame::TooMany(n)
                            | Blame::Copy(n)
                                if n < group.len() =>
                            {
                                let (n, r) = file_error(n);
                                tracing::debug!(file = %jobs[group[n]].0.file.uri, "left out of its batch");
                                out[group[n]] = Some(r);
                                group.remove(n);
                            }
                            _ if batch::retryable(&f.message) && tries < RETRIES => {
                                tries += 1;
                                let pause = Duration::from_millis(200 << tries.min(6));
                                tracing::warn!(table = %table.table, files = group.len(), tries, error = %f.message, "batch retried");
                                tokio::time::sleep(pause).await;
                            }
                            _ if group.len() > 1 => {
                                tracing::warn!(table = %table.table, files = group.len(), error = %f.message, "batch failed for no one file: split in two");
                                let half = group.split_off(group.len() / 2);
                                queue.push_front(half);
                            }
                            _ => {
                                let (n, r) = file_error(0);
                                out[group[n]] = Some(r);
                                group.clear();
                            }
                        }
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(LoadError::Database("not loaded (a bug)".into()))))
            .collect()
    }

    /// The ledger's rows of `jobs`' files: (entry, rows).
    async fn ledger_entries(
        &self,
        jobs: &[(LoadJob, String)],
    ) -> Result<HashMap<String, (LedgerEntry, u64)>, LoadError> {
        let mut out = HashMap::new();
        for chunk in jobs.chunks(200) {
            let list: Vec<String> = chunk
                .iter()
                .filter_map(|(j, _)| lit(&j.file.uri).ok())
                .collect();
            if list.is_empty() {
                continue;
            }
            let rows = self
                .query(&format!(
                    "SELECT file, version, rows, routed_at, schema_version FROM {} WHERE file IN ({})",
                    self.ledger(),
                    list.join(", ")
                ))
                .await
                .map_err(|e| LoadError::db("reading the ledger", e))?;
            for r in rows {
                out.insert(
                    r[0].clone(),
                    (
                        LedgerEntry {
                            version: r[1].clone(),
                            routed_at: r[3].clone(),
                            schema_version: r[4].clone(),
                        },
                        r[2].parse().unwrap_or(0),
                    ),
                );
            }
        }
        Ok(out)
    }

    /// Committed files' rejects, counted by reason, for the summary.
    async fn reject_summaries(&self, files: &[BatchFile<'_>]) -> HashMap<String, RejectSummary> {
        let list: Vec<String> = files
            .iter()
            .filter_map(|f| lit(&f.job.file.uri).ok())
            .collect();
        let rejects = qualified(REJECTS_TABLE, Dialect::Redshift, &self.schema);
        let rows = self
            .query(&format!(
                "SELECT file, reason, count(*), min(line) FROM {rejects} WHERE file IN ({}) GROUP BY file, reason ORDER BY 1, 4",
                list.join(", ")
            ))
            .await
            .unwrap_or_default();
        let mut out: HashMap<String, RejectSummary> = HashMap::new();
        for r in &rows {
            let s = out.entry(r[0].clone()).or_default();
            let n: u64 = r[2].parse().unwrap_or(0);
            s.total += n;
            if let Some(reason) = RejectReason::parse(&r[1]) {
                *s.by_reason.entry(reason).or_default() += n;
            }
            if s.first.is_none() {
                s.first = Some(format!("line {} ({})", r[3], r[1]));
            }
        }
        out
    }

    /// Removes a file's rows and its ledger entry, in one transaction.
    pub async fn forget_file(&mut self, uri: &str, table: &str) -> Result<u64, LoadError> {
        let f = lit(uri)?;
        let ledger = self.ledger();
        let name = qualified(table, Dialect::Redshift, &self.schema);
        // The Data API reports no row counts for a batch: the ledger has it.
        let rows = self
            .query(&format!("SELECT rows FROM {ledger} WHERE file = {f}"))
            .await
            .map_err(|e| LoadError::db(&format!("forgetting {uri}"), e))?
            .first()
            .and_then(|r| r[0].parse().ok())
            .unwrap_or(0);
        let rejects = qualified(REJECTS_TABLE, Dialect::Redshift, &self.schema);
        // Locks in the batches' order: the event table, then the ledger.
        self.batch(&[
            format!("DELETE FROM {name} WHERE _routed_file = {f}"),
            format!("LOCK {ledger}"),
            format!("DELETE FROM {rejects} WHERE file = {f}"),
            format!("DELETE FROM {ledger} WHERE file = {f}"),
        ])
        .await
        .map_err(|e| LoadError::db(&format!("forgetting {uri}"), e))?;
        Ok(rows)
    }

    pub async fn applied_migrations(&mut self) -> Result<Vec<(i64, String, String)>, LoadError> {
        let rows = self
            .query(&format!(
                "SELECT version, name, checksum FROM \"{}\".{MIGRATIONS_TABLE} ORDER BY version",
                self.schema
            ))
            .await
            .map_err(|e| LoadError::db("reading migrations", e))?;
        Ok(rows
            .into_iter()
            .map(|r| (r[0].parse().unwrap_or(-1), r[1].clone(), r[2].clone()))
            .collect())
    }

    pub async fn apply_migration(
        &mut self,
        version: i64,
        name: &str,
        checksum: &str,
        sql: &str,
    ) -> Result<(), LoadError> {
        let s = &self.schema;
        let mut sqls = vec![
            format!("LOCK \"{s}\".{MIGRATIONS_TABLE}"),
            format!("SELECT CASE WHEN count(*) = 0 THEN 1 ELSE CAST('{ALREADY} ' || count(*) AS INTEGER) END FROM \"{s}\".{MIGRATIONS_TABLE} WHERE version = {version}"),
            format!("SET search_path TO \"{s}\""),
        ];
        sqls.extend(split_statements(sql));
        sqls.push(format!(
            "INSERT INTO \"{s}\".{MIGRATIONS_TABLE} VALUES ({version}, {}, {}, GETDATE())",
            lit(name)?,
            lit(checksum)?
        ));
        match self.batch(&sqls).await {
            Ok(_) => Ok(()),
            Err(e) if e.message.contains(ALREADY) => Ok(()),
            Err(e) => Err(LoadError::db(&format!("migration {name}"), e)),
        }
    }

    pub async fn query_text(&mut self, sql: &str) -> Result<Vec<Vec<String>>, LoadError> {
        self.query(sql).await.map_err(|e| LoadError::db("query", e))
    }
}

fn excerpt(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 160 {
        format!("{}…", one_line.chars().take(160).collect::<String>())
    } else {
        one_line
    }
}

/// Splits a migration into statements at `;` outside quotes and comments
/// (the Data API takes one statement per entry of a batch).
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    let (mut quote, mut ident) = (false, false);
    while let Some(c) = chars.next() {
        match c {
            '\'' if !ident => quote = !quote,
            '"' if !quote => ident = !ident,
            '-' if !quote && !ident && chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                cur.push('\n');
                continue;
            }
            ';' if !quote && !ident => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_owned());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = RedshiftTarget::parse(
            "redshift://my-cluster/dev?db_user=loader&iam_role=arn:aws:iam::123456789012:role/copy&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(t.cluster.as_deref(), Some("my-cluster"));
        assert_eq!(t.database, "dev");
        assert_eq!(t.db_user.as_deref(), Some("loader"));
        assert_eq!(t.region.as_deref(), Some("eu-west-1"));
        let t = RedshiftTarget::parse(
            "redshift-serverless://wg/dev?iam_role=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fcopy",
        )
        .unwrap();
        assert_eq!(t.workgroup.as_deref(), Some("wg"));
        assert_eq!(t.iam_role, "arn:aws:iam::123456789012:role/copy");
        for (bad, needle) in [
            (
                "redshift://c/dev?iam_role=arn:aws:iam::1:role/r",
                "needs db_user",
            ),
            ("redshift://c/dev?db_user=u", "iam_role=ARN is required"),
            (
                "redshift://c?db_user=u&iam_role=arn:aws:iam::1:role/r",
                "no cluster/workgroup or database",
            ),
            ("redshift://c/d?db_user=u&iam_role=role", "not a role ARN"),
            (
                "redshift://c/d?db_user=u&iam_role=arn:aws:iam::1:role/r&user=x",
                "unknown parameter",
            ),
        ] {
            let e = RedshiftTarget::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn migrations_split_into_statements() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE \"a;b\" (x INT);\n\nCOMMENT ON COLUMN a.x IS 'it''s; fine';\n";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE TABLE \"a;b\" (x INT)".to_owned(),
                "COMMENT ON COLUMN a.x IS 'it''s; fine'".to_owned()
            ]
        );
    }
}
