//! Many routed files of one table in one Redshift transaction.
//!
//! Commits are what a Redshift backfill waits on: they queue cluster-wide
//! (STL_COMMIT_STATS `queuelen`; AWS's sample commit takes about 0.6 s), so
//! one commit per file makes a 30-day backfill of 50 types (36,000 files)
//! 36,000 serialized commits. A batch loads up to [`MAX_FILES`] files of
//! one table with one BatchExecuteStatement (one transaction, one commit),
//! each file still its own COPY into a staging table of its own, so that its
//! rows keep `_routed_file`, its rows + rejects are checked against its
//! manifest, and a re-routed file replaces only its own rows:
//!
//! ```text
//! SET timezone TO 'UTC'                         -- SYSDATE comparable with load errors
//! CREATE TEMP TABLE logrouter_files; INSERT the files (n, file, version, lines…)
//! per file n: CREATE TEMP TABLE logrouter_stage_<n>; COPY … MAXERROR m
//! CREATE TEMP TABLE logrouter_stage_rejects AS  -- the COPYs' load errors, by file
//!   SELECT … FROM sys_load_error_detail JOIN logrouter_files ON file_name
//! guard: no file has more rejects than load.max_rejects_per_file
//! guard: per file, stage rows + rejects = manifest lines
//! DELETE the files' earlier rows; INSERT rows (UNION ALL of the stages)
//! LOCK ledger                                   -- short: the writes and the commit
//! guard: no file already loaded (same version, or a newer route)
//! DELETE the files' earlier rejects; INSERT rejects; DELETE + INSERT their
//! ledger rows
//! ```
//!
//! The one explicit lock is the ledger's, taken after the COPYs (the long
//! part, into temporary stages that nothing else sees) and the event
//! table's writes: batches overlap (`load.redshift_concurrency`), and only
//! their short tails (six statements) and commits take turns, as
//! Redshift's commit queue makes them anyway (issue #27: with statements of
//! 0.2 s or more, the ledger's LOCK, not the commit queue, limits a
//! backfill; each statement moved out of it counts). The event table is
//! never `LOCK`ed (an `ACCESS EXCLUSIVE` lock would make every analyst's
//! query on it wait for the COPYs); its DELETE and INSERT come before the
//! ledger's lock, as in `forget_file`, so locks are always taken in one
//! order (event table, ledger, rejects table): no deadlock. A batch whose
//! ledger guard fails rolls its event-table writes back. Batches of one table take turns in the loader
//! (its scheduler); two loaders on the same files are stopped by the
//! ledger guard. The ledger is read only under its lock: a read before it
//! would make concurrent batches fail each other with serializable
//! isolation violations (error 1023).
//!
//! A guard is a `SELECT` that casts a marker to INTEGER for the first file
//! that breaks it (no row: nothing broken), so a failed batch names its
//! file: [`attribute`] turns the failure into that file's outcome, and the
//! rest of the batch is loaded again without it. The marker starts with as
//! many `0`s as the file's number: where Redshift reports only the first
//! bad character of a cast (`Invalid digit, Value 'x', Pos 3`), its
//! position is the file.

use crate::reject::{RejectReason, MAX_REJECTS_LIMIT, REJECTS_TABLE};
use crate::schema::{qualified, Dialect};
use crate::warehouse::{LoadError, LoadJob, LEDGER_COLUMNS, LEDGER_TABLE, REJECTS_COLUMNS};

use super::lit;

/// Statements of a batch that do not depend on its number of files.
const FIXED_STATEMENTS: usize = 14;
/// `file_key`'s length, in bytes: `sys_load_error_detail.file_name` is
/// `character(256)`.
const FILE_KEY_BYTES: usize = 256;
/// BatchExecuteStatement takes at most 40 statements (Data API quotas).
pub const MAX_STATEMENTS: usize = 40;
/// Files one batch can hold: two statements each (CREATE of its stage and
/// its COPY).
pub const MAX_FILES: usize = (MAX_STATEMENTS - FIXED_STATEMENTS) / 2;
/// A statement is at most 100 KB (Data API quotas).
pub const MAX_STATEMENT_BYTES: usize = 100_000;
/// `sys_load_error_detail.file_name` is `character(256)`.
const FILE_NAME_CHARS: usize = 256;

const FILES: &str = "logrouter_files";
const STAGE_REJECTS: &str = "logrouter_stage_rejects";
/// Markers the guards fail with (`invalid input syntax for … "<marker>…"`).
pub const ALREADY: &str = "logrouter: already loaded file ";
pub const COUNT: &str = "logrouter: count file ";
pub const TOO_MANY: &str = "logrouter: too many rejects file ";

/// One file of a batch: its job and the version COPY will read.
pub struct BatchFile<'a> {
    pub job: &'a LoadJob,
    pub version: &'a str,
}

/// The statements of a batch, and where its COPYs and the INSERT of its
/// rejects are (to attribute a failed COPY, and read the rejects' count).
#[derive(Debug)]
pub struct BatchSql {
    pub sqls: Vec<String>,
    /// `copy_at[i]`: the statement index of file `i`'s COPY.
    pub copy_at: Vec<usize>,
    pub rejects_insert_at: usize,
    /// Where the guards are: too many rejects, already loaded, count.
    guards: [usize; 3],
}

fn stage(n: usize) -> String {
    format!("logrouter_stage_{n}")
}

/// What `sys_load_error_detail.file_name` holds of a file's URI: its first
/// 256 bytes (at a character boundary). Two files of one batch must differ
/// in it, or their load errors could not be told apart.
pub fn file_key(uri: &str) -> &str {
    let mut end = uri.len().min(FILE_KEY_BYTES);
    while !uri.is_char_boundary(end) {
        end -= 1;
    }
    &uri[..end]
}

/// The statements that load `files` (all of one table, as one
/// transaction). `jsonpaths`: the S3 URI of the table's jsonpaths file, or
/// `None` for a schemaless table (the whole event into its one column).
pub fn batch_sql(
    files: &[BatchFile<'_>],
    schema: &str,
    iam_role: &str,
    jsonpaths: Option<&str>,
) -> Result<BatchSql, LoadError> {
    assert!(!files.is_empty() && files.len() <= MAX_FILES);
    let first = files[0].job;
    let table = &first.table;
    let name = qualified(&table.table, Dialect::Redshift, schema);
    let ledger = qualified(LEDGER_TABLE, Dialect::Redshift, schema);
    let rejects = qualified(REJECTS_TABLE, Dialect::Redshift, schema);
    let format = match jsonpaths {
        None => "FORMAT AS JSON 'noshred'".to_owned(),
        Some(uri) => format!("FORMAT AS JSON {}", lit(uri)?),
    };
    let own: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let own = own.join(", ");
    let stage_cols: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let null = if c.nullable { "" } else { " NOT NULL" };
            format!("\"{}\" {}{null}", c.name, c.ty.sql(Dialect::Redshift))
        })
        .collect();
    let stage_cols = stage_cols.join(", ");
    let role = lit(iam_role)?;
    // One more than the limit: AWS's page says both "MAXERROR n fails at n
    // errors" and that n are tolerated; the guard enforces the limit either
    // way. Redshift may report more errors than MAXERROR.
    let maxerror = (first.max_rejects + 1).min(MAX_REJECTS_LIMIT);

    let mut sqls = vec![
        // SYSDATE (the transaction's start) in UTC, as the load errors'
        // start_time is, whatever the user's or database's time zone.
        "SET timezone TO 'UTC'".to_owned(),
        format!("CREATE TEMP TABLE {FILES} (n INTEGER NOT NULL, file VARCHAR(4096) NOT NULL, file_key VARCHAR(1024) NOT NULL, version VARCHAR(256) NOT NULL, lines BIGINT NOT NULL, manifest VARCHAR(4096) NOT NULL, routed_at VARCHAR(32) NOT NULL, schema_version VARCHAR(64) NOT NULL)"),
    ];
    let mut values = Vec::new();
    for (n, f) in files.iter().enumerate() {
        let file = &f.job.file;
        values.push(format!(
            "({n}, {}, {}, {}, {}, {}, {}, {})",
            lit(&file.uri)?,
            lit(file_key(&file.uri))?,
            lit(f.version)?,
            file.lines,
            lit(&file.manifest)?,
            lit(&file.routed_at)?,
            lit(&f.job.schema_version)?
        ));
    }
    sqls.push(format!("INSERT INTO {FILES} VALUES {}", values.join(", ")));
    let mut copy_at = Vec::new();
    for (n, f) in files.iter().enumerate() {
        let uri = lit(&f.job.file.uri)?;
        let compression = if f.job.file.uri.ends_with(".zst") {
            "ZSTD"
        } else {
            "GZIP"
        };
        sqls.push(format!("CREATE TEMP TABLE {} ({stage_cols})", stage(n)));
        copy_at.push(sqls.len());
        sqls.push(format!(
            "COPY {} ({own}) FROM {uri} IAM_ROLE {role} {format} {compression} TIMEFORMAT 'auto' MAXERROR {maxerror}",
            stage(n)
        ));
    }
    // The COPYs' load errors: this session's (a Data API batch is one),
    // since this transaction began, by file. Not by query id: the SYS
    // views' ids may differ from pg_last_copy_id()'s. The view has no raw
    // line (STL_LOAD_ERRORS has, on provisioned clusters only): no excerpt;
    // `loader rejects` prints the line from the routed file.
    sqls.push(format!(
        "CREATE TEMP TABLE {STAGE_REJECTS} AS SELECT f.n AS n, e.line_number AS line_number, MIN(TRIM(e.column_name)) AS column_name, MIN({}) AS reason, LEFT(MIN(TRIM(e.error_message)), 512) AS message FROM sys_load_error_detail e JOIN {FILES} f ON LEFT(TRIM(e.file_name), {FILE_NAME_CHARS}) = f.file_key WHERE e.session_id = pg_backend_pid() AND e.start_time >= SYSDATE AND e.line_number > 0 GROUP BY f.n, e.line_number",
        reason_case()
    ));
    let too_many_at = sqls.len();
    sqls.push(format!(
        "SELECT CAST(REPEAT('0', x.n) || 'x {TOO_MANY}' || x.n || ' rejects ' || x.c AS INTEGER) FROM (SELECT n, count(*) AS c FROM {STAGE_REJECTS} GROUP BY n HAVING count(*) > {} ORDER BY n LIMIT 1) x",
        first.max_rejects
    ));
    let counts: Vec<String> = (0..files.len())
        .map(|n| format!("SELECT {n} AS n, count(*) AS c FROM {}", stage(n)))
        .collect();
    let count_at = sqls.len();
    sqls.push(format!(
        "SELECT CAST(REPEAT('0', x.n) || 'x {COUNT}' || x.n || ' rows ' || x.rows || ' rejects ' || x.rejects AS INTEGER) FROM (SELECT f.n, COALESCE(s.c, 0) AS rows, COALESCE(r.c, 0) AS rejects FROM {FILES} f LEFT JOIN ({}) s ON s.n = f.n LEFT JOIN (SELECT n, count(*) AS c FROM {STAGE_REJECTS} GROUP BY n) r ON r.n = f.n WHERE COALESCE(s.c, 0) + COALESCE(r.c, 0) <> f.lines ORDER BY f.n LIMIT 1) x",
        counts.join(" UNION ALL ")
    ));
    // The event table's rows before the ledger's LOCK (issue #27: the less
    // under it, the less other tables' batches wait): a batch that fails a
    // guard below rolls them back; forget_file takes its locks in the same
    // order (event table, then ledger).
    sqls.push(format!(
        "DELETE FROM {name} WHERE _routed_file IN (SELECT file FROM {FILES})"
    ));
    let inserts: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(n, f)| {
            Ok(format!(
                "SELECT {own}, {}, CAST(NULL AS BIGINT), GETDATE() FROM {}",
                lit(&f.job.file.uri)?,
                stage(n)
            ))
        })
        .collect::<Result<_, LoadError>>()?;
    sqls.push(format!(
        "INSERT INTO {name} ({own}, _routed_file, _routed_line, _loaded_at) {}",
        inserts.join(" UNION ALL ")
    ));
    sqls.push(format!("LOCK {ledger}"));
    let same = if first.reload {
        "l.version = f.version AND l.schema_version = f.schema_version"
    } else {
        "l.version = f.version"
    };
    let already_at = sqls.len();
    sqls.push(format!(
        "SELECT CAST(REPEAT('0', x.n) || 'x {ALREADY}' || x.n AS INTEGER) FROM (SELECT f.n FROM {FILES} f JOIN {ledger} l ON l.file = f.file WHERE ({same}) OR l.routed_at > f.routed_at ORDER BY f.n LIMIT 1) x"
    ));
    sqls.push(format!(
        "DELETE FROM {rejects} WHERE file IN (SELECT file FROM {FILES})"
    ));
    let rejects_insert_at = sqls.len();
    sqls.push(format!(
        "INSERT INTO {rejects} ({REJECTS_COLUMNS}) SELECT f.file, f.version, r.line_number, {}, NULLIF(r.column_name, ''), r.reason, COALESCE(r.message, ''), '', GETDATE() FROM {STAGE_REJECTS} r JOIN {FILES} f ON f.n = r.n",
        lit(&table.table)?
    ));
    sqls.push(format!(
        "DELETE FROM {ledger} WHERE file IN (SELECT file FROM {FILES})"
    ));
    sqls.push(format!(
        "INSERT INTO {ledger} ({LEDGER_COLUMNS}) SELECT f.file, f.version, {}, f.lines - COALESCE(r.c, 0), f.manifest, GETDATE(), f.routed_at, COALESCE(r.c, 0), f.schema_version FROM {FILES} f LEFT JOIN (SELECT n, count(*) AS c FROM {STAGE_REJECTS} GROUP BY n) r ON r.n = f.n",
        lit(&table.table)?
    ));
    debug_assert_eq!(sqls.len(), FIXED_STATEMENTS + 2 * files.len());
    if let Some(big) = sqls.iter().find(|s| s.len() > MAX_STATEMENT_BYTES) {
        return Err(LoadError::Database(format!(
            "a statement of {} bytes is over the Data API's {MAX_STATEMENT_BYTES} (table {} has too many columns for {} files a batch; lower load.redshift_files_per_batch): {}…",
            big.len(),
            table.table,
            files.len(),
            big.chars().take(120).collect::<String>()
        )));
    }
    Ok(BatchSql {
        sqls,
        copy_at,
        rejects_insert_at,
        guards: [too_many_at, already_at, count_at],
    })
}

/// Redshift's load errors (`error_code`, `error_message` of
/// `sys_load_error_detail`) as the loader's stable reject reasons, as one
/// SQL `CASE`. Codes from AWS's "Load error reference"; where a code is
/// shared, the message decides (e.g. 1224 malformed JSON, also for a path
/// through a non-object). Anything unknown is `invalid_json`: the line, not
/// a value, was unreadable.
fn reason_case() -> String {
    let msg = "TRIM(e.error_message)";
    let when: [(String, RejectReason); 14] = [
        ("e.error_code = 1213".into(), RejectReason::MissingRequired),
        (
            format!("{msg} LIKE 'Overflow%' OR e.error_code = 1222"),
            RejectReason::OutOfRange,
        ),
        ("e.error_code = 1204".into(), RejectReason::TooLong),
        (
            format!("e.error_code = 1218 OR {msg} LIKE '%null byte%'"),
            RejectReason::NulCharacter,
        ),
        (
            "e.error_code IN (1205, 1206)".into(),
            RejectReason::InvalidFormat,
        ),
        (
            format!("e.error_code = 1224 AND {msg} LIKE '%Member is not an object%' AND TRIM(e.column_name) = ''"),
            RejectReason::NotAnObject,
        ),
        (
            format!("e.error_code = 1224 AND {msg} LIKE '%Member is not an object%'"),
            RejectReason::WrongType,
        ),
        (
            format!("e.error_code = 1224 AND {msg} LIKE '%deeper%'"),
            RejectReason::TooDeep,
        ),
        (
            format!("e.error_code = 1224 AND {msg} LIKE '%exceeds the max limit%'"),
            RejectReason::LineTooLong,
        ),
        ("e.error_code = 1224".into(), RejectReason::InvalidJson),
        (
            format!("e.error_code = 1220 AND {msg} LIKE 'Multibyte character not supported for CHAR%'"),
            RejectReason::WrongType,
        ),
        (
            "e.error_code IN (1219, 1220, 1221)".into(),
            RejectReason::InvalidUtf8,
        ),
        (
            "e.error_code IN (1207, 1208, 1209, 1210, 1215, 1223)".into(),
            RejectReason::WrongType,
        ),
        ("e.error_code = 1211".into(), RejectReason::InvalidJson),
    ];
    let mut out = String::from("CASE");
    for (cond, reason) in when {
        out.push_str(&format!(" WHEN {cond} THEN '{}'", reason.as_str()));
    }
    out.push_str(&format!(
        " ELSE '{}' END",
        RejectReason::InvalidJson.as_str()
    ));
    out
}

/// What a failed batch says about one of its files.
#[derive(Debug, PartialEq, Eq)]
pub enum Blame {
    /// File `n` is loaded already (another loader was first).
    Already(usize),
    /// File `n`'s rows + rejects are not its manifest's lines.
    Count { n: usize, rows: u64, rejects: u64 },
    /// File `n` has more rejects than the limit.
    TooMany(usize),
    /// File `n`'s COPY failed (more load errors than MAXERROR, or the file
    /// could not be read).
    Copy(usize),
    /// Not one file's doing: retried (serializable isolation, deadlock,
    /// throttling) or split.
    Batch,
}

/// Which file a failed batch's error names, from its message and the
/// index of the statement that failed.
pub fn attribute(message: &str, failed_at: Option<usize>, sql: &BatchSql) -> Blame {
    let number_after = |marker: &str| -> Option<u64> {
        message
            .split(marker)
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    if let Some(n) = number_after(ALREADY) {
        return Blame::Already(n as usize);
    }
    if let Some(n) = number_after(COUNT) {
        return Blame::Count {
            n: n as usize,
            rows: number_after(" rows ").unwrap_or(0),
            rejects: number_after(" rejects ").unwrap_or(0),
        };
    }
    if let Some(n) = number_after(TOO_MANY) {
        return Blame::TooMany(n as usize);
    }
    // A serializable isolation violation may hit any statement, a COPY
    // too: not the file's doing.
    if retryable(message) {
        return Blame::Batch;
    }
    if let Some(n) = failed_at.and_then(|at| sql.copy_at.iter().position(|c| *c == at)) {
        return Blame::Copy(n);
    }
    // A guard's cast reported as Redshift's compute nodes do, with the
    // position of its first bad character only: the file's number.
    let pos = number_after("Pos ").map(|n| n as usize);
    match (failed_at, pos) {
        (Some(at), Some(n)) if at == sql.guards[0] => Blame::TooMany(n),
        (Some(at), Some(n)) if at == sql.guards[1] => Blame::Already(n),
        (Some(at), Some(n)) if at == sql.guards[2] => Blame::Count {
            n,
            rows: 0,
            rejects: 0,
        },
        _ => Blame::Batch,
    }
}

/// Whether a batch that failed for a reason of no file's is worth running
/// again as it is: Redshift's serializable isolation violations (error
/// 1023, "to be retried"), deadlocks, lock waits cut short, and Data API
/// throttling.
pub fn retryable(message: &str) -> bool {
    // Redshift's own error, not the statement or load errors appended to
    // it (a line 1023 of a file is no error 1023).
    let head = message.split(" (in: ").next().unwrap_or(message);
    let m = head.to_ascii_lowercase();
    let code = m.trim_start().trim_start_matches("error:").trim_start();
    code.starts_with("1023")
        || m.contains("serializable isolation violation")
        || m.contains("deadlock")
        || m.contains("lock timeout")
        || m.contains("could not obtain lock")
        || m.contains("throttl")
        || m.contains("rate exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{parse_schema, schemaless, TableSchema};
    use crate::source::RoutedFile;
    use logrouter::location::Location;

    fn job(n: usize, table: TableSchema, reload: bool) -> LoadJob {
        let key = format!(
            "routed/{}/dt=2015-01-20/hour=13/o'brien-{n}.part-00000.json.gz",
            table.table
        );
        LoadJob {
            file: RoutedFile {
                uri: format!("s3://b/{key}"),
                location: Location::S3 {
                    bucket: "b".into(),
                    key,
                },
                table: table.table.clone(),
                lines: 7,
                manifest: format!(
                    "s3://b/routed/_manifests/dt=2015-01-20/hour=13/o'brien-{n}.json"
                ),
                routed_at: "2026-11-23T20:00:00.000000Z".into(),
            },
            schema_version: table.version(),
            table,
            reload,
            max_rejects: 10,
        }
    }

    /// Every statement of a batch parses with sqlparser's Redshift dialect
    /// (what it lacks, checked by shape); a full batch fits the Data API's
    /// limits; its guards name their file.
    #[test]
    fn batches_parse_as_redshift_and_fit_the_data_api() {
        use sqlparser::dialect::RedshiftSqlDialect;
        use sqlparser::parser::Parser;
        let play = parse_schema(
            "play",
            r#"{"type":"object","required":["id"],"properties":{"id":{"type":"integer"},"user":{"type":"object","properties":{"name":{"type":"string","maxLength":9}}}}}"#,
            "play.json",
        )
        .unwrap();
        let role = "arn:aws:iam::123456789012:role/copy";
        for (table, paths, reload, files) in [
            (
                play,
                Some("s3://b/routed/_jsonpaths/play-0123.json"),
                false,
                MAX_FILES,
            ),
            (schemaless("click"), None, true, 1),
        ] {
            let jobs: Vec<LoadJob> = (0..files).map(|n| job(n, table.clone(), reload)).collect();
            let batch: Vec<BatchFile<'_>> = jobs
                .iter()
                .map(|j| BatchFile {
                    job: j,
                    version: "etag",
                })
                .collect();
            let sql = batch_sql(&batch, "events", role, paths).unwrap();
            assert!(sql.sqls.len() <= MAX_STATEMENTS);
            assert_eq!(sql.sqls.len(), FIXED_STATEMENTS + 2 * files);
            assert_eq!(sql.copy_at.len(), files);
            assert!(sql.sqls[sql.rejects_insert_at]
                .starts_with("INSERT INTO \"events\".\"_logrouter_rejects\""));
            // Only the ledger is locked: never the event table, which
            // analysts read meanwhile.
            assert_eq!(
                sql.sqls.iter().filter(|s| s.starts_with("LOCK ")).count(),
                1
            );
            for (i, s) in sql.sqls.iter().enumerate() {
                assert!(s.len() <= MAX_STATEMENT_BYTES);
                // sqlparser 0.59 has no LOCK statement (Redshift's docs:
                // `LOCK [ TABLE ] name`): checked by shape instead; the
                // table is locked before the ledger.
                if let Some(name) = s.strip_prefix("LOCK ") {
                    assert_eq!(name, "\"events\".\"_logrouter_ledger\"");
                    assert!(
                        i > sql.copy_at[files - 1],
                        "the ledger is locked after the COPYs"
                    );
                    continue;
                }
                // Nor COPY's JSON argument and MAXERROR: checked, removed.
                let s = match s.split_once("FORMAT AS JSON '") {
                    Some((head, rest)) => {
                        let (arg, tail) = rest.split_once('\'').unwrap();
                        assert_eq!(arg, paths.unwrap_or("noshred"));
                        assert!(tail.ends_with(" MAXERROR 11"), "{tail}");
                        format!(
                            "{head}FORMAT AS JSON{}",
                            tail.trim_end_matches(" MAXERROR 11")
                        )
                    }
                    None => s.clone(),
                };
                Parser::parse_sql(&RedshiftSqlDialect {}, &s)
                    .unwrap_or_else(|e| panic!("{e}\n{s}"));
            }
            let already = sql.sqls.iter().find(|s| s.contains(ALREADY)).unwrap();
            assert_eq!(
                already.contains("l.schema_version = f.schema_version"),
                reload
            );
        }
    }

    #[test]
    fn failures_name_their_file() {
        let t = schemaless("click");
        let jobs: Vec<LoadJob> = (0..3).map(|n| job(n, t.clone(), false)).collect();
        let batch: Vec<BatchFile<'_>> = jobs
            .iter()
            .map(|j| BatchFile {
                job: j,
                version: "v",
            })
            .collect();
        let sql = batch_sql(&batch, "events", "arn:aws:iam::1:role/r", None).unwrap();
        let cast = |m: &str| format!("ERROR: invalid input syntax for type integer: \"{m}\"");
        assert_eq!(
            attribute(&cast(&format!("{ALREADY}2")), Some(12), &sql),
            Blame::Already(2)
        );
        assert_eq!(
            attribute(&cast(&format!("{COUNT}1 rows 5 rejects 1")), Some(13), &sql),
            Blame::Count {
                n: 1,
                rows: 5,
                rejects: 1
            }
        );
        assert_eq!(
            attribute(&cast(&format!("{TOO_MANY}0 rejects 12")), None, &sql),
            Blame::TooMany(0)
        );
        assert_eq!(
            attribute("Load into table 'x' failed", Some(sql.copy_at[2]), &sql),
            Blame::Copy(2)
        );
        assert_eq!(
            attribute(
                "ERROR: 1023 DETAIL: Serializable isolation violation",
                Some(20),
                &sql
            ),
            Blame::Batch
        );
        assert!(retryable(
            "ERROR: 1023 DETAIL: Serializable isolation violation on table"
        ));
        assert!(!retryable("ERROR: permission denied"));
        // A backslash cannot be quoted: refused, not sent.
        let mut bad = job(0, t, false);
        bad.file.uri = "s3://b/a\\b".into();
        let e = batch_sql(
            &[BatchFile {
                job: &bad,
                version: "v",
            }],
            "events",
            "arn:aws:iam::1:role/r",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("backslash"), "{e}");
    }
}
